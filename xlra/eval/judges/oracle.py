"""Oracle judge: the testbed's gold quality q(example, output). A is better when q(A) > q(B); equal
scores (within `tie_tol`) are ties. It is the ground truth the LM judges are checked against."""

from __future__ import annotations

from typing import Any, Callable

from xlra.eval.judges import base

QualityFn = Callable[[Any, str], float]


def testbed_quality() -> QualityFn:
  """The testbed's q, imported on first use (the judges package must not pull the testbed in)."""
  from xlra.data.testbed import Example, quality

  def q(example: Any, output: str) -> float:
    if isinstance(example, dict):  # an example read back from JSONL (Example.to_dict)
      example = Example.from_dict(example)
    return quality(example, output)

  return q


class OracleJudge(base.Judge):
  """`OracleJudge().judge(requests)`; each request's `example` is what q needs (a testbed Example or
  its dict). `quality_fn(example, output) -> [0, 1]` replaces the testbed's q (tests, other tasks)."""

  name = "oracle"

  def __init__(self, quality_fn: QualityFn | None = None, tie_tol: float = 1e-9):
    super().__init__()
    self.quality_fn = quality_fn
    self.tie_tol = tie_tol

  def _judge(self, requests: list[base.Judgement]) -> list[base.JudgeResult]:
    if self.quality_fn is None:
      self.quality_fn = testbed_quality()
    out = []
    for i, req in enumerate(requests):
      if req.example is None:
        raise ValueError(f"request {i} (lang={req.lang}) has no `example`: the oracle judge scores outputs "
                         "with the testbed example's gold quality; pass Judgement(..., example=...)")
      qa, qb = (float(self.quality_fn(req.example, o)) for o in (req.output_a, req.output_b))
      for name, q in (("output_a", qa), ("output_b", qb)):
        if not 0.0 <= q <= 1.0:
          raise ValueError(f"request {i}: quality_fn gave {q!r} for {name}, outside [0, 1]")
      p = 0.5 if abs(qa - qb) <= self.tie_tol else (1.0 if qa > qb else 0.0)
      out.append(base.JudgeResult(p_a=p))
    return out
