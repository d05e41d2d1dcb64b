"""Best-of-n: draw n responses per prompt from the policy, score them with a reward model, keep the best.

Each prompt is prefilled once and its KV cache shared by its n samples (`Sampler(..., num_samples=n)`,
KVCache.prefix), so the prompt costs one forward pass and one cache rather than n. Sample j of prompt i draws its
randomness from (rng, i, j) alone (xlra.sampling.sampler), so the candidates do not depend on how
prompts and samples are split into generation batches, and equal n independent samples.

Scoring follows the RM's training layout: [prompt | response] right-padded, scored at the last real
token (the EOS that ends the response). A response that ran out of tokens without EOS gets
`missing_eos_penalty` instead of its score when one is set (xlra.train.ppo.final_scores, as in PPO).
When every candidate of a prompt ran out, the penalty ties them all; the RM's own scores then pick
among them, and such prompts are counted (`all_cut_off`) and logged, so a budget too small for the
task shows instead of resolving to candidate 0.

The KL between the best-of-n policy and the sampling policy is at most log n - (n - 1) / n
(Stiennon et al. 2020; Beirami et al. 2024), reported with the results.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

import jax
import numpy as np
from absl import logging
from flax import nnx

from xlra.sampling.sampler import Sampler
from xlra.train.ppo import final_scores

MAX_N = 64


def kl_bound(n: int) -> float:
  """Upper bound on KL(best-of-n || policy) in nats: log n - (n - 1) / n."""
  return math.log(n) - (n - 1) / n


@dataclasses.dataclass(frozen=True)
class BestOfNResult:
  """Per prompt i: the chosen response and every candidate's score.

  best[i]: token ids of the chosen response (its stop token included); best_index [P] which of the n
  samples it is; scores [P, n] float32 final scores (after the missing-EOS rule); raw_scores [P, n]
  the RM's scores; stopped [P, n] whether each candidate ended with a stop token; lengths [P, n];
  candidates[i][j] token ids of every sample when `keep_all`, else None; all_cut_off: prompts none of
  whose candidates ended with a stop token (chosen by raw_scores among them).
  """

  n: int
  best: list[list[int]]
  best_index: np.ndarray
  scores: np.ndarray
  raw_scores: np.ndarray
  stopped: np.ndarray
  lengths: np.ndarray
  candidates: list[list[list[int]]] | None
  kl_bound: float
  all_cut_off: int = 0

  @property
  def best_score(self) -> np.ndarray:
    return self.scores[np.arange(len(self.best)), self.best_index]


def best_of_n(sampler: Sampler, policy_params: nnx.State, prompts: Sequence[Sequence[int]], rng: jax.Array, n: int,
              score: Callable[[list[list[int]]], np.ndarray], *, rows_per_batch: int = 64,
              prompt_ids: Sequence[int] | None = None, missing_eos_penalty: float | None = None,
              keep_all: bool = False, progress: Callable[[int, int], None] | None = None) -> BestOfNResult:
  """Best of `n` samples per prompt under the reward model.

  score maps [prompt | response] token-id rows to raw rewards [rows], e.g.
  `xlra.train.scoring.RewardScorer(...).score_ids` (jitted, batched, right-padded).

  rows_per_batch bounds the sampler's batch (prompts x samples per call): with n <= rows_per_batch,
  rows_per_batch // n prompts share a call; with more, each prompt's samples are drawn in chunks
  (each chunk prefills the prompt once). prompt_ids (default 0..P-1) name each prompt's randomness:
  pass global indices when a prompt set is processed in parts. progress(done, total) is called
  after each generation call with counts of prompts.
  """
  if not 1 <= n <= MAX_N:
    raise ValueError(f"best-of-n n={n} must be in [1, {MAX_N}]")
  if rows_per_batch < 1:
    raise ValueError(f"rows_per_batch={rows_per_batch} must be >= 1")
  ids = np.arange(len(prompts)) if prompt_ids is None else np.asarray(prompt_ids)
  if ids.shape != (len(prompts),):
    raise ValueError(f"prompt_ids has shape {ids.shape}; expected ({len(prompts)},)")
  t = sampler.config.max_new_tokens
  n_prompts = len(prompts)
  tokens = np.zeros((n_prompts, n, t), np.int32)
  lengths = np.zeros((n_prompts, n), np.int32)
  stopped = np.zeros((n_prompts, n), bool)
  per_call = min(n, rows_per_batch)
  prompts_per_call = max(1, rows_per_batch // per_call)
  for p0 in range(0, n_prompts, prompts_per_call):
    sl = slice(p0, min(p0 + prompts_per_call, n_prompts))
    for j0 in range(0, n, per_call):
      k = min(per_call, n - j0)
      out = sampler(policy_params, prompts[sl], rng, num_samples=k, prompt_ids=ids[sl], first_sample=j0)
      b = sl.stop - sl.start
      tokens[sl, j0:j0 + k] = out.tokens.reshape(b, k, t)
      lengths[sl, j0:j0 + k] = out.lengths.reshape(b, k)
      stopped[sl, j0:j0 + k] = out.stopped.reshape(b, k)
    if progress is not None:
      progress(sl.stop, n_prompts)

  responses = [[tokens[i, j, :lengths[i, j]].tolist() for j in range(n)] for i in range(n_prompts)]
  rows = [list(prompts[i]) + responses[i][j] for i in range(n_prompts) for j in range(n)]
  raw = np.asarray(score(rows), np.float32).reshape(n_prompts, n)
  scores = np.asarray(final_scores(raw, stopped, missing_eos_penalty))
  cut_off = ~stopped.any(axis=1)
  best_index = np.where(cut_off, np.argmax(raw, axis=1), np.argmax(scores, axis=1))
  if cut_off.any():
    logging.warning("best-of-n: on %d of %d prompts every one of the %d candidates ran out of max_new_tokens=%d "
                    "without a stop token; chose among them by the RM's raw score. Raise max_new_tokens if "
                    "responses need more.", int(cut_off.sum()), n_prompts, n, t)
  return BestOfNResult(
      n=n, best=[responses[i][best_index[i]] for i in range(n_prompts)], best_index=best_index, scores=scores,
      raw_scores=raw, stopped=stopped, lengths=lengths, candidates=responses if keep_all else None,
      kl_bound=kl_bound(n), all_cut_off=int(cut_off.sum()))
