"""Cached, resumable stages with a progress display across the whole pipeline.

A stage is a named function whose JSON result is written to `WORKDIR/stages/NAME.json` when it
finishes. A finished stage is never rerun; an interrupted one is rerun and resumes from its own
checkpoints (the training jobs do that themselves). Stage weights (expected relative cost) drive the
remaining-time estimate.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable

from xlra import files
from xlra.parallel.distributed import is_main_process


def _fmt(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  return f"{seconds // 60}m{seconds % 60:02d}s"


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

  def run(self, name: str, fn: Callable[[], Any]) -> Any:
    if name not in self.weights:
      raise KeyError(f"stage {name!r} is not in the pipeline plan")
    path = self._path(name)
    i = self.order.index(name) + 1
    if os.path.exists(path):
      record = files.read_json(path)
      self.timing[name] = record["seconds"]
      self._say(f"[{i}/{len(self.order)}] {name}: done earlier ({record['seconds']:.1f}s), skipped")
      return record["result"]
    self._say(f"[{i}/{len(self.order)}] {name}: running  {self._eta()}")
    t0 = time.time()
    result = fn()
    seconds = time.time() - t0
    if is_main_process():
      files.write_json(path, {"stage": name, "seconds": seconds, "result": result})
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
