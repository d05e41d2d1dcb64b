"""Supervised fine-tuning: next-token cross-entropy on the response tokens.

Batch (right padded): `tokens` [B, L] int32, `mask` [B, L] bool (True at real tokens) and
`loss_mask` [B, L] (True where the token is a target, i.e. the response); packed rows add
`segment_ids` and `positions`. Position t predicts token t + 1, and a target counts when its own
`loss_mask` is set, so prompt tokens condition but are never predicted. Everything that touches
logits is float32 whatever the compute dtype.

With `target_index` [B, M] (xlra.data.batching.target_index: the positions that predict a target,
-1 padded) and M <= L / 2, the output projection and softmax run on those M positions per row only:
the same loss without the logits of prompt positions (1.2x the SFT step on the testbed's rows, 1.3x
at an 8k vocabulary: bench/sft_targets.py). Otherwise every position's logits are computed.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from xlra.train.update import Batch, make_eval_step, make_train_step, row_weights


def token_nll(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """-log p(target) [..] under softmax(logits), in float32."""
  return optax.losses.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)


def sft_loss(model: nnx.Module, batch: Batch, rng: jax.Array | None = None):
  """(summed NLL over target tokens, number of target tokens, {correct: greedy hits})."""
  del rng  # no dropout anywhere (Huang et al.): the step is deterministic
  tokens = batch["tokens"]
  rows = row_weights(batch, tokens.shape[0])[:, None]
  kw = dict(positions=batch.get("positions"), mask=batch["mask"], segment_ids=batch.get("segment_ids"))
  index = batch.get("target_index")
  # Gather when it skips at least half of the positions (static shapes: decided at trace time); on rows
  # that are nearly all targets (raw text for the base LM) the gather would cost more than it saves.
  if index is not None and 2 * index.shape[1] <= tokens.shape[1]:
    at = jnp.maximum(index, 0)
    hidden, _ = model.hidden(tokens, **kw)
    logits = model.logits(jnp.take_along_axis(hidden, at[..., None], axis=1))  # [B, M, V]
    targets = jnp.take_along_axis(tokens, at + 1, axis=1)
    weights = (index >= 0).astype(jnp.float32) * rows
  else:
    logits = model(tokens, **kw)[:, :-1]
    targets = tokens[:, 1:]
    weights = (batch["loss_mask"][:, 1:] & batch["mask"][:, 1:]).astype(jnp.float32) * rows
    if "segment_ids" in batch:  # never predict across a packing boundary
      seg = batch["segment_ids"]
      weights = weights * (seg[:, 1:] == seg[:, :-1])
  nll = token_nll(logits, targets)
  correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
  return jnp.sum(nll * weights), jnp.sum(weights), {"accuracy": jnp.sum(correct * weights)}


def make_sft_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation, schedule: Callable,
                  num_microbatches: int = 1, mesh=None):
  """`sft_step(state, batch, rng) -> (state, metrics)`, to be jitted once by the loop."""
  return make_train_step(graphdef, tx, sft_loss, schedule, num_microbatches, mesh)


def make_sft_eval(graphdef: nnx.GraphDef):
  return make_eval_step(graphdef, sft_loss)
