"""`train_ppo` end to end on the tiny testbed with tiny random models: what it writes, that the
logged metrics put proxy reward, gold q and KL side by side, and exact resumption."""

from __future__ import annotations

import os
import runpy
import shutil

import jax
import numpy as np
import pytest
from flax import nnx

from xlra import files
from xlra.data.job import prepare
from xlra.models import ScalarModel, Transformer, get_preset
from xlra.models.checkpoint_io import save_model
from xlra.train.metrics import read_metrics
from xlra.train.ppo_job import train_ppo


def _get_config(name, arg):
  return runpy.run_path(os.path.join(os.path.dirname(__file__), "..", "..", "configs", name))["get_config"](arg)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
  root = tmp_path_factory.mktemp("ppo_job")
  # The resumed run compiles the same programs again: a compilation cache for this module only.
  old = (jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs)
  jax.config.update("jax_compilation_cache_dir", str(root / "jax_cache"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  config = _get_config("ppo.py", "tiny")
  config.data = _get_config("data.py", "tiny")
  bundle = prepare(config.data, str(root))
  _config(config)
  cfg = get_preset("tiny", vocab_size=512, d_model=32, n_layers=1, d_ff=64, max_seq_len=512)
  save_model(Transformer(cfg, rngs=nnx.Rngs(0)), str(root / "sft"))
  save_model(ScalarModel(cfg, rngs=nnx.Rngs(1)), str(root / "rm"))
  files.write_json(str(root / "rm" / "reward_stats.json"), {"mean": 0.5, "std": 2.0, "n": 10, "source": "test"})
  yield root, config, bundle
  jax.config.update("jax_compilation_cache_dir", old[0])
  jax.config.update("jax_persistent_cache_min_compile_time_secs", old[1])


def _config(config):
  config.update(dict(iterations=2, prompts_per_iteration=4, samples_per_prompt=2, max_new_tokens=8, epochs=1,
                     minibatches=1, eval_prompts=4, eval_every=1, value_warmup_iterations=0, checkpoint_every=1,
                     keep_checkpoints=3, max_prompt_len=512, lang="en"))


def test_train_ppo_writes_metrics_model_outputs_and_resumes_exactly(world):
  root, config, bundle = world
  work = str(root / "run")
  result = train_ppo(config, work, str(root / "sft"), str(root / "rm"), data=bundle)

  rows = read_metrics(work)
  assert [r["step"] for r in rows] == [1, 2]
  for key in ("rm_score", "score", "gold_q", "kl", "entropy", "response_length", "annotator_bias", "eos_rate",
              "learn/clipfrac", "learn/approx_kl", "learn/value_loss", "explained_variance", "time/rollout_s",
              "time/learn_s"):
    assert key in rows[-1] and np.isfinite(rows[-1][key]), key
  evals = read_metrics(work, "eval")
  assert [r["step"] for r in evals] == [0, 1, 2]
  assert evals[0]["win_rate"] == 0.5  # the policy against itself at iteration 0: all ties
  assert result.evals[-1]["step"] == 2 and os.path.exists(os.path.join(result.model_dir, "model.json"))
  outs = files.read_jsonl(result.outputs)
  assert len(outs) == 4 and set(outs[0]) == {"id", "prompt", "output", "lang", "task"}
  assert outs[0]["lang"] == "en"
  assert os.path.getsize(os.path.join(work, "curves.png")) > 10_000
  # reward_stats="policy": rewards normalised on the RM's scores of the starting policy's own samples.
  stats = files.read_json(os.path.join(work, "reward_stats.json"))
  assert "starting-policy samples" in stats["source"] and stats["n"] >= 4
  assert np.isfinite(stats["mean"]) and stats["std"] > 0 and stats["mean"] != 0.5  # not the RM's stored 0.5

  # A crash after iteration 1's checkpoint: remove checkpoint 2 and rerun. Iteration 2 is redone
  # from the restored state, beta and prompt order and gives the same metrics.
  shutil.rmtree(os.path.join(work, "checkpoints", "2"))
  again = train_ppo(config, work, str(root / "sft"), str(root / "rm"), data=bundle)
  redo = read_metrics(work)
  assert [r["step"] for r in redo] == [1, 2]
  for key in ("rm_score", "kl", "gold_q", "learn/policy_loss", "learn/value_loss", "entropy"):
    assert redo[1][key] == pytest.approx(rows[1][key], rel=1e-4, abs=1e-6), key
  assert again.beta == result.beta


def test_bad_roles_fail_early_with_the_field(world):
  root, config, bundle = world
  with pytest.raises(ValueError, match="config.rm_checkpoint"):
    train_ppo(config, str(root / "bad"), str(root / "sft"), "", data=bundle)
  with pytest.raises(ValueError, match="holds a Transformer"):
    train_ppo(config, str(root / "bad"), str(root / "sft"), str(root / "sft"), data=bundle)
  c = config.copy_and_resolve_references()
  c.critic_init = "none"
  with pytest.raises(ValueError, match="critic_init"):
    train_ppo(c, str(root / "bad"), str(root / "sft"), str(root / "rm"), data=bundle)


def test_critic_roles(world):
  """critic_init='rm' starts the critic as the RM; 'sft' as the SFT decoder with a fresh head."""
  from xlra.parallel.mesh import make_mesh
  from xlra.train.ppo_job import _roles

  root, config, _ = world
  mesh = make_mesh({"data": -1})
  leaves = lambda tree: [np.asarray(x) for x in jax.tree.leaves(tree)]
  roles = _roles(config, str(root / "sft"), str(root / "rm"), mesh, None)
  assert all(np.array_equal(a, b) for a, b in zip(leaves(roles["critic_params"]), leaves(roles["rm_params"])))
  assert roles["rm_stats"]["std"] == 2.0
  c = config.copy_and_resolve_references()
  c.critic_init = "sft"
  roles = _roles(c, str(root / "sft"), str(root / "rm"), mesh, None)
  critic = roles["critic_params"]
  backbone = leaves(critic["backbone"])
  assert all(np.array_equal(a, b) for a, b in zip(backbone, leaves(roles["policy_params"])))
  assert float(np.abs(np.asarray(critic["head_b"][...]))) == 0.0
  assert not np.array_equal(np.asarray(critic["head_w"][...]), leaves(roles["rm_params"])[-1])
