"""PPO iterations end to end on tiny random models (no data layer): right-padding for the RM,
value warm-up, on-policy parity, the adaptive KL controller and RLOO in the same loop."""

from __future__ import annotations

import os
import runpy

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from xlra.models.heads import ScalarModel
from xlra.models.presets import get_preset
from xlra.models.transformer import Transformer
from xlra.parallel.mesh import make_mesh
from xlra.train import ppo_loop
from xlra.train.state import split_params

CFG = get_preset("tiny", vocab_size=64, d_model=32, n_layers=1, d_ff=64, max_seq_len=64)
EOS, PAD = 1, 0


def test_right_pad_scores_like_a_right_padded_row():
  rm = ScalarModel(CFG, rngs=nnx.Rngs(2))
  # [pad pad | 5 6 7 | 8 9 EOS | pad]  ->  [5 6 7 8 9 EOS pad pad pad]
  toks = jnp.array([[PAD, PAD, 5, 6, 7, 8, 9, EOS, PAD]])
  mask = jnp.array([[0, 0, 1, 1, 1, 1, 1, 1, 0]], bool)
  rt, rm_mask = ppo_loop.right_pad(toks, mask)
  np.testing.assert_array_equal(np.asarray(rt), [[5, 6, 7, 8, 9, EOS, PAD, PAD, PAD]])
  np.testing.assert_array_equal(np.asarray(rm_mask), [[1, 1, 1, 1, 1, 1, 0, 0, 0]])
  score = jax.jit(lambda t, m: rm.score(t, m))
  direct = score(jnp.array([[5, 6, 7, 8, 9, EOS]]), jnp.ones((1, 6), bool))
  np.testing.assert_allclose(np.asarray(score(rt, rm_mask)), np.asarray(direct), atol=1e-5)


def _config(arg="tiny", **kw):
  c = runpy.run_path(os.path.join(os.path.dirname(__file__), "..", "..", "configs", "ppo.py"))["get_config"](arg)
  c.update(dict(dict(iterations=3, prompts_per_iteration=4, max_new_tokens=8, epochs=1, minibatches=1,
                     min_prompt_bucket=8, max_prompt_len=16, normalize_reward=False), **kw))
  c.policy_optimizer.lr = 1e-3
  c.critic_optimizer.lr = 1e-3
  return c


def _trainer(config):
  mesh = make_mesh({"data": 1}, jax.devices()[:1])
  policy_def, policy = split_params(Transformer(CFG, rngs=nnx.Rngs(0)))
  rm_def, rm = split_params(ScalarModel(CFG, rngs=nnx.Rngs(1)))
  gae = config.estimator == "gae"
  return ppo_loop.PPOTrainer(config, mesh, policy_def=policy_def, policy_params=policy,
                             critic_def=rm_def if gae else None, critic_params=rm if gae else None,
                             rm_def=rm_def, rm_params=rm, eos_id=EOS, pad_id=PAD), policy


PROMPTS = [[2, 3, 4], [5, 6, 7, 8, 9], [10, 11], [12, 13, 14, 15]]


def test_gae_iterations_warmup_parity_and_adaptive_beta():
  config = _config(samples_per_prompt=2, value_warmup_iterations=1)
  config.kl.adaptive = True
  config.kl.target = 1e3  # any KL of these runs is far below target: beta falls by the clipped 20%
  config.kl.horizon = 100
  tr, policy0 = _trainer(config)
  leaves0 = [np.array(x) for x in jax.tree.leaves(policy0)]

  m0, host = tr.iteration(PROMPTS, 0)
  assert m0["policy_updated"] == 0.0 and m0["beta"] == pytest.approx(0.1)
  assert tr.beta == pytest.approx(0.1)  # the controller waits for policy updates
  assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(leaves0, jax.tree.leaves(tr.state.policy.params)))
  assert m0["logp_mismatch"] <= 1e-5
  # The reference is a copy: the donated learn state never deletes it, and it equals the start.
  assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(leaves0, jax.tree.leaves(tr.ref_params)))
  assert host["tokens"].shape == (8, 8) and host["rm_score"].shape == (8,)
  assert abs(m0["kl"]) < 1e-5  # policy == reference before any policy update

  m1, _ = tr.iteration(PROMPTS, 1)
  assert m1["policy_updated"] == 1.0
  assert m1["learn/first_ratio"] == pytest.approx(1.0, abs=1e-5)
  assert m1["logp_mismatch"] <= 1e-5
  # Iteration 1 sampled before its update (KL 0): beta *= 1 - 0.2 * 8 rows / 100, once per update.
  assert abs(m1["kl"]) < 1e-5 and tr.beta == pytest.approx(0.1 * (1 - 0.016))
  m2, _ = tr.iteration(PROMPTS, 2)
  assert abs(m2["kl"]) > 1e-4 and m2["beta"] == pytest.approx(0.1 * (1 - 0.016))
  assert tr.beta == pytest.approx(0.1 * (1 - 0.016) ** 2)
  for k in ("rm_score", "kl", "entropy", "response_length", "eos_rate", "explained_variance",
            "learn/clipfrac", "learn/approx_kl", "learn/value_loss", "time/rollout_s", "time/learn_s"):
    assert np.isfinite(m2[k]), k


def test_rloo_runs_in_the_same_loop():
  config = _config("rloo", prompts_per_iteration=2)
  tr, _ = _trainer(config)
  assert tr.state.critic is None
  m, host = tr.iteration(PROMPTS[:2], 0)
  assert m["policy_updated"] == 1.0 and "learn/value_loss" not in m
  assert host["rm_score"].shape == (8,)  # 2 prompts x 4 samples


def test_config_errors_name_the_field():
  with pytest.raises(ValueError, match="samples_per_prompt"):
    _trainer(_config("rloo", samples_per_prompt=1))
  with pytest.raises(ValueError, match="minibatches"):
    _trainer(_config(minibatches=3))
  with pytest.raises(ValueError, match="value_warmup_iterations"):
    _trainer(_config("rloo", value_warmup_iterations=1))
