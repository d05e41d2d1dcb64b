"""Sampler: cached decode vs full forward, greedy vs transformers `generate`, filters, compilations, sharding."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers as tf
from flax import nnx
from models.hf_testing import CASES, VOCAB

from xlra.parallel.mesh import make_mesh
from xlra.sampling.sampler import (Sampler, SamplingConfig, choose, decode_logits, filter_logits, inverse_cdf, left_pad,
                                   prefill)


def test_left_pad_puts_prompts_flush_right():
  tokens, mask = left_pad([[7, 8, 9], [4]], 4, pad_id=0)
  np.testing.assert_array_equal(tokens, [[0, 7, 8, 9], [0, 0, 0, 4]])
  np.testing.assert_array_equal(mask, [[False, True, True, True], [False, False, False, True]])


def _jitted(model):
  """Jitted (full forward, prefill, decode step) of one model: eager op-by-op dispatch is slow here."""
  graphdef, state = nnx.split(model)
  full = jax.jit(lambda s, t, m: nnx.merge(graphdef, s)(t, mask=m))
  pre = jax.jit(lambda s, t, m, n: prefill(nnx.merge(graphdef, s), t, m, n), static_argnums=3)
  step = jax.jit(lambda s, c, t, p, v: decode_logits(nnx.merge(graphdef, s), c, t, p, v))
  return state, full, pre, step


@pytest.mark.parametrize("family", list(CASES))
def test_cached_decode_logits_equal_full_forward(models, family, prompts):
  """The sampler's path: prefill a left-padded batch once into a shared prompt cache, then decode
  n = 2 different continuations per prompt, each row over the shared prompt keys plus its own
  cache. Every step's logits must equal the uncached forward pass over that row's whole
  left-padded sequence (positions from the mask) at that slot."""
  state, full_fn, prefill_fn, step_fn = _jitted(models[family][1])
  model = models[family][1]
  steps, width, n = 6, 12, 2  # sliding windows are 4: the decode runs past them
  rows = len(prompts) * n
  cont = np.random.default_rng(1).integers(1, VOCAB, (rows, steps)).astype(np.int32)
  tokens, mask = left_pad(prompts, width, 0)
  logits, shared = prefill_fn(state, tokens, mask, width)
  cache = model.init_cache(rows, steps, prefix=shared)
  full_tokens = np.concatenate([np.repeat(tokens, n, axis=0), cont], axis=1)
  full_mask = np.concatenate([np.repeat(mask, n, axis=0), np.ones_like(cont, bool)], axis=1)
  full = np.asarray(full_fn(state, full_tokens, full_mask))
  np.testing.assert_allclose(np.asarray(logits), full[::n, width - 1], atol=1e-5, rtol=0)
  pos = np.repeat(mask.sum(1), n)
  for t in range(steps):
    logits, cache = step_fn(state, cache, cont[:, t], pos + t, np.ones(rows, bool))
    np.testing.assert_allclose(np.asarray(logits), full[:, width + t], atol=1e-5, rtol=0, err_msg=f"step {t}")


def test_inverse_cdf_matches_a_float64_search():
  """inverse_cdf against numpy's float64 searchsorted on rows with zero-mass tokens (filtered ones,
  and a vocabulary that is not a multiple of the block size): the same token wherever u * total is not
  within rounding of a CDF step, and never a zero-mass token, even at the ends: u = 0 after leading
  zero-mass tokens, and u = 1 (the overshoot that rounding can cause) past trailing ones."""
  rng = np.random.default_rng(0)
  for v in (6, 97, 1000):
    probs = rng.exponential(size=(400, v)) * (rng.random((400, v)) < 0.6)
    probs[:, rng.integers(v)] += 1.0  # every row has mass
    probs[:8, v // 2:], probs[:8, 0] = 0.0, 1.0  # whole blocks of zero mass at the end ...
    probs[8:16, :v // 2], probs[8:16, -1] = 0.0, 1.0  # ... and at the start
    u = rng.random(400)
    u[:8], u[8:16] = 1.0, 0.0  # the last token with mass; the first one
    got = np.asarray(inverse_cdf(jnp.asarray(probs, jnp.float32), jnp.asarray(u, jnp.float32)))
    cdf = np.cumsum(probs, axis=1)
    target = u.astype(np.float32).astype(np.float64) * cdf[:, -1]
    want = np.array([np.searchsorted(c, t, side="right") for c, t in zip(cdf, target)])
    near = np.min(np.abs(cdf - target[:, None]), axis=1) <= 1e-5 * cdf[:, -1]
    assert (probs[np.arange(400), got] > 0).all(), f"v={v}: a zero-mass token was drawn"
    np.testing.assert_array_equal(got[~near], want[~near], err_msg=f"v={v}")
    assert (~near).sum() > 350
    np.testing.assert_array_equal(got[:16], [np.flatnonzero(p)[-1 if i < 8 else 0] for i, p in enumerate(probs[:16])])


@pytest.mark.parametrize("family", ["llama", "qwen2", "gemma2", "gemma3"])
def test_greedy_equals_transformers_generate(models, family, one_device, prompts):
  """Greedy tokens (with EOS and an extra stop id ending rows early) equal HF `generate` on left-padded
  prompts; log-probs equal the log-softmax of HF's scores at those tokens."""
  ref, model = models[family]
  steps = 10
  graphdef, params = nnx.split(model)
  # Stop tokens: ones the unconstrained greedy run emits mid-way, so rows really stop early.
  tokens, mask = left_pad(prompts, 11, 0)
  with torch.no_grad():
    free = ref.generate(torch.from_numpy(tokens).long(), attention_mask=torch.from_numpy(mask).long(),
                        max_new_tokens=steps, do_sample=False, pad_token_id=0, eos_token_id=None)[:, 11:].numpy()
  eos, stop = int(free[0, 3]), int(free[1, 5])
  with torch.no_grad():
    out = ref.generate(torch.from_numpy(tokens).long(), attention_mask=torch.from_numpy(mask).long(),
                       max_new_tokens=steps, do_sample=False, pad_token_id=0, eos_token_id=[eos, stop],
                       output_scores=True, return_dict_in_generate=True)
  hf_tokens = out.sequences[:, 11:].numpy()
  hf_logp = torch.stack(out.scores, 1).log_softmax(-1).numpy()

  sampler = Sampler(graphdef, SamplingConfig(max_new_tokens=steps, eos_id=eos, stop_ids=(stop,), pad_id=0,
                                             temperature=0.0, min_prompt_bucket=16), one_device)
  got = sampler(params, prompts, jax.random.key(0))
  ours = np.zeros((len(prompts), steps), np.int32)
  ours[:, : hf_tokens.shape[1]] = hf_tokens  # HF stops once every row has; the rest is padding
  np.testing.assert_array_equal(got.tokens, ours)
  for r in range(len(prompts)):
    n = got.lengths[r]
    assert got.stopped[r] == (n < steps or ours[r, n - 1] in (eos, stop))
    assert (ours[r, n:] == 0).all() and n >= 1
    np.testing.assert_allclose(got.logprobs[r, :n], hf_logp[r, np.arange(n), ours[r, :n]], atol=1e-4)
    assert (got.logprobs[r, n:] == 0).all()


TEMPERED = SamplingConfig(max_new_tokens=8, eos_id=95, pad_id=0, temperature=0.7, top_k=12, top_p=0.8)


@pytest.fixture(scope="module")
def tempered(models, one_device, prompts):
  """Two tempered, top-k and top-p samples per prompt on one device (shared by two tests: one compile)."""
  graphdef, params = nnx.split(models["llama"][1])
  return Sampler(graphdef, TEMPERED, one_device)(params, prompts, jax.random.key(3), num_samples=2)


def test_sampled_logprobs_are_the_unfiltered_tempered_distribution(models, tempered, prompts):
  """With temperature, top-k and top-p: each log-prob is log_softmax(logits / T) of a full forward pass
  over prompt + response at that token (unfiltered), and each drawn token survives the filters."""
  _, model = models["llama"]
  cfg, got = TEMPERED, tempered
  state, full_fn, _, _ = _jitted(model)
  rows = [prompts[r // 2] + got.response(r) for r in range(len(got.tokens))]
  width = max(map(len, rows))
  tokens, mask = left_pad(rows, width, 0)
  logits = np.asarray(full_fn(state, tokens, mask)) / cfg.temperature
  for r, row in enumerate(rows):
    n = got.lengths[r]
    pred = logits[r, width - n - 1: width - 1]  # the slots that predict each response token
    resp = np.asarray(row[-n:])
    logp = np.asarray(jax.nn.log_softmax(pred, axis=-1))
    np.testing.assert_allclose(got.logprobs[r, :n], logp[np.arange(n), resp], atol=1e-5)
    kept = np.isfinite(np.asarray(filter_logits(jnp.asarray(pred), cfg.top_k, cfg.top_p)))
    assert kept[np.arange(n), resp].all()


def test_filters_match_transformers_warpers():
  logits = jax.random.normal(jax.random.key(0), (6, 50)) * 3
  for k, p in [(5, 1.0), (0, 0.7), (10, 0.5), (0, 0.99)]:
    ref = torch.tensor(np.asarray(logits))
    if k:
      ref = tf.TopKLogitsWarper(k)(None, ref)
    if p < 1:
      ref = tf.TopPLogitsWarper(p)(None, ref)
    ours = np.asarray(filter_logits(logits, k, p))
    np.testing.assert_array_equal(np.isfinite(ours), np.isfinite(ref.numpy()), err_msg=f"top_k={k} top_p={p}")


def test_draw_frequencies_follow_the_filtered_distribution():
  """20k draws from one row: empirical frequencies within 4 sigma of softmax(filtered logits / T).
  Unsorted logits, so the filtered-out tokens sit between drawable ones (the CDF must skip them)."""
  vals = np.array([2.0, 1.5, 1.0, 0.3, -0.5, -2.0])  # descending
  perm = np.array([3, 5, 0, 2, 1, 4])  # token i has logit vals[perm[i]]
  logits = jnp.asarray(vals[perm])[None]
  cfg = SamplingConfig(max_new_tokens=1, eos_id=7, pad_id=8, temperature=0.8, top_p=0.9)
  n = 20_000
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(n))
  tokens, _ = choose(jnp.repeat(logits, n, axis=0), keys, jnp.zeros((), jnp.int32), cfg)
  probs = np.exp((vals - vals.max()) / 0.8)
  probs /= probs.sum()
  keep = np.cumsum(probs) - probs < 0.9  # the nucleus of the sorted distribution
  expected = (np.where(keep, probs, 0) / probs[keep].sum())[perm]
  assert (expected == 0).sum() == 3  # three tokens filtered out, two of them between drawable ones
  freq = np.bincount(np.asarray(tokens), minlength=6) / n
  assert freq[expected == 0].sum() == 0, freq
  assert np.all(np.abs(freq - expected) <= 4 * np.sqrt(expected * (1 - expected) / n) + 1e-12), (freq, expected)


def test_compilations_bounded_across_prompt_lengths_and_batch_sizes(models, one_device):
  _, model = models["llama"]
  graphdef, params = nnx.split(model)
  sampler = Sampler(graphdef, SamplingConfig(max_new_tokens=3, eos_id=95, pad_id=0), one_device)
  rng = np.random.default_rng(0)
  # (batch, prompt length): buckets (4, 32) x2, (8, 32) x2, (8, 64) x2 -> three programs
  for b, length in [(3, 3), (4, 30), (7, 32), (8, 17), (5, 40), (6, 64)]:
    prompts = [rng.integers(1, VOCAB, length).tolist() for _ in range(b)]
    out = sampler(params, prompts, jax.random.key(0))
    assert out.tokens.shape == (b, 3)
  assert sampler.trace_count == 3


def test_sharded_sampling_equals_one_device(models, tempered, prompts):
  """Batch over (data, fsdp), heads and vocabulary over tensor on 8 devices gives the one-device samples
  (top-k / top-p included, whose sort then spans vocabulary shards)."""
  graphdef, params = nnx.split(models["llama"][1])
  mesh = make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  b = Sampler(graphdef, TEMPERED, mesh)(params, prompts, jax.random.key(3), num_samples=2)
  np.testing.assert_array_equal(tempered.tokens, b.tokens)
  np.testing.assert_array_equal(tempered.lengths, b.lengths)
  np.testing.assert_allclose(tempered.logprobs, b.logprobs, atol=1e-5)


def test_bad_input_raises_early(models, one_device):
  _, model = models["llama"]
  graphdef, params = nnx.split(model)
  sampler = Sampler(graphdef, SamplingConfig(max_new_tokens=2, eos_id=95, pad_id=0, max_prompt_len=32), one_device)
  with pytest.raises(ValueError, match=r"prompts\[1\] is empty"):
    sampler(params, [[3], []], jax.random.key(0))
  with pytest.raises(ValueError, match="max_prompt_len"):
    sampler(params, [[3] * 40], jax.random.key(0))
  with pytest.raises(ValueError, match="pad_id"):
    SamplingConfig(max_new_tokens=2, eos_id=0, pad_id=0)
