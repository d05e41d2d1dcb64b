"""PPO math against values written out independently with numpy loops (one token at a time)."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest

from xlra.train import ppo

RNG = np.random.default_rng(0)
MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], bool)


def _ref_gae(r, v, m, gamma, lam):
  b, t_len = r.shape
  adv = np.zeros((b, t_len))
  for i in range(b):
    n = int(m[i].sum())
    last = 0.0
    for t in reversed(range(n)):
      nv = v[i, t + 1] if t + 1 < n else 0.0
      delta = r[i, t] + gamma * nv - v[i, t]
      last = delta + gamma * lam * last
      adv[i, t] = last
  ret = np.where(m, adv + v, 0.0)
  return adv, ret


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.9, 0.5), (1.0, 1.0)])
def test_gae_matches_loop(gamma, lam):
  r = RNG.normal(size=MASK.shape)
  v = RNG.normal(size=MASK.shape)
  adv, ret = ppo.gae(jnp.asarray(r, jnp.float32), jnp.asarray(v, jnp.float32), jnp.asarray(MASK), gamma, lam)
  ref_adv, ref_ret = _ref_gae(r, v, MASK, gamma, lam)
  np.testing.assert_allclose(np.asarray(adv), ref_adv, atol=1e-5)
  np.testing.assert_allclose(np.asarray(ret), ref_ret, atol=1e-5)


def test_gae_hand_value():
  # One row of 2 tokens, rewards [0, 1], values [0.5, 0.2], gamma 1, lambda 0.95:
  # delta_1 = 1 - 0.2 = 0.8; delta_0 = 0 + 0.2 - 0.5 = -0.3; A_0 = -0.3 + 0.95 * 0.8 = 0.46.
  adv, ret = ppo.gae(jnp.array([[0.0, 1.0]]), jnp.array([[0.5, 0.2]]), jnp.array([[True, True]]))
  np.testing.assert_allclose(np.asarray(adv), [[0.46, 0.8]], atol=1e-6)
  np.testing.assert_allclose(np.asarray(ret), [[0.96, 1.0]], atol=1e-6)


def test_kl_penalty_rewards_and_eos_rule():
  logp = RNG.normal(size=MASK.shape)
  ref = RNG.normal(size=MASK.shape)
  raw = np.array([2.0, -1.0, 0.5])
  eos = np.array([True, False, True])
  beta, penalty, mean, std = 0.1, -3.0, 0.5, 2.0
  scores = ppo.final_scores(jnp.asarray(raw), jnp.asarray(eos), penalty, mean, std)
  rewards, kl = ppo.kl_penalty_rewards(scores, jnp.asarray(logp, jnp.float32), jnp.asarray(ref, jnp.float32),
                                       jnp.asarray(MASK), beta)
  want = np.zeros(MASK.shape)
  want_kl = np.zeros(MASK.shape)
  for i in range(3):
    n = int(MASK[i].sum())
    s = (raw[i] - mean) / std if eos[i] else penalty
    for t in range(n):
      want_kl[i, t] = logp[i, t] - ref[i, t]
      want[i, t] = -beta * want_kl[i, t] + (s if t == n - 1 else 0.0)
  np.testing.assert_allclose(np.asarray(rewards), want, atol=1e-5)
  np.testing.assert_allclose(np.asarray(kl), want_kl, atol=1e-6)
  # Row 1 had no EOS: its last token carries the penalty, not (-1 - 0.5) / 2.
  assert abs(float(rewards[1, 4]) - (-beta * want_kl[1, 4] - 3.0)) < 1e-5


def test_whiten_biased_variance_and_no_shift():
  x = RNG.normal(loc=3.0, size=MASK.shape)
  vals = x[MASK]
  mu, var = vals.mean(), ((vals - vals.mean()) ** 2).mean()  # biased
  w = np.asarray(ppo.whiten(jnp.asarray(x, jnp.float32), jnp.asarray(MASK)))
  np.testing.assert_allclose(w[MASK], (vals - mu) / math.sqrt(var + 1e-8), atol=1e-5)
  assert np.all(w[~MASK] == 0)
  w2 = np.asarray(ppo.whiten(jnp.asarray(x, jnp.float32), jnp.asarray(MASK), shift_mean=False))
  np.testing.assert_allclose(w2[MASK], (vals - mu) / math.sqrt(var + 1e-8) + mu, atol=1e-5)


def test_clipped_policy_loss_by_hand():
  old = np.log(np.array([[0.5, 0.5, 0.5, 0.5]]))
  ratio = np.array([[1.5, 0.5, 1.1, 0.7]])
  adv = np.array([[1.0, -2.0, 3.0, 1.0]])
  mask = np.array([[True, True, True, False]])
  loss, st = ppo.policy_loss(jnp.asarray(old + np.log(ratio), jnp.float32), jnp.asarray(old, jnp.float32),
                             jnp.asarray(adv, jnp.float32), jnp.asarray(mask), 0.2)
  # token 0: max(-1.5, -1.2) = -1.2 (clipped); token 1: max(1.0, 1.6) = 1.6 (clipped);
  # token 2: max(-3.3, -3.3) = -3.3 (inside); token 3 masked. mean = (-1.2 + 1.6 - 3.3) / 3.
  assert float(loss) == pytest.approx((-1.2 + 1.6 - 3.3) / 3, abs=1e-5)
  assert float(st["clipfrac"]) == pytest.approx(2 / 3, abs=1e-6)
  lr = np.log(ratio[0, :3])
  assert float(st["approx_kl"]) == pytest.approx(np.mean(0.5 * lr ** 2), abs=1e-6)


def test_clipped_policy_loss_matches_loop():
  logp, old, adv = (RNG.normal(scale=0.3, size=MASK.shape) for _ in range(3))
  loss, st = ppo.policy_loss(*(jnp.asarray(a, jnp.float32) for a in (logp, old, adv)), jnp.asarray(MASK), 0.2)
  terms, clipped = [], []
  for i, t in zip(*np.nonzero(MASK)):
    r = math.exp(logp[i, t] - old[i, t])
    a = -adv[i, t] * r
    b = -adv[i, t] * min(max(r, 0.8), 1.2)
    terms.append(max(a, b))
    clipped.append(b > a)
  assert float(loss) == pytest.approx(np.mean(terms), abs=1e-5)
  assert float(st["clipfrac"]) == pytest.approx(np.mean(clipped), abs=1e-6)


def test_clipped_value_loss_by_hand():
  v_old = np.array([[1.0, 1.0, 0.0]])
  v_new = np.array([[1.5, 0.9, 9.0]])
  ret = np.array([[2.0, 0.0, 0.0]])
  mask = np.array([[True, True, False]])
  loss, st = ppo.value_loss(*(jnp.asarray(a, jnp.float32) for a in (v_new, v_old, ret)), jnp.asarray(mask), 0.2)
  # token 0: unclipped (1.5-2)^2 = 0.25, clipped (1.2-2)^2 = 0.64 -> 0.64
  # token 1: unclipped 0.81, clipped (0.9 inside the clip) 0.81 -> 0.81. loss = 0.5 * mean.
  assert float(loss) == pytest.approx(0.5 * (0.64 + 0.81) / 2, abs=1e-6)
  assert float(st["vf_clipfrac"]) == pytest.approx(0.5, abs=1e-6)


def test_rloo_leave_one_out():
  r = np.array([1.0, 2.0, 6.0, 0.0, -2.0, 5.0])
  adv = np.asarray(ppo.rloo_advantages(jnp.asarray(r), 3))
  want = []
  for g in range(2):
    grp = r[3 * g:3 * g + 3]
    for j in range(3):
      others = [grp[o] for o in range(3) if o != j]
      want.append(grp[j] - sum(others) / len(others))
  np.testing.assert_allclose(adv, want, atol=1e-6)
  assert adv[0] == pytest.approx(1.0 - 4.0)  # 1 - mean(2, 6)
  with pytest.raises(ValueError, match="rloo_k"):
    ppo.rloo_advantages(jnp.asarray(r), 4)
  with pytest.raises(ValueError, match="at least 2"):
    ppo.rloo_advantages(jnp.asarray(r), 1)


def test_adaptive_kl_controller():
  # Ziegler et al.: error = clip(KL / target - 1, -0.2, 0.2); beta *= 1 + error * n / horizon.
  assert ppo.adaptive_kl_update(0.1, 12.0, 64, 6.0, 10_000) == pytest.approx(0.1 * (1 + 0.2 * 64 / 10_000))
  assert ppo.adaptive_kl_update(0.1, 6.6, 100, 6.0, 1000) == pytest.approx(0.1 * (1 + 0.1 * 0.1))
  assert ppo.adaptive_kl_update(0.1, 0.0, 100, 6.0, 1000) == pytest.approx(0.1 * (1 - 0.2 * 0.1))
  assert ppo.adaptive_kl_update(0.1, 6.0, 100, 6.0, 1000) == pytest.approx(0.1)


def test_logprobs_entropy_and_explained_variance():
  logits = RNG.normal(size=(2, 3, 7))
  toks = RNG.integers(0, 7, size=(2, 3))
  t = 0.7
  lp = np.asarray(ppo.token_logprobs(jnp.asarray(logits, jnp.float32), jnp.asarray(toks), t))
  ent = np.asarray(ppo.entropy(jnp.asarray(logits, jnp.float32), t))
  for i in range(2):
    for j in range(3):
      z = logits[i, j] / t
      p = np.exp(z - z.max())
      p /= p.sum()
      assert lp[i, j] == pytest.approx(math.log(p[toks[i, j]]), abs=1e-5)
      assert ent[i, j] == pytest.approx(-(p * np.log(p)).sum(), abs=1e-5)
  ret = RNG.normal(size=MASK.shape)
  val = ret + RNG.normal(scale=0.5, size=MASK.shape)
  ev = float(ppo.explained_variance(jnp.asarray(val, jnp.float32), jnp.asarray(ret, jnp.float32), jnp.asarray(MASK)))
  rv = ret[MASK]
  assert ev == pytest.approx(1 - np.var(rv - val[MASK]) / np.var(rv), abs=1e-5)
