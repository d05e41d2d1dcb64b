"""The PPO learn step on tiny models: on-policy log-prob parity with the sampler, what each phase
updates, the direction of the update, and the 8-device step against the 1-device step."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from xlra.models.heads import ScalarModel
from xlra.models.presets import get_preset
from xlra.models.transformer import Transformer
from xlra.parallel.mesh import make_mesh
from xlra.sampling.sampler import Sampler, SamplingConfig, left_pad
from xlra.train import ppo
from xlra.train.state import make_state, split_params
from xlra.train.update import jit_train_step

CFG = get_preset("tiny", vocab_size=64, d_model=32, n_layers=1, d_ff=64, max_seq_len=64)
EOS, PAD, T = 1, 0, 0.7
R = 8


def _models():
  policy_def, policy = split_params(Transformer(CFG, rngs=nnx.Rngs(0)))
  critic_def, critic = split_params(ScalarModel(CFG, rngs=nnx.Rngs(1)))
  return policy_def, policy, critic_def, critic


def _rollout(policy_def, policy, mesh, n_prompts=4, k=2):
  rng = np.random.default_rng(0)
  prompts = [list(rng.integers(2, CFG.vocab_size, size=n)) for n in (3, 7, 5, 2)[:n_prompts]]
  sampler = Sampler(policy_def, SamplingConfig(max_new_tokens=R, eos_id=EOS, pad_id=PAD, temperature=T,
                                               min_prompt_bucket=8), mesh)
  out = sampler(policy, prompts, jax.random.PRNGKey(3), num_samples=k)
  ptoks, pmask = left_pad([p for p in prompts for _ in range(k)], 8, PAD)
  rmask = np.arange(R)[None] < out.lengths[:, None]
  tokens = np.concatenate([ptoks, out.tokens], 1)
  mask = np.concatenate([pmask, rmask], 1)
  return tokens, mask, rmask, out


@pytest.fixture(scope="module")
def setup():
  """Models and one rollout from the sampler, shared by the tests (one sampler compilation)."""
  policy_def, policy, critic_def, critic = _models()
  rollout = _rollout(policy_def, policy, make_mesh({"data": 1}, jax.devices()[:1]))
  return policy_def, policy, critic_def, critic, rollout


def _logprobs(policy_def, params, tokens, mask, t):
  fn = jax.jit(lambda p, x, m: ppo.response_logprobs(nnx.merge(policy_def, p), x, m, R, t))
  return np.asarray(fn(params, jnp.asarray(tokens), jnp.asarray(mask)))


def test_recomputed_logprobs_equal_the_samplers(setup):
  """Before any update the learner's log-probs at temperature T equal the rollout's (<= 1e-5)."""
  policy_def, policy, _, _, (tokens, mask, rmask, out) = setup
  assert rmask.sum() > 10
  lp = _logprobs(policy_def, policy, tokens, mask, T)
  diff = np.abs(np.where(rmask, lp - out.logprobs, 0.0))
  assert diff.max() <= 1e-5, diff.max()
  # At T = 1 the same tokens have different log-probs: the temperature really is applied.
  lp1 = _logprobs(policy_def, policy, tokens, mask, 1.0)
  assert np.abs(np.where(rmask, lp1 - out.logprobs, 0.0)).max() > 1e-2


def _batch(policy_def, policy, critic_def, critic, tokens, mask, rmask, adv_sign=1.0):
  """Learner batch with advantage `adv_sign` on every response token and returns of 1."""
  t, m = jnp.asarray(tokens), jnp.asarray(mask)
  old_logp = jnp.asarray(_logprobs(policy_def, policy, tokens, mask, T))
  values = jax.jit(lambda p, x, mk: ppo.critic_values(nnx.merge(critic_def, p), x, mk, R))(critic, t, m)
  rm = jnp.asarray(rmask)
  adv = jnp.where(rm, adv_sign, 0.0)
  returns = jnp.where(rm, 1.0, 0.0)
  return {"tokens": t, "mask": m, "response_mask": rm, "old_logp": old_logp, "advantages": adv,
          "old_values": values, "returns": returns}


def _state(policy, critic, mesh, lr=1e-3):
  # Copies: the learn step donates its state, and device_put onto the same device would alias.
  policy, critic = jax.tree.map(jnp.copy, (policy, critic))
  tx = optax.adam(lr)
  return ppo.PPOState(policy=make_state(policy, tx, mesh, 0),
                      critic=None if critic is None else make_state(critic, tx, mesh, 1)), tx


def _jit(learn, state, batch, mesh):
  return jit_train_step(learn, ppo.ppo_state_shardings(state, mesh), batch, mesh)


def test_learn_step_phases_and_direction(setup):
  mesh = make_mesh({"data": 1}, jax.devices()[:1])
  policy_def, policy, critic_def, critic, (tokens, mask, rmask, _) = setup
  batch = _batch(policy_def, policy, critic_def, critic, tokens, mask, rmask)
  hp = ppo.LearnConfig(temperature=T, epochs=2, minibatches=2)
  snap = lambda tree: [np.array(x) for x in jax.tree.leaves(tree)]
  p0, c0 = snap(policy), snap(critic)

  # Value warm-up: the critic moves, the policy and its optimizer do not.
  state, tx = _state(policy, critic, mesh)
  warm = _jit(ppo.make_learn_step(policy_def, critic_def, tx, tx, hp, train_policy=False), state, batch, mesh)
  state, met = warm(state, batch, jax.random.PRNGKey(0))
  assert all(np.array_equal(a, b) for a, b in zip(p0, snap(state.policy.params)))
  assert int(state.policy.step) == 0 and int(state.critic.step) == 4  # 2 epochs x 2 minibatches
  assert not all(np.array_equal(a, b) for a, b in zip(c0, snap(state.critic.params)))
  assert "policy_loss" not in met and np.isfinite(float(met["value_loss"]))

  # Full step with advantage +1 on every sampled token: their log-probs go up, the ratio starts at 1.
  full = _jit(ppo.make_learn_step(policy_def, critic_def, tx, tx, hp), state, batch, mesh)
  state, met = full(state, batch, jax.random.PRNGKey(1))
  assert float(met["first_ratio"]) == pytest.approx(1.0, abs=1e-5)
  assert int(state.policy.step) == 4
  new = _logprobs(policy_def, state.policy.params, tokens, mask, T)
  gain = np.mean((new - np.asarray(batch["old_logp"]))[rmask])
  assert gain > 0.01
  for k in ("policy_loss", "value_loss", "clipfrac", "approx_kl", "entropy", "vf_clipfrac"):
    assert np.isfinite(float(met[k])), k


def test_rloo_learner_has_no_critic_to_warm_up(setup):
  policy_def, _, _, _, _ = setup
  tx = optax.adam(1e-3)
  with pytest.raises(ValueError, match="warm-up needs a critic"):
    ppo.make_learn_step(policy_def, None, tx, None, ppo.LearnConfig(), train_policy=False)


def test_sharded_step_equals_single_device(setup):
  policy_def, policy, critic_def, critic, (tokens, mask, rmask, _) = setup
  one = make_mesh({"data": 1}, jax.devices()[:1])
  batch = _batch(policy_def, policy, critic_def, critic, tokens, mask, rmask)
  hp = ppo.LearnConfig(temperature=T, epochs=1, minibatches=1)
  results = []
  for mesh in (one, make_mesh({"data": 2, "fsdp": 2, "tensor": 2})):
    state, tx = _state(policy, critic, mesh)
    learn = _jit(ppo.make_learn_step(policy_def, critic_def, tx, tx, hp, mesh=mesh), state, batch, mesh)
    state, met = learn(state, dict(batch), jax.random.PRNGKey(0))
    results.append((jax.tree.map(np.asarray, (state.policy.params, state.critic.params)), met))
  (pa, ma), (pb, mb) = results
  for a, b in zip(jax.tree.leaves(pa), jax.tree.leaves(pb)):
    np.testing.assert_allclose(a, b, atol=2e-5)
  for k in ma:
    np.testing.assert_allclose(float(ma[k]), float(mb[k]), atol=2e-5, err_msg=k)


def test_minibatches_stay_split_over_the_devices(setup):
  """Per-device FLOPs of the compiled learn step on 4 data-parallel devices are about a quarter of
  one device's: each device learns on its share of every shuffled minibatch. (Without the
  constraint the permuted minibatches were replicated, every device ran all of them, and the
  ratio was about 1.)"""
  policy_def, policy, critic_def, critic, (tokens, mask, rmask, _) = setup
  batch = _batch(policy_def, policy, critic_def, critic, tokens, mask, rmask)
  hp = ppo.LearnConfig(temperature=T, epochs=2, minibatches=2)
  flops = []
  for mesh in (make_mesh({"data": 1}, jax.devices()[:1]), make_mesh({"data": 4}, jax.devices()[:4])):
    state, tx = _state(policy, critic, mesh)
    learn = _jit(ppo.make_learn_step(policy_def, critic_def, tx, tx, hp, mesh=mesh), state, batch, mesh)
    cost = learn.lower(state, batch, jax.random.PRNGKey(0)).compile().cost_analysis()
    flops.append(float((cost[0] if isinstance(cost, list) else cost)["flops"]))
  assert flops[1] < 0.4 * flops[0], flops
