"""Win rates: hand-computed counts, failures excluded, and bootstrap coverage at the nominal level."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xlra.eval.winrate import agreement, bootstrap_ci, grouped_win_rates, scores, win_rate


def test_counts_ties_half_and_excludes_failures():
  p = [1.0, 0.9, 0.5, 0.2, None, 0.5000000001, 0.0, None]
  wr = win_rate(p, n_boot=2000)
  # wins: 1.0, 0.9; ties: 0.5, 0.5000000001; losses: 0.2, 0.0; two failures are not losses.
  assert (wr.wins, wr.ties, wr.losses, wr.failures, wr.n) == (2, 2, 2, 2, 6)
  assert wr.win_rate == pytest.approx((2 + 0.5 * 2) / 6)
  assert wr.ci_low <= wr.win_rate <= wr.ci_high
  soft = win_rate(p, mode="soft", n_boot=2000)
  assert soft.win_rate == pytest.approx((1.0 + 0.9 + 0.5 + 0.2 + 0.5000000001 + 0.0) / 6)
  assert math.isnan(win_rate([None, None]).win_rate) and win_rate([None, None]).failures == 2


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match="outside"):
    win_rate([0.5, 1.2])
  with pytest.raises(ValueError, match="mode"):
    scores([0.5], mode="median")
  with pytest.raises(ValueError, match="same examples"):
    agreement([0.5], [0.5, 0.1])


def test_bootstrap_matches_the_normal_interval_for_a_large_sample():
  rng = np.random.default_rng(1)
  x = (rng.random(4000) < 0.3).astype(float)
  lo, hi = bootstrap_ci(x, n_boot=4000, seed=3)
  se = x.std() / math.sqrt(x.size)  # independent reference: the normal approximation
  assert lo == pytest.approx(x.mean() - 1.96 * se, abs=0.004)
  assert hi == pytest.approx(x.mean() + 1.96 * se, abs=0.004)
  assert bootstrap_ci(x, n_boot=500, seed=7) == bootstrap_ci(x, n_boot=500, seed=7)  # seeded
  assert bootstrap_ci(x, n_boot=500, seed=7, max_chunk_elems=10_000) == bootstrap_ci(x, n_boot=500, seed=7)


def test_bootstrap_interval_covers_the_true_rate_at_the_nominal_frequency():
  # Known truth: A wins with prob 0.45, ties 0.2, loses 0.35 -> true win rate 0.45 + 0.1 = 0.55.
  rng = np.random.default_rng(0)
  true_rate, experiments, n = 0.55, 400, 150
  covered = 0
  for e in range(experiments):
    u = rng.random(n)
    p_a = np.where(u < 0.45, 1.0, np.where(u < 0.65, 0.5, 0.0))
    wr = win_rate(list(p_a), n_boot=1000, seed=e)
    covered += wr.ci_low <= true_rate <= wr.ci_high
  assert 0.91 <= covered / experiments <= 0.98, covered / experiments


def test_groups_average_a_prompts_judgements_first():
  # Prompt a: a win and a loss (0.5); b: a win and a tie (0.75); c: one failure and a win (1.0).
  p = [1.0, 0.0, 0.9, 0.5, None, 1.0]
  wr = win_rate(p, groups=["a", "a", "b", "b", "c", "c"], n_boot=2000)
  assert wr.win_rate == pytest.approx((0.5 + 0.75 + 1.0) / 3)
  assert (wr.n, wr.wins, wr.ties, wr.losses, wr.failures) == (3, 3, 1, 1, 1)
  assert 0.5 <= wr.ci_low <= wr.win_rate <= wr.ci_high <= 1.0
  only_failed = win_rate([None, None, 1.0], groups=["a", "a", "b"], n_boot=200)
  assert (only_failed.n, only_failed.win_rate, only_failed.failures) == (1, 1.0, 2)
  with pytest.raises(ValueError, match="one group per judgement"):
    win_rate([1.0, 0.0], groups=["a"])


def test_grouped_interval_covers_when_judgements_of_a_prompt_are_correlated():
  # Each prompt has its own win probability (Beta(0.5, 0.5), mean 0.5: most prompts are nearly always
  # won or nearly always lost), judged against 4 baseline samples. Resampling prompts covers the truth
  # at the nominal rate; treating the 4 judgements as independent examples would not.
  rng = np.random.default_rng(0)
  experiments, n, k = 300, 60, 4
  covered = naive = 0
  for e in range(experiments):
    p_prompt = rng.beta(0.5, 0.5, size=n)
    p_a = (rng.random((n, k)) < p_prompt[:, None]).astype(float).ravel()
    groups = np.repeat(np.arange(n), k)
    wr = win_rate(list(p_a), n_boot=1000, seed=e, groups=list(groups))
    covered += wr.ci_low <= 0.5 <= wr.ci_high
    flat = win_rate(list(p_a), n_boot=1000, seed=e)
    naive += flat.ci_low <= 0.5 <= flat.ci_high
  assert 0.91 <= covered / experiments <= 0.98, covered / experiments
  assert naive / experiments < 0.88, naive / experiments


def test_grouped_per_language_and_pair():
  rows = [{"system": "ppo_en", "lang": "de", "p_a": 1.0}, {"system": "ppo_en", "lang": "de", "p_a": 0.0},
          {"system": "ppo_en", "lang": "fr", "p_a": 1.0}, {"system": "bon_de", "lang": "de", "p_a": None},
          {"system": "bon_de", "lang": "de", "p_a": 0.5}]
  g = grouped_win_rates(rows, keys=("system", "lang"), n_boot=200)
  assert list(g) == [("bon_de", "de"), ("ppo_en", "de"), ("ppo_en", "fr")]
  assert g[("ppo_en", "de")].win_rate == 0.5 and g[("ppo_en", "fr")].win_rate == 1.0
  assert g[("bon_de", "de")].failures == 1 and g[("bon_de", "de")].ties == 1
  with pytest.raises(KeyError, match="row 0 lacks"):
    grouped_win_rates([{"p_a": 1.0}], keys=("lang",))


def test_agreement_percentage():
  a = [0.9, 0.1, 0.5, 0.7, None, 0.6]
  b = [1.0, 0.4, 0.5, 0.2, 0.3, None]
  ag = agreement(a, b)
  # judged by both: 4 examples; agree on A, B, tie; disagree on the 4th.
  assert (ag.n, ag.excluded) == (4, 2) and ag.percent == pytest.approx(75.0)
