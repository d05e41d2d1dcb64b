"""`xlra bon` end to end on testbed prompts with tiny random checkpoints: the JSONL rows agree with the
summary, the chosen output is the best-scored candidate, gold q is the testbed's, and a rerun is a no-op."""

from __future__ import annotations

import math
import os
import runpy

import jax
import numpy as np
import pytest
from flax import nnx

from xlra import files
from xlra.data.job import prepare
from xlra.data.testbed import quality
from xlra.models.checkpoint_io import save_model
from xlra.models.heads import ScalarModel
from xlra.models.presets import get_preset
from xlra.models.transformer import Transformer
from xlra.parallel.mesh import make_mesh
from xlra.sampling import job
from xlra.train.state import abstract_params, init_params


CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs")


def _save_random(build, path, mesh):
  graphdef, _ = abstract_params(build)
  save_model(nnx.merge(graphdef, init_params(build, mesh)), path)  # jitted init: eager init is slow here


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("bon")
  config = runpy.run_path(os.path.join(CONFIGS, "bon.py"))["get_config"]("ci")
  bundle = prepare(config.data, str(root / "data_run"))  # what an SFT run's workdir holds
  cfg = get_preset("tiny", vocab_size=512, d_model=32, n_layers=1, d_ff=64)
  assert len(bundle.tokenizer) <= cfg.vocab_size
  mesh = make_mesh({"data": 1}, jax.devices()[:1])
  _save_random(lambda: Transformer(cfg, rngs=nnx.Rngs(0)), str(root / "policy"), mesh)
  _save_random(lambda: ScalarModel(cfg, rngs=nnx.Rngs(1)), str(root / "rm"), mesh)
  config.unlock()
  config.update(dict(policy_checkpoint=str(root / "policy"), rm_checkpoint=str(root / "rm"),
                     data_dir=str(root / "data_run"), lang="de", task="dialog", split="eval", max_prompts=3,
                     n=4, max_new_tokens=12, temperature=1.0, rows_per_batch=8, score_batch_size=8,
                     keep_candidates=True, missing_eos_penalty=None))
  config.lock()
  workdir = str(root / "work")
  job.run(config, workdir)
  return config, workdir, bundle


def test_bon_job_writes_consistent_outputs(run_dir):
  config, workdir, bundle = run_dir
  rows = files.read_jsonl(os.path.join(workdir, job.OUTPUT))
  summary = files.read_json(os.path.join(workdir, job.SUMMARY))
  examples = bundle.testbed.get("eval", "de", "dialog")[:3]
  assert [r["id"] for r in rows] == [e.id for e in examples]
  for r, ex in zip(rows, examples):
    assert r["prompt"] == ex.prompt and len(r["scores"]) == 4 and len(r["candidates"]) == 4
    assert r["all_cut_off"] == (not any(r["eos"]))
    assert r["best_index"] == int(np.argmax(r["raw_scores"] if r["all_cut_off"] else r["scores"]))
    assert r["score"] == r["scores"][r["best_index"]]
    assert r["output"] == r["candidates"][r["best_index"]]
    assert r["gold_q_all"] == [quality(ex, c) for c in r["candidates"]]
  assert summary["n"] == 4 and math.isclose(summary["kl_bound"], math.log(4) - 3 / 4)
  assert math.isclose(summary["mean_best_score"], np.mean([r["score"] for r in rows]), rel_tol=1e-6)
  assert math.isclose(summary["gold_q_single"], np.mean([np.mean(r["gold_q_all"]) for r in rows]), rel_tol=1e-6)
  assert summary["all_cut_off"] == sum(r["all_cut_off"] for r in rows)
  assert summary["normalized"] is False  # a fresh RM has no stored statistics


def test_bon_job_rerun_is_a_no_op(run_dir):
  config, workdir, _ = run_dir
  path = os.path.join(workdir, job.OUTPUT)
  before = os.path.getmtime(path)
  job.run(config, workdir)
  assert os.path.getmtime(path) == before


def test_load_policy_rejects_a_reward_model(run_dir):
  config, _, _ = run_dir
  with pytest.raises(ValueError, match="holds a scalar"):
    job.load_policy(config.rm_checkpoint)
  with pytest.raises(FileNotFoundError, match="config.policy_checkpoint"):
    job.load_policy(os.path.dirname(config.rm_checkpoint) + "/nowhere")
