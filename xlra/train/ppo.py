"""PPO with a KL penalty (and RLOO): the pure math.

Follows Ziegler et al. (2019) and Huang et al., "The N Implementation Details of RLHF with PPO":
per-token reward `-beta * (logp - logp_ref)` (the k1 KL estimator) with the reward model's score
added at the last real response token; GAE with gamma 1, lambda 0.95; advantages whitened with a
mean shift, rewards optionally whitened without one (biased variance throughout); clipped policy and
value losses; a fixed or adaptive KL coefficient. RLOO (Ahmadian et al., 2024) replaces the critic by
the mean return of the other k-1 samples of the same prompt.

Every array here is over response tokens: [B, R] with a right-padded `mask` (True at real tokens
of the response, a prefix of each row). Everything is float32, jit-friendly, and has no state.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh

from xlra.parallel import mesh as mesh_lib
from xlra.train.state import TrainState, state_shardings
from xlra.train.update import split_microbatches


def masked_mean(x: jax.Array, mask: jax.Array, axis=None) -> jax.Array:
  m = mask.astype(jnp.float32)
  return jnp.sum(x * m, axis=axis) / jnp.maximum(jnp.sum(m, axis=axis), 1.0)


def masked_var(x: jax.Array, mask: jax.Array) -> jax.Array:
  """Biased (population) variance over the masked entries, as the reference implementations use."""
  mean = masked_mean(x, mask)
  return masked_mean(jnp.square(x - mean), mask)


def whiten(x: jax.Array, mask: jax.Array, shift_mean: bool = True, eps: float = 1e-8) -> jax.Array:
  """Zero-mean (optional), unit-variance over the masked entries; zeros at padding.

  `shift_mean=False` keeps the mean (used for rewards: shifting them would change which sequences
  the KL penalty favours); advantages are whitened with the shift.
  """
  mean, var = masked_mean(x, mask), masked_var(x, mask)
  out = (x - mean) * jax.lax.rsqrt(var + eps)
  if not shift_mean:
    out = out + mean
  return jnp.where(mask, out, 0.0)


def last_index(mask: jax.Array) -> jax.Array:
  """Index [B] of the last real token of each right-padded row (0 for an empty row)."""
  return jnp.maximum(jnp.sum(mask.astype(jnp.int32), axis=-1) - 1, 0)


def final_scores(scores: jax.Array, eos_found: jax.Array, missing_eos_penalty: float | None,
                 mean: float | None = None, std: float | None = None) -> jax.Array:
  """Scores [B] after the optional normalisation with the RM's stored statistics and the EOS rule.

  A response that ran out of budget without EOS would otherwise be scored mid-sentence; its score
  is replaced by `missing_eos_penalty` (None keeps the score). The penalty is in normalised units
  when normalisation is on.
  """
  scores = scores.astype(jnp.float32)
  if mean is not None:
    scores = (scores - mean) / (std if std else 1.0)
  if missing_eos_penalty is not None:
    scores = jnp.where(eos_found, scores, jnp.float32(missing_eos_penalty))
  return scores


def kl_penalty_rewards(scores: jax.Array, logp: jax.Array, ref_logp: jax.Array, mask: jax.Array,
                       beta: jax.Array | float) -> tuple[jax.Array, jax.Array]:
  """Per-token rewards [B, R]: `-beta * (logp - ref_logp)`, plus the score at the last real token.

  Returns (rewards, kl) with kl the per-token k1 estimate (zeros at padding). An empty response
  (no real token) gets no reward at all.
  """
  kl = jnp.where(mask, logp - ref_logp, 0.0).astype(jnp.float32)
  rewards = -beta * kl
  last = jax.nn.one_hot(last_index(mask), mask.shape[-1], dtype=jnp.float32)
  has_any = jnp.any(mask, axis=-1, keepdims=True)
  rewards = rewards + jnp.where(has_any, last * scores[:, None], 0.0)
  return rewards, kl


def gae(rewards: jax.Array, values: jax.Array, mask: jax.Array, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[jax.Array, jax.Array]:
  """Generalised advantage estimation over the response, by a reverse scan over time.

  values[:, t] is V of the state before response token t. Beyond the last real token the episode has
  ended: V = 0 there and nothing flows back. Returns (advantages, returns = advantages + values).
  """
  m = mask.astype(jnp.float32)
  v = values.astype(jnp.float32) * m
  next_v = jnp.concatenate([v[:, 1:], jnp.zeros_like(v[:, :1])], axis=1)
  deltas = (rewards + gamma * next_v - v) * m

  def back(carry, x):
    delta, mt = x
    adv = (delta + gamma * lam * carry) * mt
    return adv, adv

  _, adv_t = jax.lax.scan(back, jnp.zeros_like(deltas[:, 0]), (deltas.T, m.T), reverse=True)
  adv = adv_t.T
  return adv, (adv + v) * m


def rloo_advantages(seq_rewards: jax.Array, k: int) -> jax.Array:
  """REINFORCE leave-one-out: reward minus the mean reward of the other k-1 samples of its prompt.

  Rows are prompt-major: row i*k + j is sample j of prompt i. Returns [B].
  """
  if k < 2:
    raise ValueError(f"RLOO needs at least 2 samples per prompt (config.rloo_k={k})")
  b = seq_rewards.shape[0]
  if b % k:
    raise ValueError(f"RLOO batch of {b} rows is not a multiple of rloo_k={k}")
  r = seq_rewards.reshape(b // k, k).astype(jnp.float32)
  baseline = (jnp.sum(r, axis=1, keepdims=True) - r) / (k - 1)
  return (r - baseline).reshape(b)


def token_logprobs(logits: jax.Array, tokens: jax.Array, temperature: float = 1.0) -> jax.Array:
  """log p(token) under softmax(logits / T), float32. logits [..., V], tokens [...]."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32) / temperature, axis=-1)
  return jnp.take_along_axis(logp, tokens[..., None].astype(jnp.int32), axis=-1)[..., 0]


def entropy(logits: jax.Array, temperature: float = 1.0) -> jax.Array:
  """Entropy [...] of softmax(logits / T), float32."""
  z = logits.astype(jnp.float32) / temperature
  logp = jax.nn.log_softmax(z, axis=-1)
  return -jnp.sum(jnp.exp(logp) * logp, axis=-1)


def policy_loss(logp: jax.Array, old_logp: jax.Array, advantages: jax.Array, mask: jax.Array,
                clip: float = 0.2) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Clipped surrogate `mean(max(-A r, -A clip(r, 1-c, 1+c)))` over real tokens, with diagnostics."""
  log_ratio = (logp - old_logp).astype(jnp.float32)
  ratio = jnp.exp(log_ratio)
  pg1 = -advantages * ratio
  pg2 = -advantages * jnp.clip(ratio, 1.0 - clip, 1.0 + clip)
  loss = masked_mean(jnp.maximum(pg1, pg2), mask)
  stats = {
      "clipfrac": masked_mean((pg2 > pg1).astype(jnp.float32), mask),
      "approx_kl": masked_mean(0.5 * jnp.square(log_ratio), mask),
      "ratio": masked_mean(ratio, mask),
  }
  return loss, stats


def value_loss(values: jax.Array, old_values: jax.Array, returns: jax.Array, mask: jax.Array,
               clip: float = 0.2) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Clipped value loss `0.5 mean(max((v - R)^2, (v_old + clip(v - v_old, +-c) - R)^2))`."""
  clipped = old_values + jnp.clip(values - old_values, -clip, clip)
  l1, l2 = jnp.square(values - returns), jnp.square(clipped - returns)
  loss = 0.5 * masked_mean(jnp.maximum(l1, l2), mask)
  return loss, {"vf_clipfrac": masked_mean((l2 > l1).astype(jnp.float32), mask)}


def explained_variance(values: jax.Array, returns: jax.Array, mask: jax.Array) -> jax.Array:
  """1 - Var(R - V) / Var(R) over real tokens: 1 is a perfect critic, 0 a constant one."""
  var_r = masked_var(returns, mask)
  return 1.0 - masked_var(returns - values, mask) / jnp.maximum(var_r, 1e-8)


def adaptive_kl_update(beta: float, kl: float, n_steps: int, target: float, horizon: float) -> float:
  """Ziegler et al.'s proportional controller: beta *= 1 + clip(KL/target - 1, +-0.2) * n / horizon.

  kl is the mean per-sequence KL of the last batch, n_steps the number of episodes in it.
  """
  error = min(max(kl / target - 1.0, -0.2), 0.2)
  return float(beta * (1.0 + error * n_steps / horizon))


# ----------------------------------------------------------------------------------------------
# The learn step. A rollout row is [left-padded prompt | response], length L = P + R; the response
# occupies the last R columns and its tokens are predicted by the hidden states one column earlier.

@flax.struct.dataclass
class PPOState:
  """Everything the learner updates: the policy and (for GAE) the critic, each a TrainState.

  RLOO needs no critic: `critic` is None then.
  """

  policy: TrainState
  critic: TrainState | None


@dataclasses.dataclass(frozen=True)
class LearnConfig:
  """Static hyper-parameters of the learn step (each distinct value compiles its own program)."""

  temperature: float = 1.0  # the sampling temperature: log-probs are recomputed at it
  clip: float = 0.2
  vf_clip: float = 0.2
  vf_coef: float = 0.1
  ent_coef: float = 0.0
  epochs: int = 4
  minibatches: int = 1


def policy_response_logits(policy: nnx.Module, tokens: jax.Array, mask: jax.Array, r: int) -> jax.Array:
  """float32 logits [B, R, V] predicting the last R tokens (only those columns meet the vocab matmul)."""
  hidden, _ = policy.hidden(tokens, None, mask)
  l = tokens.shape[1]
  return policy.logits(hidden[:, l - r - 1:l - 1])


def response_logprobs(policy: nnx.Module, tokens: jax.Array, mask: jax.Array, r: int,
                      temperature: float) -> jax.Array:
  """log p(response token) [B, R] at the sampling temperature: the learner's recomputation of what
  the sampler reported. Padding columns hold garbage; callers mask them."""
  logits = policy_response_logits(policy, tokens, mask, r)
  return token_logprobs(logits, tokens[:, -r:], temperature)


def critic_values(critic: nnx.Module, tokens: jax.Array, mask: jax.Array, r: int) -> jax.Array:
  """V [B, R] of the state before each response token (the column before it)."""
  l = tokens.shape[1]
  return critic.values(tokens, None, mask)[:, l - r - 1:l - 1]


def _update(ts: TrainState, grads, tx: optax.GradientTransformation) -> TrainState:
  updates, opt_state = tx.update(grads, ts.opt_state, ts.params)
  return ts.replace(params=optax.apply_updates(ts.params, updates), opt_state=opt_state)


def make_learn_step(policy_def: nnx.GraphDef, critic_def: nnx.GraphDef | None,
                    policy_tx: optax.GradientTransformation, critic_tx: optax.GradientTransformation | None,
                    hp: LearnConfig, *, train_policy: bool = True, mesh: Mesh | None = None) -> Callable:
  """The pure `learn(state, batch, rng) -> (state, metrics)`: hp.epochs passes over hp.minibatches
  shuffled minibatches of one rollout batch, one optimizer update of each trained model per
  minibatch. `train_policy=False` is the value-only warm-up (the policy and its optimizer pass
  through untouched). Jit it with `xlra.train.update.jit_train_step(learn, ppo_state_shardings(...),
  batch, mesh)`: pinned shardings, donated state, like every other step; pass the same `mesh` here
  so each minibatch stays split over the batch axes.

  batch: tokens [B, L] int32, mask [B, L] bool, response_mask [B, R] bool, old_logp [B, R],
  advantages [B, R], and with a critic old_values [B, R] and returns [B, R].
  """
  use_critic = critic_def is not None
  if not (train_policy or use_critic):
    raise ValueError("nothing to train: value warm-up needs a critic (RLOO has none)")

  def loss_fn(trainable, mb):
    rmask = mb["response_mask"]
    r = rmask.shape[1]
    total, stats = jnp.float32(0.0), {}
    if train_policy:
      policy = nnx.merge(policy_def, trainable["policy"])
      logits = policy_response_logits(policy, mb["tokens"], mb["mask"], r)
      logp = token_logprobs(logits, mb["tokens"][:, -r:], hp.temperature)
      pg, pst = policy_loss(logp, mb["old_logp"], mb["advantages"], rmask, hp.clip)
      ent = masked_mean(entropy(logits, hp.temperature), rmask)
      total = total + pg - hp.ent_coef * ent
      stats.update(pst, policy_loss=pg, entropy=ent)
    if use_critic:
      critic = nnx.merge(critic_def, trainable["critic"])
      v = critic_values(critic, mb["tokens"], mb["mask"], r)
      vf, vst = value_loss(v, mb["old_values"], mb["returns"], rmask, hp.vf_clip)
      total = total + hp.vf_coef * vf
      stats.update(vst, value_loss=vf)
    return total, stats

  def minibatch_step(state: PPOState, mb):
    trainable = {}
    if train_policy:
      trainable["policy"] = state.policy.params
    if use_critic:
      trainable["critic"] = state.critic.params
    (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable, mb)
    stats["loss"] = loss
    if train_policy:
      stats["policy_grad_norm"] = optax.tree.norm(grads["policy"])
      state = state.replace(policy=_update(state.policy, grads["policy"], policy_tx))
    if use_critic:
      stats["critic_grad_norm"] = optax.tree.norm(grads["critic"])
      state = state.replace(critic=_update(state.critic, grads["critic"], critic_tx))
    return state, stats

  def learn(state: PPOState, batch: dict[str, jax.Array], rng: jax.Array):
    b = batch["tokens"].shape[0]
    m = hp.minibatches
    if b % m:
      raise ValueError(f"rollout batch {b} is not divisible by minibatches={m}")

    def epoch(state, key):
      # Minibatches keep the batch's sharding over the mesh (`mesh`): a gather by a random
      # permutation loses it, and XLA then ran every minibatch whole on every device.
      perm = jax.random.permutation(key, b)
      shuffled = split_microbatches(jax.tree.map(lambda x: x[perm], batch), m, mesh)
      return jax.lax.scan(minibatch_step, state, shuffled)

    state, stats = jax.lax.scan(epoch, state, jax.random.split(rng, hp.epochs))
    metrics = jax.tree.map(jnp.mean, stats)
    if train_policy:  # the first minibatch of the first epoch is on-policy: its ratio must be 1
      metrics["first_ratio"] = stats["ratio"][0, 0]
    return state, metrics

  return learn


def ppo_state_shardings(state: PPOState, mesh: Mesh, rules=mesh_lib.RULES) -> PPOState:
  return PPOState(policy=state_shardings(state.policy, mesh, rules),
                  critic=None if state.critic is None else state_shardings(state.critic, mesh, rules))

