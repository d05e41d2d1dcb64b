"""Training checkpoints (orbax) and the resume order of every training job.

    WORKDIR/checkpoints/<step>/   state: TrainState (params, optimizer state with the step, RNG key)
                                  loop:  JSON (data-iterator position, ...), so resumption is exact
    WORKDIR/best/<step>/          params at the best validation metric (orbax `best_fn`, keep 1)
    WORKDIR/model/                the exported model (xlra.models.checkpoint_io format: params/ and
                                  model.json): the best params, or the final ones without evaluation

Resume order (`resume_source`): the workdir's own latest readable checkpoint (`restore_latest`: a
corrupted one is set aside with a warning and the previous one used), then `config.init_checkpoint`
(a model directory, or another training workdir with a `model/` export), then a Hugging Face
directory (`config.init_hf`), then scratch. Every process calls save/restore (orbax saves
collectively); saves are asynchronous: `save` returns once the arrays are copied off the devices.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from xlra.models.checkpoint_io import MODEL, resolve_model_dir  # noqa: F401  (re-exported: the jobs' resolver)

CHECKPOINTS, BEST, CORRUPT = "checkpoints", "best", "checkpoints_corrupt"


class CorruptCheckpointError(RuntimeError):
  """No checkpoint of the workdir reads back."""


def restore_target(abstract: Any, shardings: Any) -> Any:
  """ShapeDtypeStruct tree with each leaf's sharding, from an abstract tree (Variables kept) and a
  shardings tree whose leaves line up with it (as `xlra.parallel.mesh.tree_shardings` returns)."""
  leaves, treedef = jax.tree.flatten(abstract)
  shard_leaves = jax.tree.leaves(shardings)
  if len(leaves) != len(shard_leaves):
    raise ValueError(f"restore target has {len(leaves)} arrays but {len(shard_leaves)} shardings")
  return treedef.unflatten([jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s) for x, s in zip(leaves, shard_leaves)])


class _QuietOrbax(logging.Filter):
  """Orbax logs a dozen INFO lines per save; keep its warnings and errors only."""

  def filter(self, record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or "orbax" not in record.pathname


def quiet_orbax() -> None:
  absl_logger = logging.getLogger("absl")
  if not any(isinstance(f, _QuietOrbax) for f in absl_logger.filters):
    absl_logger.addFilter(_QuietOrbax())


class Checkpointer:
  """The latest-n manager (full state, for resumption) and the best-1 manager (params, for export)."""

  def __init__(self, workdir: str, keep: int = 2, best_metric: str | None = None, best_mode: str = "min",
               async_save: bool = True):
    quiet_orbax()
    if best_mode not in ("min", "max"):
      raise ValueError(f"config.best_mode={best_mode!r}: choose 'min' or 'max'")
    self.workdir = os.path.abspath(workdir)
    self.best_metric = best_metric
    self.latest = ocp.CheckpointManager(
        os.path.join(self.workdir, CHECKPOINTS), item_names=("state", "loop"),
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=async_save))
    self.best = None
    if best_metric:
      self.best = ocp.CheckpointManager(
          os.path.join(self.workdir, BEST), item_names=("params",),
          options=ocp.CheckpointManagerOptions(max_to_keep=1, best_fn=lambda m: m[best_metric], best_mode=best_mode,
                                               keep_checkpoints_without_metrics=False,
                                               enable_async_checkpointing=async_save))

  # -- the latest checkpoints ---------------------------------------------------------------------

  def latest_step(self) -> int | None:
    return self.latest.latest_step()

  def path(self, step: int | None) -> str:
    """Where the checkpoint of `step` lives ("none" before the first save)."""
    return "none" if step is None else os.path.join(self.workdir, CHECKPOINTS, str(step))

  def save(self, step: int, state: Any, loop_state: dict, force: bool = True) -> None:
    self.latest.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                   loop=ocp.args.JsonSave(loop_state)), force=force)

  def restore(self, step: int, target: Any) -> tuple[Any, dict]:
    """(state, loop_state) of `step`, each array read straight onto the sharding in `target`."""
    out = self.latest.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target),
                                                            loop=ocp.args.JsonRestore()))
    return out.state, dict(out.loop)

  def restore_latest(self, target: Any) -> tuple[int, Any, dict] | None:
    """(step, state, loop_state) of the newest checkpoint that reads back; None when there is none.

    A checkpoint that fails to restore (files truncated or garbled after it was written: a disk
    fault, a copy cut short) is skipped with a warning; once an older one reads back, the bad ones
    move to WORKDIR/checkpoints_corrupt/ (so the resumed run can save those steps again) and the
    warning names the checkpoint used instead. When none reads back (also when the model changed
    shape), nothing is moved and the error quotes the first failure.
    """
    failed: list[tuple[int, str]] = []
    for step in sorted(self.latest.all_steps(), reverse=True):
      try:
        state, loop_state = self.restore(step, target)
      except Exception as e:  # orbax, tensorstore and json each raise their own kinds: all mean unreadable
        failed.append((step, f"{type(e).__name__}: {str(e)[:300]}"))
        logging.warning("checkpoint %s is unreadable (%s)", self.path(step), failed[-1][1])
        continue
      if failed:
        moved = self._set_aside([s for s, _ in failed])
        logging.warning("resuming from the previous checkpoint %s instead: checkpoint(s) %s were unreadable "
                        "(truncated or corrupted) and were moved to %s", self.path(step),
                        ", ".join(str(s) for s, _ in failed), moved)
      return step, state, loop_state
    if failed:
      raise CorruptCheckpointError(
          f"no checkpoint in {os.path.join(self.workdir, CHECKPOINTS)} reads back (steps "
          f"{[s for s, _ in failed]}; newest: {failed[0][1]}). If the model or optimizer config changed, "
          f"use a new workdir; otherwise move that directory away to start over.")
    return None

  def _set_aside(self, steps: list[int]) -> str:
    """Move unreadable step directories to WORKDIR/checkpoints_corrupt/ (process 0) and re-read the list."""
    dest = os.path.join(self.workdir, CORRUPT)
    if jax.process_index() == 0:
      os.makedirs(dest, exist_ok=True)
      for step in steps:
        target, n = os.path.join(dest, str(step)), 1
        while os.path.exists(target):  # the same step went bad in an earlier life too
          target, n = os.path.join(dest, f"{step}.{n}"), n + 1
        os.replace(self.path(step), target)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils
      multihost_utils.sync_global_devices("xlra_checkpoints_set_aside")
    self.latest.reload()
    return dest

  # -- the best params ----------------------------------------------------------------------------

  def save_best(self, step: int, params: Any, metrics: dict[str, float]) -> None:
    """Offer the params of an evaluation; orbax keeps them only while they are the best so far."""
    if self.best is None or self.best_metric not in metrics:
      return
    if step in self.best.all_steps():  # an evaluation repeated after a resume
      return
    self.best.save(step, args=ocp.args.Composite(params=ocp.args.StandardSave(params)),
                   metrics={k: float(v) for k, v in metrics.items()})

  def best_step(self) -> int | None:
    return None if self.best is None else self.best.best_step()

  def best_metrics(self) -> dict[str, float]:
    """Every validation metric of the best params (saved with them)."""
    return dict(self.best.metrics(self.best_step()) or {})

  def restore_best(self, target: Any) -> Any:
    step = self.best_step()
    return self.best.restore(step, args=ocp.args.Composite(params=ocp.args.StandardRestore(target))).params

  def wait(self) -> None:
    self.latest.wait_until_finished()
    if self.best is not None:
      self.best.wait_until_finished()

  def close(self) -> None:
    self.latest.close()
    if self.best is not None:
      self.best.close()


def model_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), MODEL)


def resume_source(latest_step: int | None, init_checkpoint: str, init_hf: str) -> tuple[str, str | None]:
  """Where a job's weights come from, in the documented order, given the workdir's latest step:
  ("workdir", None) | ("checkpoint", model_dir) | ("hf", hf_dir) | ("scratch", None)."""
  if latest_step is not None:
    return "workdir", None
  if init_checkpoint:
    return "checkpoint", resolve_model_dir(init_checkpoint)
  if init_hf:
    if not os.path.exists(os.path.join(init_hf, "config.json")):
      raise FileNotFoundError(f"config.init_hf={init_hf!r} has no config.json (a Hugging Face checkpoint directory)")
    return "hf", init_hf
  return "scratch", None
