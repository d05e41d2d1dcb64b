"""Cached, resumable stages with a progress display across the whole pipeline.

A stage is a named function whose JSON result is written to `WORKDIR/stages/NAME.json` when it
finishes, with the config it depended on. A finished stage is not rerun; an interrupted one is rerun
and resumes from its own checkpoints (the training jobs do that themselves). A finished stage whose
config differs from the current run's is an error naming the changed fields: its outputs would no
longer match what results.json says produced them. Stage weights (expected relative cost) drive the
remaining-time estimate.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Callable

from xlra import files
from xlra.parallel.distributed import is_main_process


def _fmt(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  return f"{seconds // 60}m{seconds % 60:02d}s"


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
  """Dotted paths where two JSON values differ."""
  if isinstance(a, dict) and isinstance(b, dict):
    return [d for k in sorted(set(a) | set(b)) for d in _diff(a.get(k), b.get(k), f"{prefix}{k}.")]
  return [] if a == b else [prefix.rstrip(".") or "(all)"]


class StageRunner:
  """Runs planned stages in order, skipping the finished ones, and reports progress across them."""

  def __init__(self, workdir: str, plan: list[tuple[str, float]], out=sys.stdout):
    self.dir = os.path.join(workdir, "stages")
    os.makedirs(self.dir, exist_ok=True)
    self.weights = dict(plan)
    if len(self.weights) != len(plan):
      raise ValueError("pipeline plan has duplicate stage names")
    self.order = [name for name, _ in plan]
    self.out = out
    self.start = time.time()
    self.timing: dict[str, float] = {}

  def _path(self, name: str) -> str:
    return os.path.join(self.dir, name.replace("/", "__") + ".json")

  def finished(self, name: str) -> bool:
    return os.path.exists(self._path(name))

  def run(self, name: str, fn: Callable[[], Any], config: dict | None = None) -> Any:
    """`config`: the JSON-able settings the stage depends on (checked against a finished stage's)."""
    if name not in self.weights:
      raise KeyError(f"stage {name!r} is not in the pipeline plan")
    path = self._path(name)
    i = self.order.index(name) + 1
    config = json.loads(json.dumps(config or {}))  # tuples -> lists, as read back from the file
    if os.path.exists(path):
      record = files.read_json(path)
      old = record.get("config")
      if old is not None and old != config:
        changed = sorted(_diff(old, config))
        raise ValueError(
            f"stage {name} finished in {os.path.dirname(self.dir)} with a different config (changed: "
            f"{', '.join(changed[:8])}{' ...' if len(changed) > 8 else ''}); use a new --workdir, or delete {path} "
            f"(and the stages after it) to redo it with this config")
      self.timing[name] = record["seconds"]
      self._say(f"[{i}/{len(self.order)}] {name}: done earlier ({record['seconds']:.1f}s), skipped")
      return record["result"]
    self._say(f"[{i}/{len(self.order)}] {name}: running  {self._eta()}")
    t0 = time.time()
    result = fn()
    seconds = time.time() - t0
    if is_main_process():
      files.write_json(path, {"stage": name, "seconds": seconds, "result": result, "config": config})
    self.timing[name] = seconds
    self._say(f"[{i}/{len(self.order)}] {name}: finished in {seconds:.1f}s")
    return result

  def _eta(self) -> str:
    """Remaining time from the seconds per unit of weight of every finished stage, including the
    stages a resumed run skipped (their recorded seconds)."""
    elapsed = time.time() - self.start
    if not self.timing:
      return f"elapsed {_fmt(elapsed)}"
    rate = sum(self.timing.values()) / sum(self.weights[n] for n in self.timing)
    remaining_w = sum(w for n, w in self.weights.items() if n not in self.timing)
    return f"elapsed {_fmt(elapsed)}, remaining ~{_fmt(rate * remaining_w)}"

  def _say(self, msg: str) -> None:
    if is_main_process():
      print(f"[pipeline] {msg}", file=self.out, flush=True)
