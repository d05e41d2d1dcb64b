"""`transformer.matmul` / `dense` (backward pass laid out by hand on CPU) give the gradients of a
plain matmul, alone (both ways of forming the weight gradient, batched and not) and inside whole
models (GQA with a tied head, Qwen's q/k/v biases, Gemma 2's sliding window and softcaps)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from xlra.models import transformer
from xlra.models.presets import get_preset
from xlra.models.transformer import Transformer, dense, matmul


def _plain(x, w, out_dtype):
  """jnp.matmul under JAX's own autodiff: the reference."""
  return jnp.matmul(x, w, preferred_element_type=out_dtype)


@pytest.mark.parametrize("dtype,out_dtype", [("float32", None), ("bfloat16", "float32")])
@pytest.mark.parametrize("a_shape,b_shape", [
    ((2, 5, 8), (8, 6)),  # dense over flattened rows: db = a^T @ dy
    ((12, 16), (16, 3)),  # a wider than dy: db = (dy^T @ a)^T
    ((2, 3, 7, 4), (2, 3, 4, 9)),  # batched (attention scores)
    ((2, 3, 7, 9), (2, 3, 9, 4)),  # batched, the other way (probabilities @ values)
])
def test_matmul_gradients_match_autodiff(dtype, out_dtype, a_shape, b_shape):
  ka, kb, kc = jax.random.split(jax.random.PRNGKey(0), 3)
  a = jax.random.normal(ka, a_shape).astype(dtype)
  b = jax.random.normal(kb, b_shape).astype(dtype)
  op = dense if len(b_shape) == 2 else matmul
  out_dt = jnp.dtype(out_dtype or dtype)
  cot = jax.random.normal(kc, op(a, b, out_dtype).shape)
  loss = lambda f: lambda a, b: jnp.sum(f(a, b).astype(jnp.float32) * cot)
  got = jax.jit(jax.grad(loss(lambda a, b: op(a, b, out_dtype)), (0, 1)))(a, b)
  want = jax.jit(jax.grad(loss(lambda a, b: _plain(a, b, out_dt)), (0, 1)))(a, b)
  tol = 1e-5 if dtype == "float32" else 3e-2
  for g, r in zip(got, want):
    assert g.dtype == r.dtype
    np.testing.assert_allclose(np.asarray(g, np.float32), np.asarray(r, np.float32), rtol=tol, atol=tol)
  assert op(a, b, out_dtype).dtype == out_dt


def test_dense_rejects_mixed_dtypes():
  with pytest.raises(TypeError, match="compute dtype"):
    dense(jnp.ones((2, 3), jnp.bfloat16), jnp.ones((3, 4), jnp.float32))
  with pytest.raises(ValueError, match="leading dims"):
    matmul(jnp.ones((2, 3, 4)), jnp.ones((3, 4, 5)))


@pytest.mark.parametrize("cfg", [
    get_preset("tiny", vocab_size=96, max_seq_len=32),
    get_preset("tiny", vocab_size=96, max_seq_len=32, family="qwen2", qkv_bias=True, tie_embeddings=False),
    get_preset("gemma2_2b", vocab_size=96, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=8, d_ff=64,
               sliding_window=4, layer_types=("sliding", "full"), max_seq_len=32),
], ids=["llama-tied", "qwen2-bias", "gemma2-sliding-softcap"])
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
  monkeypatch.setattr(transformer, "_cpu_matmul", _plain)
  want = jax.jit(jax.grad(loss))(params)
  for (path, g), r in zip(jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=1e-4, atol=1e-6, err_msg=jax.tree_util.keystr(path))
  assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(got)) > 1e-3  # gradients are not all ~0
