"""`transformer.dense` (hand-laid-out backward pass on CPU) gives the gradients of a plain matmul,
alone and inside whole models (GQA with a tied head, and Qwen's q/k/v biases)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from xlra.models import transformer
from xlra.models.presets import get_preset
from xlra.models.transformer import Transformer, dense


def _plain(x, w, out_dtype):
  """jnp.matmul under JAX's own autodiff: the reference."""
  return jnp.matmul(x, w, preferred_element_type=out_dtype)


@pytest.mark.parametrize("dtype,out_dtype", [("float32", None), ("bfloat16", "float32"), ("bfloat16", None)])
def test_dense_gradients_match_autodiff_of_matmul(dtype, out_dtype):
  kx, kw, kc = jax.random.split(jax.random.PRNGKey(0), 3)
  x = jax.random.normal(kx, (2, 5, 8)).astype(dtype)
  w = jax.random.normal(kw, (8, 6)).astype(dtype)
  cot = jax.random.normal(kc, (2, 5, 6))
  out_dt = jnp.dtype(out_dtype or dtype)
  loss = lambda f: lambda x, w: jnp.sum(f(x, w).astype(jnp.float32) * cot)
  got = jax.jit(jax.grad(loss(lambda x, w: dense(x, w, out_dtype)), (0, 1)))(x, w)
  want = jax.jit(jax.grad(loss(lambda x, w: _plain(x, w, out_dt)), (0, 1)))(x, w)
  tol = 1e-5 if dtype == "float32" else 2e-2
  for g, r in zip(got, want):
    assert g.dtype == r.dtype
    np.testing.assert_allclose(np.asarray(g, np.float32), np.asarray(r, np.float32), rtol=tol, atol=tol)
  assert dense(x, w, out_dtype).dtype == out_dt


def test_dense_rejects_mixed_dtypes():
  with pytest.raises(TypeError, match="compute dtype"):
    dense(jnp.ones((2, 3), jnp.bfloat16), jnp.ones((3, 4), jnp.float32))


@pytest.mark.parametrize("cfg", [
    get_preset("tiny", vocab_size=96, max_seq_len=32),
    get_preset("tiny", vocab_size=96, max_seq_len=32, family="qwen2", qkv_bias=True, tie_embeddings=False),
], ids=["llama-tied", "qwen2-bias"])
def test_model_gradients_match_plain_matmuls(cfg, monkeypatch):
  model = Transformer(cfg, rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(model, nnx.Param)
  rng = np.random.default_rng(0)
  tokens = jnp.asarray(rng.integers(0, cfg.vocab_size, (2, 12)), jnp.int32)
  mask = jnp.asarray(np.arange(12)[None] < np.array([[12], [7]]))

  def loss(p):
    logits = nnx.merge(graphdef, p)(tokens, mask=mask)
    logp = jax.nn.log_softmax(logits[:, :-1], axis=-1)
    nll = -jnp.take_along_axis(logp, tokens[:, 1:, None], axis=-1)[..., 0]
    return jnp.sum(nll * mask[:, 1:])

  got = jax.jit(jax.grad(loss))(params)
  monkeypatch.setattr(transformer, "_dense_cpu", _plain)
  want = jax.jit(jax.grad(loss))(params)
  for (path, g), r in zip(jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=1e-4, atol=1e-6, err_msg=jax.tree_util.keystr(path))
  assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(got)) > 1e-3  # gradients are not all ~0
