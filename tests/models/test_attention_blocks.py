"""Uncached attention in causal query blocks (ModelConfig.attn_block): the same logits as transformers'
PyTorch models, and the same loss gradients as one block, on padded and packed rows."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from hf_testing import CASES, batch, hf_model, logits, torch_logits
from xlra.models.hf import load_hf
from xlra.models.presets import get_preset
from xlra.models.transformer import MAX_QUERY_BLOCKS, Transformer, query_blocks


@pytest.mark.parametrize("length,block,want", [
    (12, 256, [(0, 12)]),
    (12, 0, [(0, 12)]),
    (12, 5, [(0, 4), (4, 8), (8, 12)]),
    (13, 4, [(0, 3), (3, 6), (6, 9), (9, 13)]),
    (512, 256, [(0, 256), (256, 512)]),
    (3, 1, [(0, 1), (1, 2), (2, 3)]),
])
def test_query_blocks_tile_the_sequence(length, block, want):
  assert query_blocks(length, block) == want


def test_query_blocks_are_capped():
  got = query_blocks(8192, 128)
  assert len(got) == MAX_QUERY_BLOCKS and got[0][0] == 0 and got[-1][1] == 8192
  assert all(a[1] == b[0] for a, b in zip(got, got[1:]))


def _with_block(model: Transformer, block: int) -> Transformer:
  """The same weights under a config with another attn_block."""
  new = nnx.eval_shape(lambda: Transformer(model.cfg.replace(attn_block=block), rngs=nnx.Rngs(0)))
  nnx.update(new, nnx.state(model))
  return new


@pytest.mark.parametrize("family", sorted(CASES))
def test_blocked_logits_match_transformers(family, tmp_path):
  """Three query blocks of 4 over 12 tokens (sliding windows of 4, softcaps, q/k norms, biases as each
  family has them): the real tokens' logits equal the PyTorch model's, right-padded rows included."""
  ref = hf_model(family)
  ref.save_pretrained(tmp_path, safe_serialization=True)
  model = _with_block(load_hf(str(tmp_path)), 5)
  assert len(query_blocks(12, model.cfg.attn_block)) == 3
  tokens, mask = batch()
  got, want = logits(model, tokens, mask), torch_logits(ref, tokens, mask)
  assert float(np.abs(got - want)[mask].max()) <= 1e-4


@pytest.mark.parametrize("cfg", [
    get_preset("tiny", vocab_size=96, max_seq_len=32),
    get_preset("gemma2_2b", vocab_size=96, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=8, d_ff=64,
               sliding_window=3, layer_types=("sliding", "full"), max_seq_len=32),
], ids=["llama", "gemma2-sliding-softcap"])
def test_blocked_gradients_equal_one_block(cfg):
  """Packed rows (two segments, positions restarting) plus padding: loss and gradients through four
  query blocks equal those through one, so training sees the same model either way."""
  model = Transformer(cfg.replace(attn_block=0), rngs=nnx.Rngs(0))
  rng = np.random.default_rng(0)
  tokens = jnp.asarray(rng.integers(1, cfg.vocab_size, (2, 16)), jnp.int32)
  mask = jnp.asarray(np.arange(16)[None] < np.array([[16], [11]]))
  seg = jnp.asarray(np.where(np.arange(16) < 7, 0, 1)[None].repeat(2, 0), jnp.int32)
  pos = jnp.asarray(np.where(np.arange(16) < 7, np.arange(16), np.arange(16) - 7)[None].repeat(2, 0), jnp.int32)
  weights = (mask[:, 1:] & (seg[:, 1:] == seg[:, :-1])).astype(jnp.float32)

  def loss_of(m):
    graphdef, params = nnx.split(m, nnx.Param)

    def loss(p):
      out = nnx.merge(graphdef, p)(tokens, positions=pos, mask=mask, segment_ids=seg)
      logp = jax.nn.log_softmax(out[:, :-1], axis=-1)
      return -jnp.sum(jnp.take_along_axis(logp, tokens[:, 1:, None], axis=-1)[..., 0] * weights)
    return jax.jit(jax.value_and_grad(loss))(params)

  (l1, g1), (l4, g4) = loss_of(model), loss_of(_with_block(model, 4))
  np.testing.assert_allclose(float(l4), float(l1), rtol=1e-6)
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(g4), jax.tree.leaves(g1)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6, err_msg=jax.tree_util.keystr(path))
  assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(g1)) > 1e-3
