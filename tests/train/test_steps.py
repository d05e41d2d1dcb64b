"""Pure-step details: exact gradient accumulation, bfloat16 compute over float32 master weights,
the learning-rate schedules, and the step count living in the optimizer state."""

from __future__ import annotations

import logging
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from xlra.models.presets import get_preset
from xlra.models.transformer import Transformer
from xlra.parallel import mesh as mesh_lib
from xlra.train import optim, sft, state as state_lib, update

CFG = get_preset("tiny", vocab_size=128, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, d_ff=64, max_seq_len=32)


def _batch(b=8, length=12, seed=0):
  rng = np.random.default_rng(seed)
  lengths = rng.integers(5, length + 1, b)  # unequal lengths: token-weighted means differ from row means
  mask = np.arange(length)[None] < lengths[:, None]
  return {"tokens": np.where(mask, rng.integers(1, CFG.vocab_size, (b, length)), 0).astype(np.int32),
          "mask": mask, "loss_mask": mask & (np.arange(length)[None] >= 2)}


_RESULTS = {}


def _step(cfg, micro, mesh):
  """(state, metrics) after one SFT step; cached, since the f32 full-batch step serves two tests."""
  key = (cfg.dtype, micro)
  if key not in _RESULTS:
    _RESULTS[key] = _run_step(cfg, micro, mesh)
  return _RESULTS[key]


def _run_step(cfg, micro, mesh):
  opt = optim.default_optimizer_config()
  opt.warmup_steps = 0
  tx, schedule = optim.make_optimizer(opt, 10)
  graphdef, params = state_lib.split_params(Transformer(cfg, rngs=nnx.Rngs(0)))
  st = state_lib.make_state(params, tx, mesh, seed=0)
  batch = mesh_lib.shard_batch(_batch(), mesh)
  fn = update.jit_train_step(sft.make_sft_step(graphdef, tx, schedule, micro, mesh), state_lib.state_shardings(st, mesh),
                             batch, mesh)
  return fn(st, batch, jax.random.PRNGKey(0))


@pytest.fixture(scope="module")
def mesh():
  return mesh_lib.make_mesh({"data": 2, "fsdp": 1, "tensor": 1}, devices=jax.devices()[:2])


def test_gradient_accumulation_equals_the_full_batch(mesh):
  full_state, full = _step(CFG, 1, mesh)
  acc_state, acc = _step(CFG, 2, mesh)
  for k in ("loss", "grad_norm", "weight", "accuracy"):
    np.testing.assert_allclose(acc[k], full[k], rtol=1e-5, err_msg=k)
  for a, b in zip(jax.tree.leaves(acc_state.params), jax.tree.leaves(full_state.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
  assert int(state_lib.step_of(acc_state.opt_state)) == 1


def test_bfloat16_compute_keeps_float32_master_weights(mesh):
  f32_state, f32 = _step(CFG, 1, mesh)
  bf_state, bf = _step(CFG.replace(dtype="bfloat16"), 1, mesh)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(bf_state.params))
  assert np.isfinite(bf["loss"]) and abs(float(bf["loss"]) - float(f32["loss"])) < 0.05 * float(f32["loss"])


def test_schedules_match_their_closed_forms():
  opt = optim.default_optimizer_config()
  opt.lr, opt.warmup_steps, opt.end_lr_frac = 1.0, 4, 0.1
  opt.decay = "cosine"
  s = optim.make_schedule(opt, total_steps=14)
  assert [float(s(i)) for i in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
  for t in (4, 9, 14, 20):  # cosine from 1 to 0.1 over steps 4..14, then flat
    frac = min((t - 4) / 10, 1.0)
    assert float(s(t)) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)), rel=1e-6)
  opt.decay = "linear"
  s = optim.make_schedule(opt, total_steps=14)
  assert float(s(9)) == pytest.approx(1 - 0.9 * 0.5) and float(s(14)) == pytest.approx(0.1)
  opt.decay = "constant"
  assert float(optim.make_schedule(opt, 14)(13)) == pytest.approx(1.0)
  opt.decay = "exponential"
  with pytest.raises(ValueError, match="config.optimizer.decay"):
    optim.make_schedule(opt, 14)


def test_warmup_longer_than_the_run_warns_with_both_fields_and_the_peak_fraction(caplog):
  opt = optim.default_optimizer_config()
  opt.lr, opt.warmup_steps = 1e-5, 100
  with caplog.at_level(logging.WARNING):
    s = optim.make_schedule(opt, total_steps=4, steps_field="config.num_steps")
  msg = " ".join(r.getMessage() for r in caplog.records)
  assert "config.optimizer.warmup_steps=100" in msg and "config.num_steps" in msg and "0.04 of" in msg
  assert float(s(3)) == pytest.approx(0.04 * 1e-5)  # the warning's fraction is what the schedule does
  caplog.clear()
  opt.warmup_steps = 4
  with caplog.at_level(logging.WARNING):
    optim.make_schedule(opt, total_steps=4)
  assert not caplog.records


@pytest.mark.parametrize("field,value,match", [("lr", 0.0, "config.policy_optimizer.lr"),
                                               ("lr", float("nan"), "config.policy_optimizer.lr"),
                                               ("warmup_steps", -1, "config.policy_optimizer.warmup_steps"),
                                               ("end_lr_frac", 2.0, "config.policy_optimizer.end_lr_frac")])
def test_bad_optimizer_values_fail_naming_the_field(field, value, match):
  opt = optim.default_optimizer_config()
  opt[field] = value
  with pytest.raises(ValueError, match=match):
    optim.make_optimizer(opt, 10, "config.policy_optimizer")
