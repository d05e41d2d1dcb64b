"""The part every pure training step shares: gradients (with accumulation), clipping and the update.

A task supplies a *loss function* `loss_fn(model, batch, rng) -> (loss_sum, weight, stats)`:
the loss summed over its units (tokens for SFT, examples or pairs for reward models), the number of
units, and further per-unit sums to report (e.g. correct predictions). Working with sums makes
gradient accumulation exact: the accumulated step divides the summed gradient of all microbatches
by the total weight, which is the full-batch token (or pair) mean, whatever the split.

Gradient accumulation is an explicit `lax.scan` over microbatches inside the one jitted step rather
than `optax.MultiSteps`: one call is one optimizer update (so the optax count stays the step, and
the loop, checkpoints and schedules never see microsteps), no accumulator lives in the optimizer
state (nothing extra to checkpoint), and the data pipeline hands over whole batches.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from xlra.parallel import mesh as mesh_lib
from xlra.train.optim import step_of
from xlra.train.state import TrainState

Batch = Mapping[str, jax.Array]
LossFn = Callable[[nnx.Module, Batch, jax.Array], tuple[jax.Array, jax.Array, dict[str, jax.Array]]]


def row_weights(batch: Batch, rows: int) -> jax.Array:
  """Per-row weights [rows]: `example_weight` when the batch has one (evaluation pads its last
  batch with weight-0 rows so every batch has the compiled shape), else ones."""
  w = batch.get("example_weight")
  return jnp.ones((rows,), jnp.float32) if w is None else w.astype(jnp.float32)


def split_microbatches(batch: Batch, n: int, mesh: Mesh | None = None) -> dict[str, jax.Array]:
  """[B, ...] -> [n, B/n, ...], microbatch i taking rows i, i+n, ... so that every device's
  contiguous shard of the batch contributes to every microbatch (no idle devices)."""
  out = {}
  for k, v in batch.items():
    b = v.shape[0]
    v = jnp.swapaxes(v.reshape(b // n, n, *v.shape[1:]), 0, 1)
    if mesh is not None:
      spec = P(None, mesh_lib.BATCH_AXES, *([None] * (v.ndim - 2)))
      v = jax.lax.with_sharding_constraint(v, NamedSharding(mesh, spec))
    out[k] = v
  return out


def loss_and_grads(graphdef: nnx.GraphDef, loss_fn: LossFn, params: nnx.State, batch: Batch,
                   rng: jax.Array, num_microbatches: int = 1, mesh: Mesh | None = None):
  """(loss_sum, weight, stats, grads_of_loss_sum), accumulated over microbatches."""

  def one(mb, key):
    def f(p):
      total, weight, stats = loss_fn(nnx.merge(graphdef, p), mb, key)
      return total, (weight, stats)

    (total, (weight, stats)), grads = jax.value_and_grad(f, has_aux=True)(params)
    return total, weight, stats, grads

  if num_microbatches == 1:
    return one(batch, rng)
  mbs = split_microbatches(batch, num_microbatches, mesh)
  keys = jax.random.split(rng, num_microbatches)
  first = jax.eval_shape(one, jax.tree.map(lambda x: x[0], mbs), keys[0])
  zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), first)

  def body(acc, xs):
    return jax.tree.map(jnp.add, acc, one(*xs)), None

  out, _ = jax.lax.scan(body, zeros, (mbs, keys))
  return out


def make_train_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation, loss_fn: LossFn,
                    schedule: Callable[[jax.Array], jax.Array], num_microbatches: int = 1,
                    mesh: Mesh | None = None) -> Callable[[TrainState, Batch, jax.Array], tuple[TrainState, dict]]:
  """A pure `step(state, batch, rng) -> (state, metrics)`; `rng` is a base key into which the step
  folds the update count. Metrics: loss (per unit), every stat per unit, grad_norm (before
  clipping), lr, weight (units in the batch)."""

  def step(state: TrainState, batch: Batch, rng: jax.Array):
    count = step_of(state.opt_state)
    key = jax.random.fold_in(rng, count)
    total, weight, stats, grads = loss_and_grads(graphdef, loss_fn, state.params, batch, key,
                                                 num_microbatches, mesh)
    denom = jnp.maximum(weight, 1.0)
    grads = jax.tree.map(lambda g: g / denom, grads)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": total / denom, "grad_norm": optax.tree.norm(grads), "lr": schedule(count),
               "weight": weight, **{k: v / denom for k, v in stats.items()}}
    return state.replace(params=params, opt_state=opt_state), metrics

  return step


def make_eval_step(graphdef: nnx.GraphDef, loss_fn: LossFn) -> Callable[[nnx.State, Batch], dict]:
  """`eval(params, batch) -> sums` (loss, weight, stats); the caller adds them over the set."""

  def evaluate(params: nnx.State, batch: Batch):
    total, weight, stats = loss_fn(nnx.merge(graphdef, params), batch, jax.random.PRNGKey(0))
    return {"loss": total, "weight": weight, **stats}

  return evaluate


def jit_train_step(step, state_shardings: TrainState, batch: Mapping[str, Any], mesh: Mesh):
  """Jit once with pinned shardings; the state is donated (updated in place)."""
  rep = NamedSharding(mesh, P())
  return jax.jit(step, in_shardings=(state_shardings, mesh_lib.batch_shardings(batch, mesh), rep),
                 out_shardings=(state_shardings, rep), donate_argnums=(0,))


def jit_eval_step(evaluate, params_shardings: Any, batch: Mapping[str, Any], mesh: Mesh):
  rep = NamedSharding(mesh, P())
  return jax.jit(evaluate, in_shardings=(params_shardings, mesh_lib.batch_shardings(batch, mesh)),
                 out_shardings=rep)
