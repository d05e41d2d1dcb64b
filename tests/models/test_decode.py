"""KV-cache decoding equals the full forward: left-padded prefill, then one token at a time."""

from __future__ import annotations

import numpy as np
import pytest
from flax import nnx

from hf_testing import logits, random_model
from xlra.models.presets import get_preset

_CONFIGS = {
    "llama": get_preset("tiny", vocab_size=96),
    # Gemma 2 switches with a window (4) shorter than the decoded sequence (12), so slots leave the window.
    "gemma2": get_preset("tiny", vocab_size=96, family="gemma2", act="gelu_tanh", norm_offset=True, post_norms=True,
                         embed_scale=True, attn_softcap=5.0, final_softcap=3.0, query_pre_attn_scalar=24,
                         sliding_window=4, layer_types=("sliding", "full")),
}


@nnx.jit
def _step(model, tokens, mask, cache):
  hidden, cache = model.hidden(tokens, mask=mask, cache=cache)
  return model.logits(hidden), cache


@pytest.mark.parametrize("name", sorted(_CONFIGS))
def test_cached_decode_matches_full_forward(name):
  model = random_model(_CONFIGS[name])
  rng = np.random.default_rng(0)
  prompt_len, steps = 6, 6
  prompt_mask = np.arange(prompt_len)[None] >= np.array([[0], [3]])  # row 1 left-padded by 3
  tokens = rng.integers(1, 96, (2, prompt_len + steps)).astype(np.int32)
  tokens[:, :prompt_len] = np.where(prompt_mask, tokens[:, :prompt_len], 0)
  full_mask = np.concatenate([prompt_mask, np.ones((2, steps), bool)], axis=1)
  full = logits(model, tokens, full_mask)  # default positions count real tokens, as the cache does

  cache = model.init_cache(2, prompt_len + steps)
  out, cache = _step(model, tokens[:, :prompt_len], prompt_mask, cache)
  np.testing.assert_allclose(np.asarray(out)[prompt_mask], full[:, :prompt_len][prompt_mask], atol=1e-5, rtol=0)
  for s in range(prompt_len, prompt_len + steps):
    out, cache = _step(model, tokens[:, s:s + 1], np.ones((2, 1), bool), cache)
    np.testing.assert_allclose(np.asarray(out)[:, 0], full[:, s], atol=1e-5, rtol=0, err_msg=f"step {s}")
