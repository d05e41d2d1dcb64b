"""The training loop on a synthetic task: exact resumption, the NaN guard, metrics and exports."""

from __future__ import annotations

import json
import os

import jax
import ml_collections
import numpy as np
import pytest
from flax import nnx

from xlra.data.batching import Loader, sft_batch
from xlra.models.checkpoint_io import load_model
from xlra.models.presets import get_preset
from xlra.models.transformer import Transformer
from xlra.train import loop, metrics, optim, sft

CFG = get_preset("tiny", vocab_size=128, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, d_ff=64, max_seq_len=32)
LENGTH = 16


def _records(n, seed):
  """Sequences of a simple grammar (each token is the previous one + 1, mod vocab): learnable fast."""
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(n):
    start, plen, rlen = rng.integers(3, CFG.vocab_size), rng.integers(2, 5), rng.integers(3, 9)
    seq = [int(3 + (start + i) % (CFG.vocab_size - 3)) for i in range(plen + rlen)]
    out.append((seq[:plen], seq[plen:]))
  return out


def _config(**kw) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict(dict(
      seed=0, num_steps=6, num_epochs=0.0, batch_size=8, eval_batch_size=8, num_microbatches=1,
      mesh=dict(data=-1, fsdp=1, tensor=1), sharding_rules=(), optimizer=optim.default_optimizer_config(),
      log_every=1, eval_every=3, checkpoint_every=2, keep_checkpoints=3, async_checkpoints=True,
      best_metric="loss", best_mode="min", peak_flops=1e9, progress_every_s=0.0, init_checkpoint="", init_hf="",
      spike_factor=0.0, spike_warmup=0, spike_action="warn"))
  c.optimizer.lr, c.optimizer.warmup_steps = 1e-2, 2
  c.update(kw)
  return c


class _Poisoned:
  """A loader whose batch number `at` (1-based) carries a NaN weight, to trip the guard."""

  def __init__(self, inner, at):
    self.inner, self.at, self.n = inner, at, 0

  def __next__(self):
    self.n += 1
    batch = next(self.inner)
    if self.n == self.at:
      batch["example_weight"] = np.full(batch["tokens"].shape[0], np.nan, np.float32)
    else:
      batch["example_weight"] = np.ones(batch["tokens"].shape[0], np.float32)
    return batch

  def state(self):
    return self.inner.state()

  def restore(self, s):
    self.inner.restore(s)


def _task(poison_at=None) -> loop.Task:
  train, val = _records(96, 0), _records(16, 1)
  collate = lambda recs: (lambda idx: sft_batch([recs[i][0] for i in idx], [recs[i][1] for i in idx], 0, LENGTH))
  loader = Loader(len(train), 8, collate(train), seed=3)
  if poison_at:
    loader = _Poisoned(loader, poison_at)
  evals = [dict(collate(val)(list(range(i, i + 8))), example_weight=np.ones(8, np.float32)) for i in (0, 8)]
  return loop.Task(name="toy", build_model=lambda: Transformer(CFG, rngs=nnx.Rngs(0)), loss_fn=sft.sft_loss,
                   train_data=loader, eval_data=evals, load_init=None,
                   flops_per_token=metrics.flops_per_token(CFG, LENGTH), train_examples=len(train))


def _losses(workdir, split="train"):
  return {r["step"]: r["loss"] for r in metrics.read_metrics(str(workdir), split)}


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
  """An uninterrupted run of 6 steps (evaluated at 0, 3, 6), shared by the tests below."""
  workdir = tmp_path_factory.mktemp("full")
  return workdir, loop.train(_config(), workdir, _task())


def test_interrupted_run_resumes_with_identical_losses(full_run, tmp_path):
  full_dir, full = full_run
  with pytest.raises(loop.TrainingInterrupted, match="stopped at step 4"):
    loop.train(_config(), tmp_path, _task(), should_stop=lambda step: step == 4)
  assert not os.path.exists(tmp_path / "model")  # no export from a stopped run
  assert sorted(_losses(tmp_path)) == [1, 2, 3, 4]
  resumed = loop.train(_config(), tmp_path, _task())
  a, b = _losses(full_dir), _losses(tmp_path)
  assert sorted(a) == sorted(b) == list(range(1, 7))  # every step logged exactly once
  for step in range(1, 7):
    np.testing.assert_allclose(b[step], a[step], rtol=1e-6, err_msg=f"step {step}")
  assert resumed.step == full.step == 6
  for x, y in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(full.params)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-7)


def test_validation_best_params_and_metrics_are_exported(full_run):
  workdir, result = full_run
  val = _losses(workdir, "val")
  assert sorted(val) == [0, 3, 6] and val[6] < val[0] - 0.3
  best = min((s for s in val if s), key=val.get)
  assert result.best_step == best
  np.testing.assert_allclose(result.val["loss"], val[best], rtol=1e-5)
  model = load_model(str(workdir / "model"))  # the export is a standard model directory
  assert isinstance(model, Transformer) and model.cfg == CFG
  rows = metrics.read_metrics(str(workdir))
  assert {"loss", "grad_norm", "lr", "tokens_per_s", "mfu"} <= set(rows[-1])
  assert all(r["tokens_per_s"] > 0 and 0 < r["mfu"] for r in rows)
  assert os.listdir(workdir / "tb")  # TensorBoard event file


def test_nan_stops_with_step_and_last_good_checkpoint(tmp_path):
  with pytest.raises(loop.NonFiniteError) as err:
    loop.train(_config(checkpoint_every=2, eval_every=0), tmp_path, _task(poison_at=5))
  msg = str(err.value)
  assert "at step 5" in msg and os.path.join("checkpoints", "4") in msg
  assert not os.path.exists(tmp_path / "checkpoints" / "5")  # the poisoned state was never saved


def test_durations_and_batch_sizes_are_validated_before_compiling(tmp_path):
  with pytest.raises(ValueError, match="config.batch_size=6"):
    loop.train(_config(batch_size=6), tmp_path, _task())  # 8 devices split the batch
  with pytest.raises(ValueError, match="config.num_microbatches=3"):
    loop.train(_config(num_microbatches=3), tmp_path, _task())
  with pytest.raises(ValueError, match="config.num_steps=0 and config.num_epochs=0"):
    loop.train(_config(num_steps=0), tmp_path, _task())


def test_warmup_past_the_epoch_derived_steps_warns_before_compiling(tmp_path, caplog, monkeypatch):
  """96 examples, one epoch at batch 8: 12 updates, but a real preset's 100 warm-up steps."""

  class Stop(Exception):
    pass

  def stop(*a, **k):
    raise Stop  # the loop got past validation; nothing compiled yet

  monkeypatch.setattr(loop.state_lib, "abstract_params", stop)
  config = _config(num_steps=0, num_epochs=1.0)
  config.optimizer.warmup_steps = 100
  with caplog.at_level("WARNING"), pytest.raises(Stop):
    loop.train(config, tmp_path, _task())
  msg = " ".join(r.getMessage() for r in caplog.records)
  assert "config.optimizer.warmup_steps=100" in msg and "12 updates" in msg and "config.num_epochs=1.0" in msg
  assert "0.12 of config.optimizer.lr" in msg
  config.optimizer.lr = float("nan")
  with pytest.raises(ValueError, match="config.optimizer.lr=nan"):
    loop.train(config, tmp_path, _task())
