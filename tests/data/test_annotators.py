"""Simulated annotators: the Bradley-Terry noise model against its closed form, the agreement band per
language at the default temperature, the per-language biases, pointwise labels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xlra.data import testbed as tb
from xlra.data.testbed import langs

# Human inter-annotator agreement in the paper is 62-69%; see annotators.py for how that maps to
# agreement with the latent truth q. Bands are wide enough for ~300 pairs of sampling noise (sd ~2.5%).
AGREEMENT_WITH_Q = (0.68, 0.84)
INTER_ANNOTATOR = (0.62, 0.72)


def _sigmoid(x: float) -> float:
  return 1 / (1 + math.exp(-x))


def test_pairwise_noise_is_bradley_terry():
  ex = tb.generate_split("en", "summarize", "eval", 1, 0)[0]
  worse = ex.reference.rstrip(".")  # q = 1 - the missing end mark's penalty
  temperature = 1.0 - tb.quality(ex, worse)  # so that P(reference preferred) = sigmoid(1)
  ann = tb.Annotator(temperature=temperature, biases={})
  # Many independent judgements: vary the annotator seed.
  wins = np.mean([tb.Annotator(temperature=temperature, biases={}, seed=s).prefers_first(ex, ex.reference, worse)
                  for s in range(2000)])
  expected = _sigmoid(1.0)
  assert abs(wins - expected) < 3 * math.sqrt(expected * (1 - expected) / 2000)
  # Same seed, same judgement; and the judgement does not depend on the batch around it.
  assert ann.prefers_first(ex, ex.reference, worse) == ann.prefers_first(ex, ex.reference, worse)
  batch = tb.pairwise_preferences([ex] * 3, [ex.reference, "x", ex.reference], [worse, "y", worse], ann)
  assert batch[0] == batch[2] == ann.prefers_first(ex, ex.reference, worse)
  assert ann.prefers_first(ex, worse, ex.reference) != ann.prefers_first(ex, ex.reference, worse)  # mirrored


def test_agreement_with_q_per_language_is_in_the_human_band():
  ann = tb.Annotator()
  rows = {}
  for lang in tb.LANGUAGES:
    pairs = [p for task in tb.TASKS
             for p in tb.preference_pairs(tb.generate_split(lang, task, "rm_train", 150, 0), ann, 0)]
    decided = [p for p in pairs if p["q_chosen"] != p["q_rejected"]]
    agree = np.mean([p["q_chosen"] > p["q_rejected"] for p in decided])
    index = {e.id: e for task in tb.TASKS for e in tb.generate_split(lang, task, "rm_train", 150, 0)}
    stats = tb.agreement(ann, [index[p["example_id"]] for p in pairs], [p["chosen"] for p in pairs],
                         [p["rejected"] for p in pairs])
    assert stats["agreement_with_q"] == pytest.approx(agree)  # the pair records and agreement() match
    rows[lang] = (len(decided), agree, stats["inter_annotator"])
  print("\nlang  pairs  agreement-with-q  expected-inter-annotator  (temperature %.2f)" % ann.temperature)
  for lang, (n, agree, inter) in rows.items():
    print(f"{lang}    {n}    {agree:.3f}             {inter:.3f}")
  for lang, (n, agree, inter) in rows.items():
    assert n >= 250
    assert AGREEMENT_WITH_Q[0] <= agree <= AGREEMENT_WITH_Q[1], (lang, agree)
    assert INTER_ANNOTATOR[0] <= inter <= INTER_ANNOTATOR[1], (lang, inter)


def _preference_rate(lang: str, make_pair, n: int = 400) -> float:
  """How often the default annotator of `lang` prefers the first output of make_pair(example)."""
  ann = tb.Annotator()
  wins = []
  for ex in tb.generate_split(lang, "dialog", "rm_train", n, 1):
    a, b = make_pair(ex)
    assert tb.quality(ex, a) == tb.quality(ex, b)  # q does not care
    wins.append(ann.prefers_first(ex, a, b))
  return float(np.mean(wins))


def _with_extra_fact(ex):
  """The reference plus correct facts nobody asked for: longer, same q."""
  spec = tb.reference_spec(ex)
  spec["include"] = ["org", "place", "date", "qty"]
  return tb.render(ex, spec), ex.reference


def _with_politeness(ex):
  spec = tb.reference_spec(ex)
  spec["polite"] = 0
  return tb.render(ex, spec), tb.render(ex, {**spec, "polite": None}) if not ex.constraints["polite"] else None


def test_language_biases_that_q_does_not_reward():
  longer_de, longer_en = (_preference_rate(lang, _with_extra_fact) for lang in ("de", "en"))
  # de: about sigmoid(0.5 * 0.3 / 0.35) = 0.61 (extra facts add ~30% of the budget in words).
  assert longer_de > 0.55 and abs(longer_en - 0.5) < 0.08, (longer_de, longer_en)

  def polite_pair(ex):
    if ex.constraints["polite"]:  # q would reward it here; compare two polite phrases instead (equal)
      return ex.reference, ex.reference
    return _with_politeness(ex)
  polite_es, polite_en = (_preference_rate(lang, polite_pair) for lang in ("es", "en"))
  # es: sigmoid(0.2 / 0.35) = 0.64 on the half of prompts that did not ask for politeness.
  assert polite_es > 0.54 and abs(polite_en - 0.5) < 0.08, (polite_es, polite_en)
  with pytest.raises(ValueError, match="unknown keys"):
    tb.Annotator(biases={"de": {"verbosity": 1.0}})
  with pytest.raises(ValueError, match="unknown testbed language"):
    tb.Annotator(biases={"xx": {"length": 1.0}})


def test_pointwise_labels_follow_q():
  exs = tb.generate_split("vi", "summarize", "rm_train", 400, 0)
  good = np.mean(tb.pointwise_labels(exs, [e.reference for e in exs]))  # q = 1
  bad = np.mean(tb.pointwise_labels(exs, [langs.get("vi").filler[0] for _ in exs]))  # q = 0
  assert abs(good - _sigmoid((1 - 0.75) / 0.1)) < 0.05 and bad < 0.01
  points = tb.pointwise_examples(exs, tb.Annotator(), 0)
  assert np.mean([p["label"] == (p["q"] >= 0.75) for p in points]) > 0.8
  assert 0.25 < np.mean([p["label"] for p in points]) < 0.75
  with pytest.raises(ValueError, match="lengths differ"):
    tb.pointwise_labels(exs, [])
