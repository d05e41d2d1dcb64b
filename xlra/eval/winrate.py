"""Win rates with bootstrap confidence intervals, and agreement between two judges.

A judgement is P(aligned system beats the baseline). `hard` scoring turns it into a win (1), a tie
(0.5, within `tie_tol` of 0.5) or a loss (0), as the paper counts; `soft` keeps the probability. Failed
judgements (None/NaN) are excluded and counted as failures, never as losses. The 95% interval is a
percentile bootstrap over examples, seeded, vectorised in chunks so memory stays bounded.

A prompt may be judged against several baseline samples (`groups` names each judgement's prompt): its
score is the mean over its judgements and the bootstrap resamples prompts, not judgements, since
judgements of one prompt are correlated. The estimate is the same P(system beats a baseline sample)
with less of the baseline's sampling noise, so the interval narrows without pretending to more prompts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

MODES = ("hard", "soft")
TIE_TOL = 1e-6


@dataclasses.dataclass(frozen=True)
class WinRate:
  # Field names match the cells xlra.pipeline.report reads.
  win_rate: float  # mean score over judged examples (ties count half); NaN when none was judged
  ci_low: float  # bootstrap interval at `level`
  ci_high: float
  n: int  # judged examples
  wins: int
  ties: int
  losses: int
  failures: int  # examples the judge could not judge (excluded from rate and n)
  level: float = 0.95

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def _as_array(p_a: Sequence[float | None]) -> np.ndarray:
  arr = np.array([np.nan if p is None else float(p) for p in p_a], dtype=np.float64)
  bad = ~np.isnan(arr) & ((arr < 0) | (arr > 1))
  if bad.any():
    i = int(np.flatnonzero(bad)[0])
    raise ValueError(f"judgement {i} has p_a={arr[i]!r}, outside [0, 1]")
  return arr


def scores(p_a: Sequence[float | None], mode: str = "hard", tie_tol: float = TIE_TOL) -> np.ndarray:
  """Per-example score of A: {0, 0.5, 1} (hard) or the probability (soft); NaN marks a failure."""
  if mode not in MODES:
    raise ValueError(f"win-rate mode {mode!r}: choose one of {MODES}")
  arr = _as_array(p_a)
  if mode == "soft":
    return arr
  out = np.where(arr > 0.5, 1.0, 0.0)
  out = np.where(np.abs(arr - 0.5) <= tie_tol, 0.5, out)
  return np.where(np.isnan(arr), np.nan, out)


def bootstrap_ci(values: np.ndarray, level: float = 0.95, n_boot: int = 10_000, seed: int = 0,
                 max_chunk_elems: int = 4_000_000) -> tuple[float, float]:
  """Percentile bootstrap interval of the mean of `values` (no NaNs). Resamples examples with replacement."""
  values = np.asarray(values, dtype=np.float64)
  n = values.size
  if n == 0:
    return math.nan, math.nan
  if not 0 < level < 1:
    raise ValueError(f"bootstrap level={level!r}: must be in (0, 1)")
  rng = np.random.default_rng(seed)
  chunk = max(1, min(n_boot, max_chunk_elems // n))
  means = np.empty(n_boot)
  for start in range(0, n_boot, chunk):
    m = min(chunk, n_boot - start)
    means[start:start + m] = values[rng.integers(0, n, size=(m, n))].mean(axis=1)
  alpha = (1 - level) / 2
  lo, hi = np.quantile(means, [alpha, 1 - alpha])
  return float(lo), float(hi)


def _group_means(s: np.ndarray, groups: Sequence) -> np.ndarray:
  """Mean score per group over its judged (non-NaN) entries; groups with none judged are left out."""
  if len(groups) != s.size:
    raise ValueError(f"groups has {len(groups)} entries for {s.size} judgements; give one group per judgement")
  _, idx = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
  ok = ~np.isnan(s)
  total = np.bincount(idx[ok], weights=s[ok], minlength=idx.max() + 1 if idx.size else 0)
  count = np.bincount(idx[ok], minlength=total.size)
  return total[count > 0] / count[count > 0]


def win_rate(p_a: Sequence[float | None], mode: str = "hard", level: float = 0.95, n_boot: int = 10_000,
             seed: int = 0, tie_tol: float = TIE_TOL, groups: Sequence | None = None) -> WinRate:
  """Win rate of A (the aligned system) over B (the baseline) from per-example judgements.

  With `groups` (one key per judgement, e.g. the prompt id), judgements of a group are averaged first
  and `n` counts groups; wins, ties, losses and failures count judgements."""
  s = scores(p_a, mode, tie_tol)
  ok = s[~np.isnan(s)] if groups is None else _group_means(s, groups)
  hard = scores(p_a, "hard", tie_tol)
  hard = hard[~np.isnan(hard)]
  lo, hi = bootstrap_ci(ok, level, n_boot, seed)
  return WinRate(win_rate=float(ok.mean()) if ok.size else math.nan, ci_low=lo, ci_high=hi, n=int(ok.size),
                 wins=int((hard == 1).sum()), ties=int((hard == 0.5).sum()), losses=int((hard == 0).sum()),
                 failures=int(np.isnan(s).sum()), level=level)


def grouped_win_rates(rows: Iterable[Mapping], keys: Sequence[str] = ("lang",), p_field: str = "p_a",
                      **kw) -> dict[tuple, WinRate]:
  """Win rate per group of rows (e.g. keys=("system", "lang") for per pair and language).

  Each row needs the `keys` fields and `p_field` (None for a failed judgement). Groups are sorted.
  """
  groups: dict[tuple, list] = {}
  for i, row in enumerate(rows):
    missing = [k for k in (*keys, p_field) if k not in row]
    if missing:
      raise KeyError(f"row {i} lacks field(s) {missing}; has {sorted(row)}")
    groups.setdefault(tuple(row[k] for k in keys), []).append(row[p_field])
  return {g: win_rate(groups[g], **kw) for g in sorted(groups, key=lambda t: tuple(map(str, t)))}


@dataclasses.dataclass(frozen=True)
class Agreement:
  percent: float  # share of examples judged by both where both prefer the same side (or both tie)
  n: int  # examples judged by both
  excluded: int  # examples where either judge failed

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def agreement(p_first: Sequence[float | None], p_second: Sequence[float | None],
              tie_tol: float = TIE_TOL) -> Agreement:
  """Agreement (%) of two judges on the same examples, on the hard outcome (A wins / tie / B wins)."""
  a, b = scores(p_first, "hard", tie_tol), scores(p_second, "hard", tie_tol)
  if a.shape != b.shape:
    raise ValueError(f"agreement needs the same examples: {a.size} vs {b.size} judgements")
  both = ~np.isnan(a) & ~np.isnan(b)
  n = int(both.sum())
  pct = 100.0 * float((a[both] == b[both]).mean()) if n else math.nan
  return Agreement(percent=pct, n=n, excluded=int(a.size - n))
