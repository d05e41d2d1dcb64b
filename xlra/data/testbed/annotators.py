"""Simulated annotators: noisy judgements drawn from the gold quality q, plus optional per-language
biases that q does not reward (the language-specific artifacts the paper suspects a same-language RM
passes on to the policy).

An annotator's utility for an output is u = q + bias, with
  bias = length * (words - reference words) / budget   (e.g. German annotators favour longer outputs)
       + polite * [starts with a polite phrase]   (e.g. Spanish annotators favour politeness, asked or not)
Pairwise (OpenAssistant-like): P(a preferred over b) = sigmoid((u_a - u_b) / temperature), Bradley-Terry.
Pointwise (Seahorse question-6-like): P(good) = sigmoid((u - threshold) / pointwise_temperature).

Why the default temperature: human annotators agree with *each other* on 62-69% of pairs in the paper.
If each annotator independently agrees with the latent truth with probability p, two of them agree with
probability p^2 + (1-p)^2, so 62-69% inter-annotator agreement means p = 0.74-0.80 (a little less when
p varies from pair to pair, as it does here). With the default temperature 0.26 and the RM training pair
distribution, agreement with q is 0.68-0.79 per language and the expected agreement between two
annotators 0.68-0.71, inside the human band; tests hold them in [0.68, 0.84] and [0.62, 0.72].

Draws are keyed by (seed, example id, the outputs), so a judgement does not depend on what else is in
the batch or on the order of calls.
"""

from __future__ import annotations

import dataclasses
import math

from xlra.data.testbed import langs
from xlra.data.testbed.langs.base import joined
from xlra.data.testbed.quality import quality
from xlra.data.testbed.seeding import Stream
from xlra.data.testbed.tasks import BUDGET_SLACK, Example

DEFAULT_TEMPERATURE = 0.26
# Language-specific tastes that q does not share; `bias=None` in the functions below means these.
DEFAULT_BIASES = {"de": {"length": 0.5}, "es": {"polite": 0.2}}


@dataclasses.dataclass(frozen=True)
class Annotator:
  temperature: float = DEFAULT_TEMPERATURE
  threshold: float = 0.75  # pointwise: u above it is more likely "good" than "bad"
  pointwise_temperature: float = 0.1
  biases: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_BIASES))
  seed: int = 0

  def __post_init__(self):
    if self.temperature <= 0 or self.pointwise_temperature <= 0:
      raise ValueError(f"annotator temperatures must be > 0, got {self.temperature}, {self.pointwise_temperature}")
    for lang, b in self.biases.items():
      langs.get(lang)
      unknown = set(b) - {"length", "polite"}
      if unknown:
        raise ValueError(f"annotator bias for {lang!r} has unknown keys {sorted(unknown)}; use length, polite")

  @classmethod
  def from_config(cls, a) -> Annotator:
    """From configs/data.py's `annotator` block."""
    return cls(temperature=a.temperature, threshold=a.threshold, pointwise_temperature=a.pointwise_temperature,
               biases={k: dict(v) for k, v in a.biases.items()}, seed=a.seed)

  def bias(self, ex: Example, output: str) -> float:
    b = self.biases.get(ex.lang)
    if not b:
      return 0.0
    out = 0.0
    if b.get("length"):  # relative to the reference's length, so it tilts judgements without an offset
      budget = ex.constraints["budget"]
      out += b["length"] * (len(output.split()) - (budget - BUDGET_SLACK)) / budget
    if b.get("polite"):
      j = joined(output[:200])
      out += b["polite"] * any(j.startswith(joined(p)) for p in langs.get(ex.lang).polite)
    return out

  def utility(self, ex: Example, output: str, q: float | None = None) -> float:
    return (quality(ex, output) if q is None else q) + self.bias(ex, output)

  def prefers_first(self, ex: Example, a: str, b: str, q_a: float | None = None, q_b: float | None = None) -> bool:
    """One noisy pairwise judgement: True if `a` is preferred. The draw is keyed by the unordered pair,
    so asking (b, a) gives the mirrored answer."""
    diff = (self.utility(ex, a, q_a) - self.utility(ex, b, q_b)) / self.temperature
    p = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, diff))))
    u = Stream(self.seed, "pairwise", ex.id, *sorted((a, b))).random()
    return u < p if a <= b else u >= 1.0 - p

  def label(self, ex: Example, output: str, q: float | None = None) -> bool:
    """One noisy pointwise judgement: True for "good"."""
    z = (self.utility(ex, output, q) - self.threshold) / self.pointwise_temperature
    p = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))
    return Stream(self.seed, "pointwise", ex.id, output).random() < p


def pairwise_preferences(examples: list[Example], outputs_a: list[str], outputs_b: list[str],
                         annotator: Annotator | None = None) -> list[bool]:
  """For each (example, a, b): True if the annotator prefers a. Works on any outputs (policy samples too)."""
  if not len(examples) == len(outputs_a) == len(outputs_b):
    raise ValueError(f"lengths differ: {len(examples)} examples, {len(outputs_a)} a, {len(outputs_b)} b")
  ann = annotator or Annotator()
  return [ann.prefers_first(ex, a, b) for ex, a, b in zip(examples, outputs_a, outputs_b)]


def pointwise_labels(examples: list[Example], outputs: list[str], annotator: Annotator | None = None) -> list[bool]:
  """For each (example, output): True for "good" (Seahorse-like question 6 "yes")."""
  if len(examples) != len(outputs):
    raise ValueError(f"lengths differ: {len(examples)} examples, {len(outputs)} outputs")
  ann = annotator or Annotator()
  return [ann.label(ex, o) for ex, o in zip(examples, outputs)]


def agreement(annotator: Annotator, examples: list[Example], outputs_a: list[str], outputs_b: list[str]) -> dict:
  """How often the annotator's choice matches q's ordering (pairs with equal q are left out), and the
  agreement expected between two such annotators, for comparison with human inter-annotator figures."""
  agree = n = 0
  inter = 0.0
  for ex, a, b in zip(examples, outputs_a, outputs_b):
    qa, qb = quality(ex, a), quality(ex, b)
    if qa == qb:
      continue
    n += 1
    agree += annotator.prefers_first(ex, a, b, qa, qb) == (qa > qb)
    d = (annotator.utility(ex, a, qa) - annotator.utility(ex, b, qb)) / annotator.temperature
    p = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, d))))
    inter += p * p + (1 - p) * (1 - p)
  return {"pairs": n, "agreement_with_q": agree / n if n else float("nan"),
          "inter_annotator": inter / n if n else float("nan")}
