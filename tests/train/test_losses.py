"""Reward and SFT losses, and their gradients, against closed forms written out by hand."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from xlra.train import reward, sft


def _sig(x):
  return 1.0 / (1.0 + math.exp(-x))


def test_bradley_terry_value_and_gradient():
  rc = np.array([1.5, -0.3, 2.0, 0.0], np.float32)
  rr = np.array([0.5, 0.4, -1.0, 0.0], np.float32)
  margin = np.array([0.0, 0.0, 0.5, 1.0], np.float32)
  loss = reward.bradley_terry_loss(jnp.asarray(rc), jnp.asarray(rr), jnp.asarray(margin))
  want = [-math.log(_sig(c - r - m)) for c, r, m in zip(rc, rr, margin)]
  np.testing.assert_allclose(loss, want, rtol=1e-6)
  # d/dr_c -log sigmoid(d) = -(1 - sigmoid(d)); d/dr_r = +(1 - sigmoid(d)), with d = r_c - r_r - m.
  gc, gr = jax.grad(lambda c, r: reward.bradley_terry_loss(c, r, jnp.asarray(margin)).sum(), (0, 1))(
      jnp.asarray(rc), jnp.asarray(rr))
  want_gc = [-(1 - _sig(c - r - m)) for c, r, m in zip(rc, rr, margin)]
  np.testing.assert_allclose(gc, want_gc, rtol=1e-6)
  np.testing.assert_allclose(gr, [-g for g in want_gc], rtol=1e-6)
  # log 2 when the rewards tie and there is no margin.
  np.testing.assert_allclose(reward.bradley_terry_loss(0.0, 0.0), math.log(2), rtol=1e-6)


def test_bradley_terry_is_stable_for_large_differences():
  loss = reward.bradley_terry_loss(jnp.array([100.0, -100.0]), jnp.array([0.0, 0.0]))
  np.testing.assert_allclose(loss, [0.0, 100.0], atol=1e-6)
  assert np.isfinite(jax.grad(lambda c: reward.bradley_terry_loss(c, 0.0))(jnp.float32(-100.0)))


def test_centering_term_value_and_gradient():
  rc, rr = jnp.float32(0.7), jnp.float32(-0.2)
  np.testing.assert_allclose(reward.centering_loss(rc, rr), 0.25, rtol=1e-6)  # (0.7 - 0.2)^2
  gc, gr = jax.grad(reward.centering_loss, (0, 1))(rc, rr)
  np.testing.assert_allclose([gc, gr], [1.0, 1.0], rtol=1e-6)  # 2 (r_c + r_r)


def test_bce_value_and_gradient():
  s = np.array([2.0, -1.0, 0.3, -4.0], np.float32)
  y = np.array([1.0, 1.0, 0.0, 0.0], np.float32)
  loss = reward.bce_loss(jnp.asarray(s), jnp.asarray(y))
  want = [-(t * math.log(_sig(v)) + (1 - t) * math.log(1 - _sig(v))) for v, t in zip(s, y)]
  np.testing.assert_allclose(loss, want, rtol=1e-6)
  g = jax.grad(lambda x: reward.bce_loss(x, jnp.asarray(y)).sum())(jnp.asarray(s))
  np.testing.assert_allclose(g, [_sig(v) - t for v, t in zip(s, y)], rtol=1e-6)  # sigmoid(s) - y


class _FixedScores:
  """Stands in for a ScalarModel: score = the first token id, scaled."""

  def score(self, tokens, mask):
    return tokens[:, 0].astype(jnp.float32) / 10.0


def test_pairwise_and_pointwise_batch_losses_sum_per_example_terms():
  chosen = jnp.array([[12, 1], [3, 1], [-5, 1]], jnp.int32)
  rejected = jnp.array([[2, 1], [8, 1], [-5, 1]], jnp.int32)
  ones = jnp.ones((3, 2), bool)
  batch = {"chosen_tokens": chosen, "chosen_mask": ones, "rejected_tokens": rejected, "rejected_mask": ones,
           "margin": jnp.array([1.0, 0.0, 2.0])}
  total, n, stats = reward.pairwise_loss_fn(margin_scale=0.5, center_coef=0.1)(_FixedScores(), batch)
  rc, rr, m = [1.2, 0.3, -0.5], [0.2, 0.8, -0.5], [0.5, 0.0, 1.0]
  want = sum(-math.log(_sig(c - r - mm)) + 0.1 * (c + r) ** 2 for c, r, mm in zip(rc, rr, m))
  np.testing.assert_allclose(total, want, rtol=1e-5)
  assert float(n) == 3 and float(stats["accuracy"]) == 1.0  # only the first pair is ordered right

  pw = {"tokens": jnp.array([[20], [-3], [5]]), "mask": jnp.ones((3, 1), bool), "label": jnp.array([1, 1, 0])}
  total, n, stats = reward.pointwise_loss(_FixedScores(), pw)
  want = -math.log(_sig(2.0)) - math.log(_sig(-0.3)) - math.log(1 - _sig(0.5))
  np.testing.assert_allclose(total, want, rtol=1e-5)
  assert float(stats["accuracy"]) == 1.0  # 2.0 > 0 right, -0.3 wrong, 0.5 wrong


class _FixedLogits:
  def __init__(self, logits):
    self.logits = logits

  def __call__(self, tokens, positions=None, mask=None, segment_ids=None):
    return self.logits


def test_sft_loss_counts_only_response_targets():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(2, 5, 7)).astype(np.float32)
  tokens = np.array([[1, 2, 3, 4, 0], [5, 6, 1, 2, 3]], np.int32)
  mask = np.array([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], bool)  # row 0 right padded
  loss_mask = np.array([[0, 0, 1, 1, 0], [0, 1, 1, 1, 1]], bool)  # prompt is never a target
  total, n, stats = sft.sft_loss(_FixedLogits(jnp.asarray(logits)),
                                 {"tokens": tokens, "mask": mask, "loss_mask": loss_mask})
  want, count = 0.0, 0
  for b in range(2):
    for t in range(4):
      if loss_mask[b, t + 1] and mask[b, t + 1]:
        z = logits[b, t].astype(np.float64)
        want += math.log(np.exp(z - z.max()).sum()) + z.max() - z[tokens[b, t + 1]]
        count += 1
  np.testing.assert_allclose(total, want, rtol=1e-5)
  assert float(n) == count == 6


def test_sft_loss_on_gathered_positions_equals_the_dense_loss():
  """The target_index path (logits at predicting positions only) against the hand-checked dense path,
  on a real tiny Transformer, for padded and packed batches, and their gradients."""
  from flax import nnx

  from xlra.data import batching
  from xlra.models.presets import get_preset
  from xlra.models.transformer import Transformer

  model = Transformer(get_preset("tiny", vocab_size=64, max_seq_len=48), rngs=nnx.Rngs(0))
  rng = np.random.default_rng(1)
  seqs = lambda n, lo, hi: [rng.integers(3, 64, size=rng.integers(lo, hi)).tolist() for _ in range(n)]  # noqa: E731
  prompts, responses = seqs(6, 2, 9), seqs(6, 1, 7)
  padded = batching.sft_batch(prompts[:3], responses[:3], 0, 20)
  packed = batching.packed_sft_batch(prompts, responses, batching.pack_rows(prompts, responses, 3, 48), 0, 48)
  assert len(np.unique(packed["segment_ids"][0])) > 2  # several sequences in a row
  for b in (padded, packed):  # narrow enough for the gathered path (M <= L / 2)
    assert 2 * b["target_index"].shape[1] <= b["tokens"].shape[1]
  graphdef, params = nnx.split(model)
  for batch in (padded, packed):
    batch = {**batch, "example_weight": np.array([1.0, 0.0, 1.0], np.float32)}
    dense = {k: v for k, v in batch.items() if k != "target_index"}

    def loss(p, b):
      total, n, stats = sft.sft_loss(nnx.merge(graphdef, p), b)
      return total / n, (n, stats["accuracy"])

    (l_g, (n_g, acc_g)), g_g = jax.value_and_grad(loss, has_aux=True)(params, batch)
    (l_d, (n_d, acc_d)), g_d = jax.value_and_grad(loss, has_aux=True)(params, dense)
    assert float(n_g) == float(n_d) > 0 and float(acc_g) == float(acc_d)
    np.testing.assert_allclose(l_g, l_d, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(g_g), jax.tree.leaves(g_d)):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
