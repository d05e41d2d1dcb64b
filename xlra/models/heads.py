"""Scalar heads on the decoder: reward models and PPO critics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from xlra.models.config import ModelConfig
from xlra.models.transformer import Transformer


def last_token_index(mask: jax.Array) -> jax.Array:
  """Index [B] of the last real token of each right-padded row (0 for an empty row)."""
  length = jnp.sum(mask.astype(jnp.int32), axis=1)
  return jnp.maximum(length - 1, 0)


class ScalarModel(nnx.Module):
  """Decoder plus a linear head giving one float32 scalar per token.

  The head starts at N(0, 1/sqrt(d+1)) with bias 0 (Huang et al., "N implementation details").
  Reward models read the scalar at the last real token (`score`); critics read every token (`values`).
  """

  def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs, backbone: Transformer | None = None):
    self.backbone = backbone if backbone is not None else Transformer(cfg, rngs=rngs)
    std = 1.0 / (cfg.d_model + 1) ** 0.5
    self.head_w = nnx.Param(std * jax.random.normal(rngs.params(), (cfg.d_model,), jnp.float32),
                            axes=("embed",))
    self.head_b = nnx.Param(jnp.zeros((), jnp.float32), axes=())

  def values(self, tokens, positions=None, mask=None) -> jax.Array:
    """Scalars at every position, float32 [B, L]."""
    hidden, _ = self.backbone.hidden(tokens, positions, mask)
    return jnp.einsum("bld,d->bl", hidden.astype(jnp.float32), self.head_w[...]) + self.head_b[...]

  def score(self, tokens, mask) -> jax.Array:
    """Reward [B] at the last real token of right-padded rows."""
    v = self.values(tokens, None, mask)
    return jnp.take_along_axis(v, last_token_index(mask)[:, None], axis=1)[:, 0]

  __call__ = score
