"""Timing shared by the benchmarks: interleaved rounds, per-round ratios and the machine's load.

The CPU machines these run on are shared, so a benchmark never compares two numbers taken minutes
apart: it alternates the measured call and its reference within each round, computes the ratio per
round, and reports the median over rounds (the best of each side is printed too). The load
average at start and end is printed so a reader can judge the noise.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Callable, Mapping


def seconds(fn: Callable[[], object]) -> float:
  """Wall time of one call (fn must block until its work is done)."""
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def interleaved(fns: Mapping[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
  """Seconds per call of every function, alternating them within each round (after one warm-up
  call each, which also compiles)."""
  for fn in fns.values():
    fn()
  out: dict[str, list[float]] = {name: [] for name in fns}
  for _ in range(rounds):
    for name, fn in fns.items():
      out[name].append(seconds(fn))
  return out


def paired_ratios(num: list[float], den: list[float]) -> list[float]:
  return [a / b for a, b in zip(num, den)]


def median(xs: list[float]) -> float:
  return statistics.median(xs)


def load_line() -> str:
  """`load average 1.2 on 2 cores` (one-minute average), to judge how noisy the run was."""
  return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def print_ratio(value: float) -> None:
  """The last line of every benchmark."""
  print(f"ratio={value:.3f}", flush=True)
