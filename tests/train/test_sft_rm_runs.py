"""End-to-end jobs on a small testbed: SFT learns (validation loss, gold quality of greedy outputs);
a reward model started from it learns; its reward statistics; the RM accuracy matrix."""

from __future__ import annotations

import dataclasses
import math
import os
import runpy

import jax
import numpy as np
import pytest
from flax import nnx

from xlra import files
from xlra.data.testbed import Stream, probe_pairs, quality, quality_parts, sample_candidate
from xlra.data.testbed.corruptions import DIALOG_KINDS, KINDS
from xlra.data.tokenizer import decode_response, encode_prompt
from xlra.eval import rm_accuracy
from xlra.models.transformer import Transformer
from xlra.sampling.sampler import Sampler, SamplingConfig
from xlra.train import jobs, metrics, scoring

SFT_STEPS = 120
CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs")


def load_config(name: str, arg: str):
  return runpy.run_path(os.path.join(CONFIGS, f"{name}.py"))["get_config"](arg)


@pytest.fixture(scope="module")
def sft_run(testbed_bundle, tmp_path_factory):
  c = load_config("sft", "ci")
  c.languages, c.data_dir = ("en",), testbed_bundle.data_dir
  c.num_steps, c.batch_size, c.eval_every, c.checkpoint_every, c.log_every = SFT_STEPS, 16, 60, SFT_STEPS, 20
  c.max_len, c.val_examples, c.peak_flops = 256, 8, 1e10
  workdir = str(tmp_path_factory.mktemp("sft"))
  return c, workdir, jobs.train_sft(c, workdir, data=testbed_bundle)


def _greedy_quality(graphdef, params, mesh, bundle, examples) -> tuple[dict[str, float], list[str]]:
  """Mean gold quality q of greedy outputs, and q's coverage and language parts."""
  tok = bundle.tokenizer
  sampler = Sampler(graphdef, SamplingConfig(max_new_tokens=48, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id,
                                             temperature=0.0, max_prompt_len=256), mesh=mesh)
  out = sampler(params, [encode_prompt(tok, ex.prompt) for ex in examples], jax.random.PRNGKey(0))
  texts = [decode_response(tok, out.response(i)) for i in range(len(examples))]
  parts = [quality_parts(ex, t) for ex, t in zip(examples, texts)]
  return {k: float(np.mean([p[k] for p in parts])) for k in ("q", "coverage", "language")}, texts


def test_sft_lowers_validation_loss_and_raises_gold_quality(sft_run, testbed_bundle):
  """A short run learns the form (language, templates, some facts); copying every fact, which q
  needs to approach 1, takes ~1000 steps (configs/sft.py:tiny)."""
  config, workdir, result = sft_run
  val = {r["step"]: r["loss"] for r in metrics.read_metrics(workdir, "val")}
  assert sorted(val) == [0, 60, SFT_STEPS] and val[SFT_STEPS] < val[0] - 2.0, val
  tb = testbed_bundle.testbed
  prompts = tb.get("eval", "en") + tb.get("rl", "en")
  trained, texts = _greedy_quality(result.graphdef, result.params, result.mesh, testbed_bundle, prompts)
  # The untrained model: the same architecture at its scratch initialisation (the run's step 0).
  scratch = Transformer(jobs.model_config(config, testbed_bundle.tokenizer), rngs=nnx.Rngs(config.seed))
  untrained, _ = _greedy_quality(result.graphdef, nnx.split(scratch, nnx.Param)[1], result.mesh, testbed_bundle,
                                 prompts)
  assert trained["q"] > untrained["q"], (trained, untrained, texts[:3])
  assert trained["language"] > untrained["language"] + 0.5, (trained, untrained, texts[:3])
  assert trained["coverage"] > untrained["coverage"], (trained, untrained, texts[:3])


def _reference_vs_corrupted(bundle):
  """A copy of the testbed whose preference pairs are (reference, corrupted candidate): a label a
  small RM can learn in a few dozen steps, so a broken RM pipeline shows."""
  tb = bundle.testbed
  pairs = {}
  for split in ("rm_train", "rm_val"):
    for task in tb.tasks:
      recs = []
      for ex in tb.get(split, "en", task):
        bad, _, kinds = sample_candidate(ex, Stream("test-rm", ex.id), p_clean=0.0)
        recs.append({"id": ex.id, "lang": "en", "prompt": ex.prompt, "chosen": ex.reference, "rejected": bad,
                     "q_chosen": quality(ex, ex.reference), "q_rejected": quality(ex, bad), "kinds": kinds})
      pairs[(split, "en", task)] = recs
  return dataclasses.replace(bundle, testbed=dataclasses.replace(tb, pairs=pairs))


@pytest.fixture(scope="module")
def rm_run(sft_run, testbed_bundle, tmp_path_factory):
  _, _, sft_result = sft_run
  c = load_config("rm", "ci")
  c.languages, c.data_dir, c.init_checkpoint = ("en",), testbed_bundle.data_dir, sft_result.model_dir
  c.rm.loss = "pairwise"
  c.num_epochs, c.batch_size, c.eval_every, c.checkpoint_every = 1.0, 16, 10, 100
  c.max_len, c.peak_flops = 256, 1e10
  bundle = _reference_vs_corrupted(testbed_bundle)
  workdir = str(tmp_path_factory.mktemp("rm"))
  return c, workdir, bundle, jobs.train_rm(c, workdir, data=bundle)


def test_reward_model_learns_and_stores_reward_statistics(rm_run):
  config, workdir, bundle, result = rm_run
  val = {r["step"]: r["accuracy"] for r in metrics.read_metrics(workdir, "val")}
  assert result.val["accuracy"] > 0.65, result.val
  assert result.val["accuracy"] == pytest.approx(max(v for s, v in val.items() if s))
  stats = files.read_json(os.path.join(result.model_dir, scoring.STATS_FILE))
  assert 0 < stats["n"] <= len(bundle.testbed.get("rm_val", "en"))  # references of the rm_val prompts
  assert math.isfinite(stats["mean"]) and stats["std"] > 0
  # The scorer of the exported model reproduces the loop's validation accuracy (a separate code path:
  # host batching and the jitted score function instead of the eval step).
  scorer = scoring.RewardScorer.load(result.model_dir, bundle.tokenizer, batch_size=16, length=config.max_len)
  val_pairs = _kept_val_pairs(bundle, config.max_len)
  rc = scorer.score([p["prompt"] for p in val_pairs], [p["chosen"] for p in val_pairs])
  rr = scorer.score([p["prompt"] for p in val_pairs], [p["rejected"] for p in val_pairs])
  assert float(np.mean(rc > rr)) == pytest.approx(result.val["accuracy"], abs=1e-6)
  z = scorer.normalize(rc)
  np.testing.assert_allclose(z, (rc - stats["mean"]) / stats["std"], rtol=1e-6)


def _n_tokens(bundle, text: str) -> int:
  """Tokens of a response, its EOS included."""
  return len(bundle.tokenizer.encode(text, add_special_tokens=False)) + 1


def _kept_val_pairs(bundle, max_len: int, pairs: list[dict] | None = None) -> list[dict]:
  """The validation pairs (or `pairs`) the jobs keep: prompt plus the longer output fit in max_len."""
  return [p for p in (bundle.testbed.get_pairs("rm_val", "en") if pairs is None else pairs)
          if len(encode_prompt(bundle.tokenizer, p["prompt"])) + max(_n_tokens(bundle, p["chosen"]),
                                                                      _n_tokens(bundle, p["rejected"])) <= max_len]


def test_rm_accuracy_matrix_and_baselines(rm_run, tmp_path):
  config, workdir, bundle, result = rm_run
  out = rm_accuracy.rm_accuracy_matrix({"en": result.model_dir}, bundle, ["en"], "pairwise", config.max_len, 16)
  assert out["rm_accuracy"]["en"]["en"] == pytest.approx(result.val["accuracy"], abs=1e-6)
  # Longer-output baseline by hand: token counts of chosen vs rejected (ties half).
  n = lambda text: _n_tokens(bundle, text)
  want = np.mean([1.0 if n(p["chosen"]) > n(p["rejected"]) else 0.5 if n(p["chosen"]) == n(p["rejected"]) else 0.0
                  for p in _kept_val_pairs(bundle, config.max_len)])
  assert out["rm_baselines"]["longer output"]["en"] == pytest.approx(want)
  # q ranks references above corruptions (almost always), so gold and label accuracy nearly agree
  assert out["rm_accuracy_vs_gold"]["en"]["en"] == pytest.approx(out["rm_accuracy"]["en"]["en"], abs=0.05)
  # Error-type probes, recomputed through the scorer's text path: per kind, the share of correct answers
  # scored above their one-error copy (dialog: all nine kinds; at most 40 per kind).
  probes = _kept_val_pairs(bundle, config.max_len, probe_pairs(bundle.testbed.get("rm_val", "en"), seed=0, per_kind=40))
  scorer = scoring.RewardScorer.load(result.model_dir, bundle.tokenizer, batch_size=16, length=config.max_len)
  above = (scorer.score([p["prompt"] for p in probes], [p["chosen"] for p in probes])
           > scorer.score([p["prompt"] for p in probes], [p["rejected"] for p in probes]))
  kinds = [p["kind"] for p in probes]
  assert set(out["n_by_error"]) == set(KINDS + DIALOG_KINDS)
  for kind, n in out["n_by_error"].items():
    mine = [a for a, k in zip(above, kinds) if k == kind]
    assert n == len(mine) > 0
    assert out["rm_accuracy_by_error"]["en"][kind] == pytest.approx(np.mean(mine)), kind
  # Errors in the answer alone are what a short RM run learns first.
  assert out["rm_accuracy_by_error"]["en"]["wrong_language"] >= 0.8, out["rm_accuracy_by_error"]
  rm_accuracy.write_matrix(out, ["en"], ["en"], str(tmp_path))
  assert files.read_json(tmp_path / "rm_accuracy.json")["rm_accuracy"]["en"]["en"] == out["rm_accuracy"]["en"]["en"]
  assert "| RM \\ error | drop | swap |" in (tmp_path / "rm_accuracy.md").read_text()
  assert (tmp_path / "rm_accuracy.png").stat().st_size > 1000
