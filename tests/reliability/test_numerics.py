"""Numerics: the NaN/Inf guard on the loss and on the gradients alone, gradient clipping against a
hand-computed update, and the loss-spike detector (warn or stop)."""

from __future__ import annotations

import logging
import os

import ml_collections
import numpy as np
import optax
import pytest

import reliability_toy as toy
from xlra.train import loop, metrics, optim

pytestmark = pytest.mark.usefixtures("in_process_compile_cache")


def _flag(key: str, bad_step: int, bad: float, good: float = 1.0):
  """A poison that adds batch[key] = bad at `bad_step` and `good` elsewhere."""
  def poison(step: int, batch: dict) -> dict:
    return {**batch, key: np.full((toy.BATCH,), bad if step == bad_step else good, np.float32)}
  return poison


def test_nan_gradient_with_a_finite_loss_stops_naming_step_and_last_good_checkpoint(tmp_path):
  task = toy.task(_flag("sqrt_of", 5, 0.0), loss_fn=toy.sqrt_at_zero_loss)
  with pytest.raises(loop.NonFiniteError) as err:
    loop.train(toy.config(), str(tmp_path), task)
  msg = str(err.value)
  assert "grad_norm=nan at step 5" in msg, msg
  assert os.path.join(str(tmp_path), "checkpoints", "4") in msg and "config.optimizer.lr" in msg
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2", "4"]  # the poisoned state was never saved
  rows = metrics.read_metrics(str(tmp_path))
  assert np.isfinite(rows[-1]["loss"]) and rows[-1]["grad_norm"] == "nan"  # the bad row is on record
  # The rerun the message asks for resumes from step 4 (here with clean data) and finishes.
  clean = toy.task(_flag("sqrt_of", -1, 0.0), loss_fn=toy.sqrt_at_zero_loss)
  assert loop.train(toy.config(), str(tmp_path), clean).step == 6
  assert [r["step"] for r in metrics.read_metrics(str(tmp_path))] == [1, 2, 3, 4, 5, 6]


def test_infinite_loss_stops_before_the_first_checkpoint(tmp_path):
  loss_fn, poison = toy.scaled_loss({1: np.inf})
  with pytest.raises(loop.NonFiniteError, match="loss=inf at step 1; the last good checkpoint is none"):
    loop.train(toy.config(), str(tmp_path), toy.task(poison, loss_fn=loss_fn))
  assert not os.path.exists(tmp_path / "checkpoints" / "1")


@pytest.mark.parametrize("clip_norm", [1.0, 0.0])
def test_gradient_clipping_matches_a_hand_computed_update(clip_norm):
  # Adam with b1 = b2 = 0 and a huge eps is a plain scaled gradient step: -lr * g / (|g| + eps), so
  # the update shows whether g was clipped to norm clip_norm first.
  opt = optim.default_optimizer_config()
  opt.update(dict(lr=0.5, warmup_steps=0, decay="constant", b1=0.0, b2=0.0, eps=1e6, weight_decay=0.0,
                  clip_norm=clip_norm))
  tx, _ = optim.make_optimizer(opt, total_steps=10)
  rng = np.random.default_rng(0)
  params = {"w": np.zeros((3, 4), np.float32), "b": np.zeros((4,), np.float32)}
  grads = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in params.items()}
  scale = 100.0 / np.sqrt(sum(np.sum(g ** 2) for g in grads.values()))
  grads = {k: g * scale for k, g in grads.items()}  # global norm 100
  updates, _ = tx.update(grads, tx.init(params), params)
  for k, g in grads.items():
    g = g.astype(np.float64) * (clip_norm / 100.0 if clip_norm else 1.0)
    np.testing.assert_allclose(np.asarray(updates[k]), -0.5 * g / (np.abs(g) + 1e6), rtol=1e-5)
  norm = float(optax.tree.norm(updates))
  assert norm == pytest.approx(0.5 * (clip_norm or 100.0) / 1e6, rel=1e-3)


def test_spike_detector_flags_jumps_and_keeps_them_out_of_the_mean():
  d = loop.SpikeDetector(factor=3.0, warmup=2)
  assert [d.check(x) for x in (5.0, 4.0)] == [None, None]  # warm-up
  mean = 0.9 * 5.0 + 0.1 * 4.0
  assert d.check(3 * mean + 0.01) == pytest.approx(mean)
  assert d.check(3 * mean - 0.01) is None  # the spike did not raise the bar
  assert loop.SpikeDetector(factor=0.0, warmup=0).check(1e9) is None  # off


def test_loss_spike_stops_with_action_stop(tmp_path):
  loss_fn, poison = toy.scaled_loss({5: 100.0})
  config = toy.config(spike_factor=3.0, spike_warmup=2, spike_action="stop")
  with pytest.raises(loop.LossSpikeError) as err:
    loop.train(config, str(tmp_path), toy.task(poison, loss_fn=loss_fn))
  msg = str(err.value)
  assert "loss spike at step 5" in msg and "config.spike_factor=3.0" in msg
  assert os.path.join(str(tmp_path), "checkpoints", "4") in msg and "spike_action='warn'" in msg
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2", "4"]


def test_loss_spike_is_logged_and_training_goes_on_with_action_warn(tmp_path, caplog):
  loss_fn, poison = toy.scaled_loss({5: 100.0})
  caplog.set_level(logging.WARNING)
  config = toy.config(spike_factor=3.0, spike_warmup=2, spike_action="warn")
  assert loop.train(config, str(tmp_path), toy.task(poison, loss_fn=loss_fn)).step == 6
  said = [r.getMessage() for r in caplog.records if "loss spike" in r.getMessage()]
  assert len(said) == 1 and "at step 5" in said[0] and "continuing" in said[0]


@pytest.mark.parametrize("field,value,needle", [
    ("spike_factor", 0.5, "config.spike_factor=0.5"), ("spike_factor", -2.0, "config.spike_factor=-2.0"),
    ("spike_action", "explode", "config.spike_action='explode'"), ("spike_warmup", -1, "config.spike_warmup=-1")])
def test_spike_settings_are_validated_before_compiling(tmp_path, field, value, needle):
  config: ml_collections.ConfigDict = toy.config(**{field: value})
  with pytest.raises(ValueError) as err:
    loop.train(config, str(tmp_path), toy.task())
  assert needle in str(err.value)
  assert not os.path.exists(tmp_path / "checkpoints")
