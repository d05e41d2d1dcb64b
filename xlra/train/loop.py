"""The one training loop of every supervised job (SFT, reward models).

A job describes itself as a `Task` (model builder, loss function, data, how to load initial
weights); `train(config, workdir, task)` does the rest, in this order:
  1. validate durations, batch sizes and the mesh (errors name the config field) before compiling;
  2. weights from the resume order (workdir checkpoint > config.init_checkpoint > config.init_hf >
     scratch; see xlra.train.checkpoint), the data position and RNG with them;
  3. the step jitted once with pinned shardings and a donated state;
  4. per step: metrics kept on device, fetched every `log_every` steps (no per-step host sync),
     checked for NaN/Inf and loss spikes, written as JSONL + TensorBoard with tokens/s and MFU, and a
     progress line;
  5. evaluation every `eval_every` steps (and before the first step of a fresh run); the best
     params by `config.best_metric` kept by orbax;
  6. checkpoints every `checkpoint_every` steps and at the end; SIGTERM or `should_stop` saves and
     raises `TrainingInterrupted` (rerun the same command to resume);
  7. the export WORKDIR/model (best params, else final) in the xlra model format, with the task's
     tokenizer beside it.

Config fields read here (configs/sft.py documents them): seed, num_steps, num_epochs, batch_size,
eval_batch_size, num_microbatches, mesh, sharding_rules, optimizer, log_every, eval_every,
checkpoint_every, keep_checkpoints, async_checkpoints, best_metric, best_mode, peak_flops,
progress_every_s, init_checkpoint, init_hf, spike_factor, spike_warmup, spike_action.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
from typing import Any, Callable, Sequence

import jax
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from xlra.data.tokenizer import save_tokenizer
from xlra.models.checkpoint_io import save_model
from xlra.parallel import mesh as mesh_lib
from xlra.parallel.distributed import is_main_process
from xlra.train import checkpoint as ckpt_lib
from xlra.train import optim, state as state_lib, update
from xlra.train.metrics import MetricWriter, Progress, Throughput, device_peak_flops

Batch = dict[str, np.ndarray]


class NonFiniteError(FloatingPointError):
  """The loss or gradient norm became NaN/Inf."""


class LossSpikeError(RuntimeError):
  """The loss jumped above config.spike_factor x its running mean and config.spike_action is 'stop'."""


SPIKE_ACTIONS = ("warn", "stop")


class SpikeDetector:
  """Flags a loss above `factor` x the running mean of the losses before it (an EMA; a spike does not
  enter it), once `warmup` steps have been seen. factor 0 switches it off. Its mean is not
  checkpointed: a resumed run re-arms after `warmup` steps (it watches; it never changes the params)."""

  def __init__(self, factor: float, warmup: int, decay: float = 0.9):
    self.factor, self.warmup, self.decay = factor, warmup, decay
    self.mean, self.seen = 0.0, 0

  def check(self, loss: float) -> float | None:
    """The running mean `loss` exceeded by the factor, or None (and `loss` joins the mean)."""
    if self.factor and self.seen >= self.warmup and self.mean > 0 and loss > self.factor * self.mean:
      return self.mean
    self.mean = loss if self.seen == 0 else self.decay * self.mean + (1 - self.decay) * loss
    self.seen += 1
    return None


class TrainingInterrupted(RuntimeError):
  """Stopped early (SIGTERM or `should_stop`) after saving a checkpoint; rerun to resume."""


@dataclasses.dataclass
class Task:
  """What a job plugs into the loop.

  build_model: a fresh model (the scratch initialisation; also gives shapes and shardings).
  loss_fn:     `loss_fn(model, batch, rng) -> (loss_sum, weight, stats)` (xlra.train.update).
  train_data:  endless batches with `state() -> dict` and `restore(dict)` (xlra.data.batching.Loader).
  eval_data:   the validation batches (fixed shape; padding rows carry example_weight 0), or empty.
  load_init:   `(source, path, abstract_params, mesh, rules) -> params` for source "checkpoint" or
               "hf" (see checkpoint.resume_source); None if the task accepts only scratch.
  flops_per_token: training FLOPs per real token (metrics.flops_per_token).
  train_examples:  examples in one epoch (for config.num_epochs) and batch rows per example (pairs: 1).
  """
  name: str
  build_model: Callable[[], nnx.Module]
  loss_fn: update.LossFn
  train_data: Any
  eval_data: Sequence[Batch]
  load_init: Callable[..., nnx.State] | None
  flops_per_token: float
  train_examples: int
  compute_dtype: str = "float32"  # of the matmul peak measured for MFU when config.peak_flops is 0
  tokenizer: Any = None  # saved beside the exported model (the model and its tokenizer travel together)


@dataclasses.dataclass
class TrainResult:
  graphdef: nnx.GraphDef
  params: nnx.State  # the exported params (best, else final), placed on `mesh`
  mesh: jax.sharding.Mesh
  rules: dict
  step: int  # updates done
  best_step: int | None
  model_dir: str
  val: dict[str, float]  # validation metrics of the exported params ({} without eval data)


def total_steps(config: ml_collections.ConfigDict, train_examples: int) -> int:
  """config.num_steps, or config.num_epochs over the training set when num_steps is 0."""
  if config.num_steps > 0:
    return int(config.num_steps)
  if config.num_epochs <= 0:
    raise ValueError(f"config.num_steps={config.num_steps} and config.num_epochs={config.num_epochs}: set one "
                     f"of them to a positive value")
  steps = int(math.ceil(config.num_epochs * train_examples / config.batch_size))
  if steps < 1:
    raise ValueError(f"config.num_epochs={config.num_epochs} over {train_examples} examples is less than one "
                     f"batch of config.batch_size={config.batch_size}")
  return steps


def validate(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> None:
  """Batch sizes, microbatches and intervals, before anything compiles."""
  for field in ("batch_size", "eval_batch_size", "num_microbatches", "log_every", "keep_checkpoints"):
    if getattr(config, field) < 1:
      raise ValueError(f"config.{field}={getattr(config, field)} must be >= 1")
  for field in ("eval_every", "checkpoint_every", "num_steps", "spike_warmup"):
    if getattr(config, field) < 0:
      raise ValueError(f"config.{field}={getattr(config, field)} must be >= 0 (0: off / derived)")
  if config.spike_factor != 0 and not config.spike_factor > 1:
    raise ValueError(f"config.spike_factor={config.spike_factor}: use a factor > 1 (a spike is a loss above "
                     "factor x its running mean), or 0 to switch the detector off")
  if config.spike_action not in SPIKE_ACTIONS:
    raise ValueError(f"config.spike_action={config.spike_action!r}: choose one of {SPIKE_ACTIONS}")
  mesh_lib.check_batch_size(config.batch_size, mesh)
  mesh_lib.check_batch_size(config.eval_batch_size, mesh, "config.eval_batch_size")
  micro = config.batch_size // config.num_microbatches
  if config.batch_size % config.num_microbatches or micro % mesh_lib.batch_shards(mesh):
    raise ValueError(f"config.batch_size={config.batch_size} must split into config.num_microbatches="
                     f"{config.num_microbatches} microbatches that are each divisible by mesh data*fsdp="
                     f"{mesh_lib.batch_shards(mesh)}")
  if jax.process_count() > 1 and config.batch_size % jax.process_count():
    raise ValueError(f"config.batch_size={config.batch_size} must be divisible by the {jax.process_count()} processes")


def real_tokens(batch: Batch) -> int:
  """Non-padding tokens of a batch (every `mask`/`*_mask` array except the loss mask)."""
  return int(sum(np.sum(v) for k, v in batch.items() if k == "mask" or (k.endswith("_mask") and k != "loss_mask")))


def evaluate(eval_fn, params: nnx.State, batches: Sequence[Batch], mesh) -> dict[str, float]:
  """Per-unit validation metrics: every summed stat divided by the summed weight."""
  totals: dict[str, float] = {}
  for b in batches:
    out = jax.device_get(eval_fn(params, mesh_lib.shard_batch(b, mesh)))
    for k, v in out.items():
      totals[k] = totals.get(k, 0.0) + float(v)
  weight = max(totals.pop("weight", 0.0), 1e-9)
  return {k: v / weight for k, v in totals.items()}


class _StopFlag:
  """SIGTERM (preemption) asks the loop to checkpoint and stop at the next step boundary."""

  def __init__(self):
    self.set = False
    self._old = None

  def __enter__(self):
    try:
      self._old = signal.signal(signal.SIGTERM, self._handler)
    except ValueError:  # not the main thread: no signal handling
      self._old = None
    return self

  def _handler(self, signum, frame):
    logging.warning("SIGTERM: checkpointing and stopping at the next step")
    self.set = True

  def __exit__(self, *exc):
    if self._old is not None:
      signal.signal(signal.SIGTERM, self._old)


def _initial_params(task: Task, source: str, path: str | None, abstract, mesh, rules) -> nnx.State:
  if source == "scratch":
    return state_lib.init_params(task.build_model, mesh, rules)
  if task.load_init is None:
    raise ValueError(f"{task.name} cannot start from a {source} checkpoint ({path})")
  return task.load_init(source, path, abstract, mesh, rules)


def train(config: ml_collections.ConfigDict, workdir: str, task: Task,
          should_stop: Callable[[int], bool] | None = None) -> TrainResult:
  """Train `task` in `workdir` (resuming whatever is there) and export the model; see the module doc."""
  workdir = os.path.abspath(workdir)
  mesh = mesh_lib.make_mesh(dict(config.mesh))
  rules = mesh_lib.rules_from_config(config.sharding_rules)
  validate(config, mesh)
  steps = total_steps(config, task.train_examples)
  eval_every = config.eval_every if task.eval_data else 0
  steps_field = ("config.num_steps" if config.num_steps > 0 else
                 f"config.num_steps=0, derived from config.num_epochs={config.num_epochs} over {task.train_examples} "
                 f"examples at config.batch_size={config.batch_size}")
  tx, schedule = optim.make_optimizer(config.optimizer, steps, steps_field=steps_field)
  graphdef, abstract_params = state_lib.abstract_params(task.build_model)
  abstract = state_lib.abstract_state(abstract_params, tx)
  shardings = state_lib.state_shardings(abstract, mesh, rules)

  ckpt = ckpt_lib.Checkpointer(workdir, config.keep_checkpoints, config.best_metric if eval_every else None,
                               config.best_mode, config.async_checkpoints)
  latest = ckpt.latest_step()
  source, path = ckpt_lib.resume_source(latest, config.init_checkpoint, config.init_hf)
  if source == "workdir":
    latest, state, loop_state = ckpt.restore_latest(ckpt_lib.restore_target(abstract, shardings))
    task.train_data.restore(loop_state["data"])
  else:
    params = _initial_params(task, source, path, abstract_params, mesh, rules)
    state = state_lib.make_state(params, tx, mesh, config.seed, rules)
  start = int(jax.device_get(state.step))
  logging.info("%s: %s parameters, steps %d -> %d, weights from %s%s", task.name,
               f"{state_lib.count_params(state.params):,}", start, steps, source, f" ({path})" if path else "")

  eval_fn = update.jit_eval_step(update.make_eval_step(graphdef, task.loss_fn), shardings.params,
                                 task.eval_data[0], mesh) if task.eval_data else None
  writer = MetricWriter(workdir, resume_step=start)
  peak = config.peak_flops or device_peak_flops(task.compute_dtype)
  throughput = Throughput(task.flops_per_token, peak * jax.device_count())
  progress = Progress(task.name, steps, start, config.progress_every_s)
  rng = np.asarray(jax.device_get(state.rng))  # base key; the step folds its count in
  step_fn, pending = None, []
  last_saved = latest
  spikes = SpikeDetector(config.spike_factor, config.spike_warmup)

  def flush() -> dict[str, float]:
    """Fetch the pending step metrics, stop on NaN/Inf (and on a loss spike if asked), write them;
    returns the last row."""
    rows = jax.device_get([m for _, m in pending])
    last = {}
    for (s, _), m in zip(pending, rows):
      m = {k: float(v) for k, v in m.items()}
      bad = [k for k in ("loss", "grad_norm") if not math.isfinite(m[k])]
      if bad:
        writer.write(s, m)
        writer.close()
        raise NonFiniteError(f"{task.name}: {bad[0]}={m[bad[0]]} at step {s}; the last good checkpoint is "
                             f"{ckpt.path(last_saved)}. Lower config.optimizer.lr or tighten "
                             f"config.optimizer.clip_norm, then rerun (it resumes from that checkpoint).")
      mean = spikes.check(m["loss"])
      if mean is not None:
        msg = (f"{task.name}: loss spike at step {s}: loss={m['loss']:.4g} is {m['loss'] / mean:.1f}x the running "
               f"mean {mean:.4g} (config.spike_factor={config.spike_factor})")
        if config.spike_action == "stop":
          writer.write(s, m)
          writer.close()
          raise LossSpikeError(f"{msg}; the last good checkpoint is {ckpt.path(last_saved)}. Lower "
                               f"config.optimizer.lr or check the data of that step, then rerun (it resumes "
                               f"there), or set config.spike_action='warn'.")
        logging.warning("%s; continuing (config.spike_action='warn')", msg)
      last = m
    if pending:
      last.update(throughput.read())
      writer.write(pending[-1][0], last)
    pending.clear()
    return last

  def save(step: int) -> None:
    nonlocal last_saved
    if step != last_saved:
      ckpt.save(step, state, {"data": task.train_data.state(), "step": step})
      last_saved = step

  def run_eval(step: int) -> dict[str, float]:
    val = evaluate(eval_fn, state.params, task.eval_data, mesh)
    writer.write(step, val, split="val")
    if step > 0:
      ckpt.save_best(step, state.params, val)
    logging.info("%s step %d validation: %s", task.name, step, {k: round(v, 4) for k, v in val.items()})
    return val

  with _StopFlag() as stop:
    if start == 0 and eval_every:
      run_eval(0)
    step = start
    while step < steps:
      batch = next(task.train_data)
      sharded = mesh_lib.shard_batch(batch, mesh)
      if step_fn is None:
        step_fn = update.jit_train_step(
            update.make_train_step(graphdef, tx, task.loss_fn, schedule, config.num_microbatches, mesh),
            shardings, sharded, mesh)
      state, metrics = step_fn(state, sharded, rng)
      step += 1
      throughput.add(real_tokens(batch) * jax.process_count())
      pending.append((step, metrics))
      last = step == steps
      if step % config.log_every == 0 or last:
        row = flush()
        progress.update(step, {"loss": row["loss"]}, force=last)
      if eval_every and (step % eval_every == 0 or last):
        flush()
        run_eval(step)
      if (config.checkpoint_every and step % config.checkpoint_every == 0) or last:
        flush()
        save(step)
      if not last and (stop.set or (should_stop is not None and should_stop(step))):
        flush()
        save(step)
        ckpt.wait()
        ckpt.close()
        writer.close()
        raise TrainingInterrupted(f"{task.name} stopped at step {step}/{steps}; checkpoint "
                                  f"{ckpt.path(step)} saved; rerun the same command to resume")
  ckpt.wait()
  result = _export(workdir, task, graphdef, state, abstract_params, shardings, ckpt, mesh, rules)
  ckpt.close()
  writer.close()
  return result


def _export(workdir, task, graphdef, state, abstract_params, shardings, ckpt, mesh, rules) -> TrainResult:
  """WORKDIR/model from the best params (by config.best_metric), else the final ones."""
  best = ckpt.best_step()
  params, val = state.params, {}
  if best is not None:
    val = ckpt.best_metrics()  # stored with the params: no second pass over the validation set
    if best != int(jax.device_get(state.step)):
      params = ckpt.restore_best(ckpt_lib.restore_target(abstract_params, shardings.params))
  out = ckpt_lib.model_dir(workdir)
  save_model(nnx.merge(graphdef, params), out)
  if task.tokenizer is not None:
    save_tokenizer(task.tokenizer, out)
  if is_main_process():
    logging.info("%s: exported %s params (step %s) to %s; validation %s", task.name,
                 "best" if best is not None else "final", best if best is not None else "last", out, val)
  return TrainResult(graphdef, params, mesh, rules, int(jax.device_get(state.step)), best, out, val)
