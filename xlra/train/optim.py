"""Optimizers and learning-rate schedules from config (`config.optimizer`).

The chain is clip -> AdamW or Adafactor, with the learning rate a schedule of the update count.
Every optimizer here carries an optax `count`, which is the one place the step number lives
(`step_of`), so a restored optimizer state restores the step too.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax

OPTIMIZERS = ("adamw", "adafactor")
DECAYS = ("cosine", "linear", "constant")


def make_schedule(opt: ml_collections.ConfigDict, total_steps: int) -> Callable[[jax.Array], jax.Array]:
  """Linear warm-up to `opt.lr` over `opt.warmup_steps`, then cosine/linear/constant decay.

  Decay ends at `opt.lr * opt.end_lr_frac` at `total_steps`. Warm-up counts from step + 1 so the
  very first update already moves the weights (a schedule that starts at 0 wastes step 0).
  """
  if opt.decay not in DECAYS:
    raise ValueError(f"config.optimizer.decay={opt.decay!r}: choose one of {DECAYS}")
  peak, warm, end = float(opt.lr), int(opt.warmup_steps), float(opt.end_lr_frac)
  decay_steps = max(total_steps - warm, 1)

  def schedule(count):
    count = jnp.asarray(count, jnp.float32)
    warmup = jnp.minimum(1.0, (count + 1.0) / max(warm, 1))
    frac = jnp.clip((count - warm) / decay_steps, 0.0, 1.0)
    if opt.decay == "cosine":
      decay = end + (1.0 - end) * 0.5 * (1.0 + jnp.cos(jnp.pi * frac))
    elif opt.decay == "linear":
      decay = 1.0 - (1.0 - end) * frac
    else:
      decay = jnp.ones_like(frac)
    return peak * warmup * decay

  return schedule


def _decay_mask(params: Any) -> Any:
  """Weight decay on matrices only: norms' scales and biases keep their value."""
  return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(opt: ml_collections.ConfigDict, total_steps: int
                   ) -> tuple[optax.GradientTransformation, Callable[[jax.Array], jax.Array]]:
  """(optimizer, schedule) for `config.optimizer` over a run of `total_steps` updates."""
  schedule = make_schedule(opt, total_steps)
  if opt.name == "adamw":
    core = optax.adamw(schedule, b1=opt.b1, b2=opt.b2, eps=opt.eps, weight_decay=opt.weight_decay,
                       mask=_decay_mask)
  elif opt.name == "adafactor":
    # Adafactor as in T5 fine-tuning: factored second moments, no momentum, an explicit learning
    # rate (not the relative-step heuristic), decoupled weight decay when configured.
    core = optax.adafactor(schedule, multiply_by_parameter_scale=False,
                           weight_decay_rate=opt.weight_decay or None,
                           weight_decay_mask=_decay_mask if opt.weight_decay else None)
  else:
    raise ValueError(f"config.optimizer.name={opt.name!r}: choose one of {OPTIMIZERS}")
  parts = [optax.clip_by_global_norm(opt.clip_norm)] if opt.clip_norm > 0 else []
  return optax.chain(*parts, core), schedule


def step_of(opt_state: Any) -> jax.Array:
  """Number of optimizer updates applied so far (int32 scalar), read from the optax state."""
  found = optax.tree_utils.tree_get_all_with_path(opt_state, "count")
  if not found:
    raise ValueError("optimizer state has no `count`; build optimizers with xlra.train.optim")
  return found[0][1]


def default_optimizer_config() -> ml_collections.ConfigDict:
  """The fields `make_optimizer` reads, with defaults suited to fine-tuning small models."""
  return ml_collections.ConfigDict(dict(
      name="adamw", lr=1e-4, warmup_steps=10, decay="cosine", end_lr_frac=0.1, weight_decay=0.0,
      b1=0.9, b2=0.95, eps=1e-8, clip_norm=1.0))
