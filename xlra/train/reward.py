"""Reward models: pointwise binary cross-entropy and pairwise Bradley-Terry, on a `ScalarModel`.

The reward is the scalar head at the last real token of a right-padded row (the EOS when the
output has one). Batches:
- pointwise (Seahorse-style good/bad): `tokens`, `mask` [B, L], `label` [B] in {0, 1};
- pairwise (OpenAssistant-style): `chosen_tokens`, `chosen_mask`, `rejected_tokens`,
  `rejected_mask` [B, L], optional `margin` [B] (Llama-2-style preference strength).
The per-example losses are plain functions of the scores so tests can check them (and their
gradients) against closed forms.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from xlra.train.update import Batch, make_eval_step, make_train_step, row_weights

RM_LOSSES = ("pointwise", "pairwise")


def bce_loss(scores: jax.Array, labels: jax.Array) -> jax.Array:
  """Per-example -[y log sigmoid(s) + (1 - y) log(1 - sigmoid(s))], stable: softplus(s) - y s."""
  s = jnp.asarray(scores, jnp.float32)
  return jax.nn.softplus(s) - jnp.asarray(labels, jnp.float32) * s


def bradley_terry_loss(chosen: jax.Array, rejected: jax.Array, margin: jax.Array | float = 0.0) -> jax.Array:
  """Per-pair -log sigmoid(r_chosen - r_rejected - margin) = softplus(-(diff - margin))."""
  diff = jnp.asarray(chosen, jnp.float32) - jnp.asarray(rejected, jnp.float32)
  return jax.nn.softplus(-(diff - margin))


def centering_loss(chosen: jax.Array, rejected: jax.Array) -> jax.Array:
  """Per-pair (r_chosen + r_rejected)^2 (Eisenstein et al. 2023): BT only fixes reward differences;
  this pins the free offset near 0 so rewards are comparable across models and runs."""
  return jnp.square(jnp.asarray(chosen, jnp.float32) + jnp.asarray(rejected, jnp.float32))


def pointwise_loss(model: nnx.Module, batch: Batch, rng: jax.Array | None = None):
  """(summed BCE, examples, {accuracy, score, positive_rate}) for a pointwise batch."""
  del rng
  s = model.score(batch["tokens"], batch["mask"])
  y = batch["label"].astype(jnp.float32)
  w = row_weights(batch, s.shape[0])
  correct = ((s > 0).astype(jnp.float32) == y).astype(jnp.float32)
  return jnp.sum(w * bce_loss(s, y)), jnp.sum(w), {"accuracy": jnp.sum(w * correct), "score": jnp.sum(w * s),
                                                   "positive_rate": jnp.sum(w * y)}


def pairwise_loss_fn(margin_scale: float = 0.0, center_coef: float = 0.0):
  """Loss function of a pairwise batch: BT with `margin_scale * batch['margin']` (when present)
  plus `center_coef` times the centering term. Chosen and rejected share one forward pass."""

  def loss(model: nnx.Module, batch: Batch, rng: jax.Array | None = None):
    del rng
    b = batch["chosen_tokens"].shape[0]
    tokens = jnp.concatenate([batch["chosen_tokens"], batch["rejected_tokens"]], axis=0)
    mask = jnp.concatenate([batch["chosen_mask"], batch["rejected_mask"]], axis=0)
    s = model.score(tokens, mask)
    rc, rr = s[:b], s[b:]
    margin = margin_scale * batch["margin"] if (margin_scale and "margin" in batch) else 0.0
    per_pair = bradley_terry_loss(rc, rr, margin)
    if center_coef:
      per_pair = per_pair + center_coef * centering_loss(rc, rr)
    w = row_weights(batch, b)
    stats = {"accuracy": jnp.sum(w * (rc > rr)), "score_chosen": jnp.sum(w * rc), "score_rejected": jnp.sum(w * rr)}
    return jnp.sum(w * per_pair), jnp.sum(w), stats

  return loss


def rm_loss_fn(kind: str, margin_scale: float = 0.0, center_coef: float = 0.0):
  if kind == "pointwise":
    return pointwise_loss
  if kind == "pairwise":
    return pairwise_loss_fn(margin_scale, center_coef)
  raise ValueError(f"config.rm.loss={kind!r}: choose one of {RM_LOSSES}")


def make_pointwise_rm_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation, schedule: Callable,
                           num_microbatches: int = 1, mesh=None):
  """`pointwise_rm_step(state, batch, rng) -> (state, metrics)`."""
  return make_train_step(graphdef, tx, pointwise_loss, schedule, num_microbatches, mesh)


def make_pairwise_rm_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation, schedule: Callable,
                          num_microbatches: int = 1, mesh=None, margin_scale: float = 0.0,
                          center_coef: float = 0.0):
  """`pairwise_rm_step(state, batch, rng) -> (state, metrics)`."""
  return make_train_step(graphdef, tx, pairwise_loss_fn(margin_scale, center_coef), schedule,
                         num_microbatches, mesh)


def make_rm_eval(graphdef: nnx.GraphDef, kind: str, margin_scale: float = 0.0, center_coef: float = 0.0):
  return make_eval_step(graphdef, rm_loss_fn(kind, margin_scale, center_coef))


def make_score_fn(graphdef: nnx.GraphDef) -> Callable[[nnx.State, jax.Array, jax.Array], jax.Array]:
  """`score(params, tokens, mask) -> [B]` float32 rewards (jit it with the params' shardings)."""
  return lambda params, tokens, mask: nnx.merge(graphdef, params).score(tokens, mask)
