"""Counting what a loader or encoder leaves out, per reason, so nothing is dropped silently.

    skips = SkipCounter("seahorse validation.tsv")
    skips.skip("unsure_label", row=17)   # or skips.keep()
    print(skips.report()); skips.require_kept()   # a clear error when a split ends up empty
"""

from __future__ import annotations

import collections

_EXAMPLES_PER_REASON = 3


class EmptySplitError(ValueError):
  """Every row of a split was skipped."""


class SkipCounter:
  def __init__(self, what: str):
    self.what = what
    self.kept = 0
    self.counts: collections.Counter = collections.Counter()
    self.examples: dict[str, list] = {}
    self.notes: collections.Counter = collections.Counter()  # rows kept but changed (e.g. truncated)

  def keep(self, n: int = 1) -> None:
    self.kept += n

  def skip(self, reason: str, row: object = None) -> None:
    self.counts[reason] += 1
    if row is not None and len(self.examples.setdefault(reason, [])) < _EXAMPLES_PER_REASON:
      self.examples[reason].append(row)

  def note(self, what: str) -> None:
    self.notes[what] += 1

  @property
  def skipped(self) -> int:
    return sum(self.counts.values())

  def as_dict(self) -> dict:
    return {"what": self.what, "kept": self.kept, "skipped": dict(sorted(self.counts.items())),
            "notes": dict(sorted(self.notes.items()))}

  def report(self) -> str:
    notes = "".join(f"; {w} {n}" for w, n in sorted(self.notes.items()))
    if not self.counts:
      return f"{self.what}: kept {self.kept}, skipped none{notes}"
    reasons = ", ".join(f"{r} {n}" + (f" (e.g. {self.examples[r]})" if r in self.examples else "")
                        for r, n in self.counts.most_common())
    return f"{self.what}: kept {self.kept}, skipped {self.skipped}: {reasons}{notes}"

  def require_kept(self) -> None:
    if self.kept == 0:
      raise EmptySplitError(f"{self.what} is empty after filtering; {self.report()}")

  def merge(self, other: SkipCounter) -> None:
    self.kept += other.kept
    self.counts.update(other.counts)
    self.notes.update(other.notes)
    for r, ex in other.examples.items():
      self.examples.setdefault(r, []).extend(ex[:_EXAMPLES_PER_REASON - len(self.examples.get(r, []))])
