"""The testbed's SFT flaw mixture, the placebo labels and the split of q's within-prompt variance."""

from __future__ import annotations

import collections

import numpy as np
import pytest

import xlra.data.testbed as tb
from xlra.data.testbed import corruptions
from xlra.data.testbed.q_variance import q_variance

RATES = {"filler": 0.15, "repetition": 0.1, "truncation": 0.1, "no_end": 0.15, "fragment": 0.1, "impolite": 0.2,
         "extra_item": 0.15}


def test_sft_targets_carry_each_flaw_at_its_rate():
  exs = tb.generate_split("en", "dialog", "sft", 800, 0)
  flawed = [corruptions.flawed_reference(ex, RATES, 0) for ex in exs]
  assert flawed == [corruptions.flawed_reference(ex, RATES, 0) for ex in exs]  # keyed by the example id
  assert all(f.prompt == ex.prompt and f.id == ex.id for f, ex in zip(flawed, exs))
  parts = [tb.quality_parts(ex, f.reference) for ex, f in zip(exs, flawed)]
  clean = np.mean([p["q"] == 1.0 for p in parts])
  assert 0.3 < clean < 0.6, clean  # about half the targets stay clean
  # Each flaw shows in its own component of q at about its rate (impolite: only half the requests ask).
  seen = {"filler": np.mean([p["p_filler"] > 0 for p in parts]),
          "fragment": np.mean([p["language"] < 1 for p in parts]),
          "repetition": np.mean([p["repetition"] > 0 for p in parts]),
          "extra_item": np.mean([p["p_extra_item"] > 0 for p in parts]),
          "impolite": np.mean([p["p_impolite"] > 0 for p in parts]) / np.mean([ex.constraints["polite"] for ex in exs])}
  for kind, share in seen.items():
    assert abs(share - RATES[kind]) < 0.05, (kind, share)
  # no_end and truncation both leave the end mark off.
  assert abs(np.mean([p["p_no_end"] > 0 for p in parts]) - (1 - 0.85 * 0.9)) < 0.05
  with pytest.raises(ValueError, match="config.data.sft_flaws has unknown kinds \\['typo'\\]"):
    corruptions.flawed_reference(exs[0], {"typo": 0.1}, 0)


def test_build_draws_flaws_into_the_sft_split_only():
  import os
  import runpy
  c = runpy.run_path(os.path.join(os.path.dirname(__file__), "..", "..", "configs", "data.py"))["get_config"]("tiny")
  c.languages = ("de",)
  built = tb.build(c)
  sft = built.get("sft", "de")
  assert any(tb.quality(ex, ex.reference) < 1 for ex in sft)
  for split in ("rm_val", "eval", "rl"):
    assert all(tb.quality(ex, ex.reference) == 1.0 for ex in built.get(split, "de")), split


def test_shuffled_labels_carry_no_signal_and_keep_each_record_whole():
  exs = tb.generate_split("es", "dialog", "rm_train", 400, 0)
  pairs = tb.preference_pairs(exs, tb.Annotator(), 0)
  placebo = tb.shuffled_labels(pairs, "pairwise", 0)
  swapped = [p["chosen"] != r["chosen"] for p, r in zip(placebo, pairs)]
  assert 0.43 < np.mean(swapped) < 0.57
  for p, r, s in zip(placebo, pairs, swapped):
    side = ("rejected", "chosen") if s else ("chosen", "rejected")
    assert (p["chosen"], p["rejected"]) == (r[side[0]], r[side[1]])
    assert (p["q_chosen"], p["chosen_kinds"], p["chosen_spec"]) == (r[f"q_{side[0]}"], r[f"{side[0]}_kinds"],
                                                                   r[f"{side[0]}_spec"])
  # Annotators agree with q on ~3/4 of the pairs; the placebo's labels on half.
  agree = lambda ps: np.mean([p["q_chosen"] > p["q_rejected"] for p in ps if p["q_chosen"] != p["q_rejected"]])
  assert agree(pairs) > 0.65 and abs(agree(placebo) - 0.5) < 0.07
  points = tb.pointwise_examples(exs, tb.Annotator(), 0)
  shuffled = tb.shuffled_labels(points, "pointwise", 0)
  assert collections.Counter(p["label"] for p in shuffled) == collections.Counter(p["label"] for p in points)
  assert [p["output"] for p in shuffled] == [p["output"] for p in points]


def test_q_variance_splits_visible_from_fact_differences():
  ex = tb.generate_split("en", "summarize", "eval", 1, 3)[0]
  ref = tb.reference_spec(ex)
  # Samples that differ only in the end mark: all of the variance is visible.
  visible = q_variance([ex], [[ex.reference, tb.render(ex, {**ref, "no_end": True})]])
  assert visible["share"]["visible"] == pytest.approx(1.0) and visible["share"]["p_no_end"] == pytest.approx(1.0)
  assert visible["share"]["facts"] == pytest.approx(0.0)
  # Hand-computed: log q of 1.0 and 0.5: variance (log 0.5 / 2)^2.
  assert visible["within_var"] == pytest.approx((np.log(0.5) / 2) ** 2)
  # Samples that differ only in a dropped fact: all of it is facts.
  dropped = corruptions.drop(ex, ref, tb.Stream("t"))
  facts = q_variance([ex], [[ex.reference, tb.render(ex, dropped)]])
  assert facts["share"]["facts"] == pytest.approx(1.0) and facts["share"]["visible"] == pytest.approx(0.0)
  assert facts["n_prompts"] == 1 and facts["n_samples"] == 2
