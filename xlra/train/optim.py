"""Optimizers and learning-rate schedules from config (`config.optimizer`).

The chain is clip -> AdamW or Adafactor, with the learning rate a schedule of the update count.
Every optimizer here carries an optax `count`, which is the one place the step number lives
(`step_of`), so a restored optimizer state restores the step too.
"""

from __future__ import annotations

from typing import Any, Callable

import math

import jax
import jax.numpy as jnp
import ml_collections
import optax
from absl import logging

OPTIMIZERS = ("adamw", "adafactor")
DECAYS = ("cosine", "linear", "constant")


def validate(opt: ml_collections.ConfigDict, total_steps: int, field: str = "config.optimizer",
             steps_field: str = "config.num_steps") -> None:
  """Refuses values no run can use, naming the field; warns when the warm-up outlasts the run.

  A warm-up longer than the run is warned about, not scaled down: a field the user set must take
  effect (or be refused), and a real preset's warm-up on a scaled-down run is a legitimate smoke
  test. The warning says how far the learning rate gets, so a run that barely trains is not silent.
  """
  lr, warm, end = float(opt.lr), int(opt.warmup_steps), float(opt.end_lr_frac)
  if not (math.isfinite(lr) and lr > 0):
    raise ValueError(f"{field}.lr={opt.lr}: the learning rate must be a positive number")
  if warm < 0:
    raise ValueError(f"{field}.warmup_steps={opt.warmup_steps} must be >= 0 (0: no warm-up)")
  if not 0.0 <= end <= 1.0:
    raise ValueError(f"{field}.end_lr_frac={opt.end_lr_frac} must be in [0, 1] (a fraction of {field}.lr)")
  if opt.decay not in DECAYS:
    raise ValueError(f"{field}.decay={opt.decay!r}: choose one of {DECAYS}")
  if warm > total_steps:
    frac = total_steps / warm  # the warm-up factor (count + 1) / warm at the last update, count = steps - 1
    logging.warning(
        "%s.warmup_steps=%d exceeds the run's %d updates (%s): the learning rate only reaches %.3g of "
        "%s.lr=%g (%.3g) at the last update. Lower %s.warmup_steps or train longer.", field, warm, total_steps,
        steps_field, frac, field, lr, lr * frac, field)


def make_schedule(opt: ml_collections.ConfigDict, total_steps: int, field: str = "config.optimizer",
                  steps_field: str = "config.num_steps") -> Callable[[jax.Array], jax.Array]:
  """Linear warm-up to `opt.lr` over `opt.warmup_steps`, then cosine/linear/constant decay.

  Decay ends at `opt.lr * opt.end_lr_frac` at `total_steps`. Warm-up counts from step + 1 so the
  very first update already moves the weights (a schedule that starts at 0 wastes step 0).
  `field` / `steps_field` name the config fields in errors and warnings (see `validate`).
  """
  validate(opt, total_steps, field, steps_field)
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


def make_optimizer(opt: ml_collections.ConfigDict, total_steps: int, field: str = "config.optimizer",
                   steps_field: str = "config.num_steps"
                   ) -> tuple[optax.GradientTransformation, Callable[[jax.Array], jax.Array]]:
  """(optimizer, schedule) for `config.optimizer` over a run of `total_steps` updates."""
  schedule = make_schedule(opt, total_steps, field, steps_field)
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
    raise ValueError(f"{field}.name={opt.name!r}: choose one of {OPTIMIZERS}")
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
