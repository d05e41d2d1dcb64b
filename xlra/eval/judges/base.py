"""The one judge interface: a batch of pairwise requests in, one probability (or a failure) per request out.

Every judge (oracle, local LM, HTTP LM) answers the same question: how likely is output A better than
output B for this prompt? 0.5 is a tie. A judge that cannot answer returns a failure with a kind, so the
win-rate code can count failures separately instead of scoring them as losses.
"""

from __future__ import annotations

import abc
import dataclasses
import threading
from collections import Counter
from typing import Any, Iterable, Sequence

TASKS = ("summarization", "dialog")
TASK_ALIASES = {"summarize": "summarization"}  # the testbed's task name

# Failure kinds. `parse`: the judge answered but not with "1"/"2"; `bad_reply`: a 200 that is no chat
# completion (an HTML error page from a proxy, cut-off JSON, no choices); the rest are transport or budget
# problems (the judge never answered). Reports list them separately.
PARSE = "parse"
BAD_REPLY = "bad_reply"
HTTP = "http"
TIMEOUT = "timeout"
CONNECTION = "connection"
BUDGET = "budget"
TOO_LONG = "too_long"
FAILURE_KINDS = (PARSE, BAD_REPLY, HTTP, TIMEOUT, CONNECTION, BUDGET, TOO_LONG)


@dataclasses.dataclass(frozen=True)
class Judgement:
  """One pairwise request: is `output_a` better than `output_b` as an answer to `prompt`?

  `example` is the testbed example behind the prompt (the oracle needs it for the gold quality);
  it does not take part in equality or hashing.
  """

  prompt: str
  output_a: str
  output_b: str
  lang: str = "en"
  task: str = "dialog"
  example: Any = dataclasses.field(default=None, compare=False, repr=False)

  def __post_init__(self):
    if self.task in TASK_ALIASES:
      object.__setattr__(self, "task", TASK_ALIASES[self.task])
    if self.task not in TASKS:
      raise ValueError(f"Judgement.task={self.task!r}: choose one of {TASKS}")
    for name in ("prompt", "output_a", "output_b"):
      if not isinstance(getattr(self, name), str):
        raise TypeError(f"Judgement.{name} must be a str, got {type(getattr(self, name)).__name__}")

  def swapped(self) -> "Judgement":
    return dataclasses.replace(self, output_a=self.output_b, output_b=self.output_a)


@dataclasses.dataclass(frozen=True)
class JudgeResult:
  """p_a: probability that A is better (0.5 = tie), None on failure; error: what went wrong;
  error_kind: one of FAILURE_KINDS; cached: answered from the judge's cache without a new request."""

  p_a: float | None
  error: str | None = None
  error_kind: str | None = None
  cached: bool = False

  def __post_init__(self):
    if (self.p_a is None) == (self.error is None):
      raise ValueError(f"JudgeResult needs exactly one of p_a / error, got p_a={self.p_a!r} error={self.error!r}")
    if self.p_a is not None and not 0.0 <= self.p_a <= 1.0:
      raise ValueError(f"JudgeResult.p_a={self.p_a!r} is not a probability")
    if self.error is not None and self.error_kind not in FAILURE_KINDS:
      raise ValueError(f"JudgeResult.error_kind={self.error_kind!r}: choose one of {FAILURE_KINDS}")

  @property
  def ok(self) -> bool:
    return self.p_a is not None

  @classmethod
  def failure(cls, kind: str, message: str, cached: bool = False) -> "JudgeResult":
    return cls(p_a=None, error=f"{kind}: {message}", error_kind=kind, cached=cached)


class Judge(abc.ABC):
  """Base class. Subclasses implement `_judge`; `judge` validates and keeps the counters.

  `stats` counts what happened across calls (requests, answered, failures per kind, cache hits, and
  for network judges the HTTP attempts), so a caller can check that a rerun sent nothing new.
  """

  name: str = "judge"

  def __init__(self):
    self._stats: Counter = Counter()
    self._stats_lock = threading.Lock()

  def judge(self, requests: Sequence[Judgement]) -> list[JudgeResult]:
    requests = list(requests)
    for i, r in enumerate(requests):
      if not isinstance(r, Judgement):
        raise TypeError(f"request {i} is a {type(r).__name__}, expected xlra.eval.judges.base.Judgement")
    results = self._judge(requests) if requests else []
    if len(results) != len(requests):
      raise AssertionError(f"{type(self).__name__} returned {len(results)} results for {len(requests)} requests")
    self.count(requests=len(requests))
    for res in results:
      self.count(**{"ok" if res.ok else f"failed_{res.error_kind}": 1, **({"cached": 1} if res.cached else {})})
    return results

  @abc.abstractmethod
  def _judge(self, requests: list[Judgement]) -> list[JudgeResult]:
    """One result per request, in order."""

  def count(self, **deltas: int) -> None:
    with self._stats_lock:
      self._stats.update(deltas)

  @property
  def stats(self) -> Counter:
    """A copy of the counters (a Counter: missing names read 0)."""
    with self._stats_lock:
      return Counter(self._stats)


class JudgingFailed(RuntimeError):
  """More judgements failed than the configured share allows; the rows and reports are written first."""


def failures_by_kind(error_kinds: Iterable[str | None]) -> Counter:
  """Failed judgements per kind, from each judgement's error_kind (None: answered). Takes
  `[r.error_kind for r in results]` as well as the `error_kind` column of judgement rows."""
  return Counter(k for k in error_kinds if k is not None)


def check_failure_share(error_kinds: Sequence[str | None], max_share: float, what: str, field: str) -> None:
  """Raise JudgingFailed when more than `max_share` of the judgements failed, saying how many and why.

  A failed judgement is left out of the win rate, not scored, so a large failed share silently changes
  which examples the rate is over (failures correlate with long outputs and overloaded servers).
  `what` names the judged thing in the message, `field` the config field that sets the share.
  """
  kinds = failures_by_kind(error_kinds)
  failed, total = sum(kinds.values()), len(error_kinds)
  if total and failed / total > max_share:
    detail = ", ".join(f"{k}: {n}" for k, n in kinds.most_common())
    raise JudgingFailed(f"{what}: {failed} of {total} judgements failed ({100 * failed / total:.1f}%; {detail}), "
                        f"more than {field}={max_share}. Transient failures (http, timeout, connection, "
                        "bad_reply, budget) are asked again by rerunning the same command; answered ones come "
                        "from the cache and cost nothing")


def validate_failure_share(value: Any, field: str) -> float:
  """`value` as a share in [0, 1], or a ValueError naming `field`."""
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
    raise ValueError(f"{field}={value!r}: must be a share in [0, 1] (0 refuses any failed judgement)")
  return float(value)


def order_average(p_first_ab: float, p_first_ba: float) -> float:
  """P(A better) from both presentation orders: A first gives p_first_ab = P("1"); B first gives
  p_first_ba = P("1") = P(B better). Averaging removes the judge's position bias."""
  return 0.5 * (p_first_ab + (1.0 - p_first_ba))
