"""Best-of-n: shared-prefix candidates equal independent samples, scores equal the RM on each row alone,
the best is the argmax, the missing-EOS rule, the KL bound, and the prompt is prefilled once."""

from __future__ import annotations

import math
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from xlra.models.heads import ScalarModel
from xlra.sampling import best_of_n as bon
from xlra.sampling import sampler as sampler_lib
from xlra.sampling.sampler import Sampler, SamplingConfig
from xlra.train.scoring import RewardScorer
from xlra.train.state import abstract_params, init_params

N = 4


@pytest.fixture(scope="module")
def setup(models, one_device):
  _, policy = models["llama"]
  graphdef, params = nnx.split(policy)
  build = lambda: ScalarModel(policy.cfg, rngs=nnx.Rngs(1))
  rm_def, _ = abstract_params(build)
  rm_params = init_params(build, one_device)  # jitted init: eager init op by op is slow here
  rm = nnx.merge(rm_def, rm_params)
  # eos 11 is common enough under this random policy that some rows stop and some run out.
  cfg = SamplingConfig(max_new_tokens=8, eos_id=11, pad_id=0, temperature=1.5)
  sampler = Sampler(graphdef, cfg, one_device)
  tokenizer = types.SimpleNamespace(pad_token_id=0)  # the scorer only needs the pad id for token-id rows
  # length 64: the rows (at most 11 + 8 tokens) are scored at a bucketed width of 32, shortest first
  scorer = RewardScorer(rm_def, rm_params, one_device, tokenizer, batch_size=8, length=64)
  return sampler, params, scorer.score_ids, rm


def test_shared_prefix_candidates_equal_independent_samples(setup, prompts):
  """Sample j of prompt i is the same whether drawn with its siblings from one shared prefill, in
  chunks of 2 samples, or alone in a call that draws only sample j of every prompt."""
  sampler, params, score, _ = setup
  rng = jax.random.key(5)
  shared = bon.best_of_n(sampler, params, prompts, rng, N, score, keep_all=True)
  chunked = bon.best_of_n(sampler, params, prompts, rng, N, score, keep_all=True, rows_per_batch=2)
  assert shared.candidates == chunked.candidates
  for j in range(N):
    alone = sampler(params, prompts, rng, first_sample=j)
    for i in range(len(prompts)):
      assert shared.candidates[i][j] == alone.response(i), (i, j)
  # the samples really differ (so equality above is not trivial)
  assert len({tuple(c) for c in shared.candidates[0]}) > 1


def test_scores_best_and_missing_eos_penalty(setup, prompts):
  """Raw scores equal the RM's value at each row's last token (one right-padded batch, indexed by
  hand); the best is the argmax; responses without EOS get the penalty."""
  sampler, params, score, rm = setup
  res = bon.best_of_n(sampler, params, prompts, jax.random.key(2), N, score, keep_all=True,
                      missing_eos_penalty=-7.0)
  assert res.stopped.any() and not res.stopped.all(), "want both stopped and truncated candidates"
  rows = [p + c for i, p in enumerate(prompts) for c in res.candidates[i]]
  width = max(map(len, rows))
  tokens = np.zeros((len(rows), width), np.int32)
  for r, row in enumerate(rows):
    tokens[r, :len(row)] = row
  mask = np.arange(width)[None, :] < np.asarray([len(r) for r in rows])[:, None]
  values = np.asarray(jax.jit(lambda t, m: rm.values(t, None, m))(tokens, mask))
  expect = values[np.arange(len(rows)), [len(r) - 1 for r in rows]].reshape(len(prompts), N)
  np.testing.assert_allclose(res.raw_scores, expect, atol=1e-5)
  for i, p in enumerate(prompts):
    for j, cand in enumerate(res.candidates[i]):
      assert res.stopped[i, j] == (cand[-1] == 11)
      assert res.scores[i, j] == (res.raw_scores[i, j] if res.stopped[i, j] else -7.0)
    by = res.scores[i] if res.stopped[i].any() else res.raw_scores[i]  # all cut off: the penalty ties them
    assert res.best_index[i] == int(np.argmax(by))
    assert res.best[i] == res.candidates[i][res.best_index[i]]
  np.testing.assert_array_equal(res.best_score, res.scores.max(axis=1))


def test_scorer_rejects_a_sequence_longer_than_its_length(setup):
  *_, score, _ = setup
  with pytest.raises(ValueError, match="scored sequence 1 has 65 tokens, more than the scorer length 64"):
    score([[1] * 5, [1] * 65])


def test_kl_bound():
  assert bon.kl_bound(1) == 0.0
  assert math.isclose(bon.kl_bound(64), math.log(64) - 63 / 64)
  assert math.isclose(bon.kl_bound(2), math.log(2) - 0.5)


def test_prompt_prefilled_once(models, one_device, prompts, monkeypatch):
  """The compiled program prefills the (bucketed) prompt batch, not n copies of it."""
  _, policy = models["llama"]
  graphdef, params = nnx.split(policy)
  seen = []
  real = sampler_lib.prefill
  monkeypatch.setattr(sampler_lib, "prefill", lambda model, tokens, *a: seen.append(tokens.shape) or real(model, tokens, *a))
  sampler = Sampler(graphdef, SamplingConfig(max_new_tokens=2, eos_id=11, pad_id=0), one_device)
  out = sampler(params, prompts, jax.random.key(0), num_samples=16)
  assert seen == [(4, 32)]  # 3 prompts -> batch bucket 4, width bucket 32
  assert out.tokens.shape == (3 * 16, 2)


def test_bad_n_raises(setup, prompts):
  sampler, params, score, _ = setup
  with pytest.raises(ValueError, match="n=65"):
    bon.best_of_n(sampler, params, prompts, jax.random.key(0), 65, score)


def test_every_candidate_cut_off_is_counted_and_picked_by_the_rm(setup, prompts, one_device, caplog):
  """With 2 new tokens most prompts have no candidate that stops: the penalty ties them all, so the
  pick falls to the RM's raw score (not to candidate 0) and the prompts are counted and logged."""
  sampler, params, score, _ = setup
  short = Sampler(sampler.graphdef, SamplingConfig(max_new_tokens=2, eos_id=11, pad_id=0, temperature=1.5),
                  one_device)
  with caplog.at_level("WARNING"):
    res = bon.best_of_n(short, params, prompts, jax.random.key(2), N, score, missing_eos_penalty=-7.0)
  cut = ~res.stopped.any(axis=1)
  assert res.all_cut_off == int(cut.sum()) > 0
  assert f"on {res.all_cut_off} of {len(prompts)} prompts" in caplog.text
  for i in np.flatnonzero(cut):
    assert res.best_index[i] == int(np.argmax(res.raw_scores[i]))
  assert any(res.best_index[i] != 0 for i in np.flatnonzero(cut)), "want a cut-off prompt whose pick is not 0"
  for i in np.flatnonzero(~cut):
    assert res.best_index[i] == int(np.argmax(res.scores[i]))
