"""Deterministic random streams for the testbed, keyed by stable names (never Python's salted `hash()`).

`Stream(seed, "de", "sft", "summarize")` always yields the same draws for the same key, whatever else was
generated before, in which process, in which order. Draws come from a numpy PCG64 generator in blocks:
the testbed makes dozens of tiny draws per example, and one numpy call per draw would dominate the time.
"""

from __future__ import annotations

import hashlib
from typing import Sequence, TypeVar

import numpy as np

T = TypeVar("T")
_BLOCK = 512


def stable_key(*parts: object) -> list[int]:
  """Four 32-bit words from a BLAKE2b digest of the parts' string forms, for `np.random.SeedSequence`."""
  digest = hashlib.blake2b("\x1f".join(str(p) for p in parts).encode(), digest_size=16).digest()
  return [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]


class Stream:
  """Uniform draws for one named purpose."""

  def __init__(self, *key: object):
    self._rng = np.random.default_rng(stable_key(*key))
    self._buf: list[float] = []

  def random(self) -> float:
    if not self._buf:
      self._buf = self._rng.random(_BLOCK).tolist()[::-1]
    return self._buf.pop()

  def integers(self, low: int, high: int | None = None) -> int:
    """Uniform in [low, high), or [0, low) with one argument."""
    if high is None:
      low, high = 0, low
    return low + min(int(self.random() * (high - low)), high - low - 1)

  def permutation(self, n: int) -> list[int]:
    out = list(range(n))
    for i in range(n - 1, 0, -1):  # Fisher-Yates
      j = self.integers(i + 1)
      out[i], out[j] = out[j], out[i]
    return out

  def sample(self, items: Sequence[T], k: int) -> list[T]:
    """k distinct items in random order."""
    return [items[i] for i in self.permutation(len(items))[:k]]

  def choice(self, items: Sequence[T]) -> T:
    return items[self.integers(len(items))]
