"""Sharding: on 8 fake CPU devices a (data=2, fsdp=2, tensor=2) mesh gives the single-device forward
pass and optimizer step, and every parameter and optimizer moment is split as the rules say."""

from __future__ import annotations

import jax
import ml_collections
import numpy as np
import pytest
from flax import nnx

from xlra.models.presets import get_preset
from xlra.models.transformer import Transformer
from xlra.parallel import mesh as mesh_lib
from xlra.train import optim, sft, state as state_lib, update

CFG = get_preset("tiny", vocab_size=256, max_seq_len=64)


def _batch(seed=0, b=8, length=16):
  rng = np.random.default_rng(seed)
  tokens = rng.integers(1, CFG.vocab_size, (b, length)).astype(np.int32)
  lengths = rng.integers(length // 2, length + 1, b)
  mask = np.arange(length)[None] < lengths[:, None]
  loss_mask = mask & (np.arange(length)[None] >= 3)
  return {"tokens": np.where(mask, tokens, 0), "mask": mask, "loss_mask": loss_mask}


def _opt(name="adamw"):
  cfg = optim.default_optimizer_config()
  # eps well above float noise: Adam's first update is lr * g / (|g| + eps), which for |g| ~ eps
  # turns summation-order noise of a sharded reduction into O(lr) differences.
  cfg.name, cfg.lr, cfg.warmup_steps, cfg.weight_decay, cfg.eps = name, 1e-2, 0, 0.1, 1e-4
  return optim.make_optimizer(cfg, total_steps=10)


_MODEL = {}


def _model():
  """One set of initial weights (host copy) for every mesh: both runs start from the same point."""
  if not _MODEL:
    graphdef, params = state_lib.split_params(Transformer(CFG, rngs=nnx.Rngs(0)))
    _MODEL["split"] = graphdef, jax.device_get(params)  # numpy: the donated step cannot delete it
  return _MODEL["split"]


def _run(mesh, name="adamw", forward=True):
  """Forward logits, then one SFT step: (logits, metrics, new state) on `mesh`."""
  graphdef, params = _model()
  tx, schedule = _opt(name)
  st = state_lib.make_state(params, tx, mesh, seed=0)
  batch = mesh_lib.shard_batch(_batch(), mesh)
  pshard = mesh_lib.tree_shardings(st.params, mesh)
  fwd = jax.jit(lambda p, b: nnx.merge(graphdef, p)(b["tokens"], mask=b["mask"]),
                in_shardings=(pshard, mesh_lib.batch_shardings(batch, mesh)))
  logits = fwd(st.params, batch) if forward else None
  step = update.jit_train_step(sft.make_sft_step(graphdef, tx, schedule, mesh=mesh),
                               state_lib.state_shardings(st, mesh), batch, mesh)
  new, metrics = step(st, batch, jax.random.PRNGKey(1))
  return None if logits is None else np.asarray(logits), jax.device_get(metrics), new


@pytest.fixture(scope="module")
def single():
  return _run(mesh_lib.make_mesh({"data": 1, "fsdp": 1, "tensor": 1}, devices=jax.devices()[:1]))


@pytest.fixture(scope="module")
def sharded():
  assert jax.device_count() == 8, "tests/conftest.py should fake 8 CPU devices"
  return _run(mesh_lib.make_mesh({"data": 2, "fsdp": 2, "tensor": 2}))


def test_forward_and_adamw_step_match_single_device(single, sharded):
  logits1, m1, s1 = single
  logits8, m8, s8 = sharded
  np.testing.assert_allclose(logits8, logits1, atol=1e-5, rtol=1e-5)
  for k in ("loss", "grad_norm", "accuracy", "weight"):
    np.testing.assert_allclose(m8[k], m1[k], rtol=1e-5, err_msg=k)
  # A sharding bug moves params by ~lr = 1e-2; float noise stays far below 1e-6.
  for a, b in zip(jax.tree.leaves(s8.params), jax.tree.leaves(s1.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(s8.opt_state), jax.tree.leaves(s1.opt_state)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-7, rtol=1e-5)
  assert int(state_lib.step_of(s8.opt_state)) == 1


def _expected_shard_shape(shape, axes, mesh):
  out = list(shape)
  for i, name in enumerate(axes):
    target = mesh_lib.RULES[name]
    if target is not None:
      out[i] //= mesh.shape[target]
  return tuple(out)


def test_params_and_moments_are_sharded_by_the_rules(sharded):
  _, _, st = sharded
  mesh = jax.tree.leaves(st.params)[0].sharding.mesh
  is_var = lambda x: isinstance(x, nnx.Variable)
  seen = set()
  for path, var in jax.tree_util.tree_leaves_with_path(st.params, is_leaf=is_var):
    axes = var.get_metadata()["axes"]
    arr = var[...]
    assert arr.sharding.spec == mesh_lib.logical_spec(axes), path
    assert arr.addressable_shards[0].data.shape == _expected_shard_shape(arr.shape, axes, mesh), path
    seen.update(mesh_lib.RULES[a] for a in axes)
  assert {"fsdp", "tensor"} <= seen  # both model axes really split something
  wq = st.params["blocks"][0]["attn"]["wq"][...]  # (embed, heads, head_dim) -> (fsdp, tensor, -)
  assert wq.addressable_shards[0].data.shape == (CFG.d_model // 2, CFG.n_heads // 2, CFG.head_dim)
  # Adam moments follow their parameter, not one device.
  mu = st.opt_state[1][0].mu["blocks"][0]["attn"]["wq"][...]
  assert mu.sharding.spec == wq.sharding.spec and len(mu.sharding.device_set) == 8


def test_adafactor_step_matches_single_device():
  one = mesh_lib.make_mesh({"data": 1, "fsdp": 1, "tensor": 1}, devices=jax.devices()[:1])
  _, m1, s1 = _run(one, "adafactor", forward=False)
  _, m8, s8 = _run(mesh_lib.make_mesh({"data": 2, "fsdp": 2, "tensor": 2}), "adafactor", forward=False)
  np.testing.assert_allclose(m8["loss"], m1["loss"], rtol=1e-5)
  for a, b in zip(jax.tree.leaves(s8.params), jax.tree.leaves(s1.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=1e-5)


def test_mesh_shape_errors_name_the_field():
  with pytest.raises(ValueError, match="config.mesh"):
    mesh_lib.make_mesh({"data": 3, "fsdp": 2, "tensor": 1})
  with pytest.raises(ValueError, match="config.batch_size=6"):
    mesh_lib.check_batch_size(6, mesh_lib.make_mesh({"data": 2, "fsdp": 2, "tensor": 2}))
