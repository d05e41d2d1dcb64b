"""PPO iterations: rollout -> score -> reference log-probs -> values -> advantages -> learn.

One iteration samples responses to a batch of prompts with the current policy (the jitted KV-cache
sampler), then one jitted `experience` function recomputes the policy's log-probs, the frozen
reference's log-probs, the critic's values and the frozen RM's scores on the same rows, and turns
them into the learner's batch (per-token KL-penalised rewards, GAE or RLOO advantages). The learn
step (`xlra.train.ppo`) then makes several epochs over it. The old log-probs the learner clips
against are the recomputed ones (so the first ratio is exactly 1); their largest gap to the
sampler's log-probs is logged as `logp_mismatch`, the check that both use the same distribution.

Row layout: [left-padded prompt | response], the response right-padded after its EOS. The RM scores
the same row re-packed to right padding (its training layout), at the last real token.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from xlra.parallel import mesh as mesh_lib
from xlra.sampling.sampler import SampleOutput, Sampler, SamplingConfig, bucket, left_pad
from xlra.train import ppo
from xlra.train.optim import make_optimizer
from xlra.train.state import make_state
from xlra.train.update import jit_train_step

ESTIMATORS = ("gae", "rloo")
REWARD_STATS = ("rm", "policy")  # whose outputs the reward is normalised on (config.reward_stats)


@dataclasses.dataclass(frozen=True)
class RewardConfig:
  """How rollouts become rewards and advantages (static: part of the compiled experience fn)."""

  temperature: float = 1.0
  missing_eos_penalty: float | None = -1.0
  rm_mean: float | None = None  # the RM's stored statistics; None: no normalisation
  rm_std: float | None = None
  whiten_rewards: bool = False
  whiten_advantages: bool = True
  gamma: float = 1.0
  lam: float = 0.95
  estimator: str = "gae"
  rloo_k: int = 2

  def __post_init__(self):
    if self.estimator not in ESTIMATORS:
      raise ValueError(f"config.estimator={self.estimator!r}: choose one of {ESTIMATORS}")


def right_pad(tokens: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Roll each [pads | prompt | response | pads] row left by its leading pads: right-padded rows."""
  l = tokens.shape[1]
  lead = jnp.argmax(mask, axis=1)  # first real column
  idx = (jnp.arange(l)[None, :] + lead[:, None]) % l
  return jnp.take_along_axis(tokens, idx, axis=1), jnp.take_along_axis(mask, idx, axis=1)


def assemble(prompt_tokens: np.ndarray, prompt_mask: np.ndarray, out: SampleOutput) -> dict[str, np.ndarray]:
  """Host rollout rows from left-padded prompts [B, P] (one row per sample) and the sampler's output."""
  r = out.tokens.shape[1]
  rmask = np.arange(r)[None, :] < out.lengths[:, None]
  return {"tokens": np.concatenate([prompt_tokens, out.tokens], 1).astype(np.int32),
          "mask": np.concatenate([prompt_mask, rmask], 1),
          "response_mask": rmask,
          "eos_found": out.stopped.astype(bool),
          "sampler_logp": out.logprobs.astype(np.float32)}


def make_experience(policy_def: nnx.GraphDef, critic_def: nnx.GraphDef | None, rm_def: nnx.GraphDef,
                    rc: RewardConfig) -> Callable:
  """`experience(policy, ref, critic, rm, rollout, beta) -> (learn_batch, stats, per_row)`, pure.

  policy and ref share `policy_def`; critic is None for RLOO. stats are batch means (see the
  module docstring); per_row holds the raw RM score and the sequence KL of every row.
  """

  def experience(policy, ref, critic, rm, rollout, beta):
    tokens, mask, rmask = rollout["tokens"], rollout["mask"], rollout["response_mask"]
    r = rmask.shape[1]
    fmask = rmask.astype(jnp.float32)
    logits = ppo.policy_response_logits(nnx.merge(policy_def, policy), tokens, mask, r)
    logp = ppo.token_logprobs(logits, tokens[:, -r:], rc.temperature)
    ref_logp = ppo.response_logprobs(nnx.merge(policy_def, ref), tokens, mask, r, rc.temperature)
    raw = nnx.merge(rm_def, rm).score(*right_pad(tokens, mask))
    scores = ppo.final_scores(raw, rollout["eos_found"], rc.missing_eos_penalty, rc.rm_mean, rc.rm_std)
    rewards, kl = ppo.kl_penalty_rewards(scores, logp, ref_logp, rmask, beta)
    if rc.whiten_rewards:
      rewards = ppo.whiten(rewards, rmask, shift_mean=False)
    batch = {"tokens": tokens, "mask": mask, "response_mask": rmask, "old_logp": jnp.where(rmask, logp, 0.0)}
    seq_kl = jnp.sum(kl, axis=1)
    stats = {}
    if rc.estimator == "gae":
      values = ppo.critic_values(nnx.merge(critic_def, critic), tokens, mask, r) * fmask
      adv, returns = ppo.gae(rewards, values, rmask, rc.gamma, rc.lam)
      batch.update(old_values=values, returns=returns)
      stats.update(explained_variance=ppo.explained_variance(values, returns, rmask),
                   value_mean=ppo.masked_mean(values, rmask), return_mean=ppo.masked_mean(returns, rmask))
    else:
      adv = ppo.rloo_advantages(jnp.sum(rewards * fmask, axis=1), rc.rloo_k)[:, None] * fmask
    if rc.whiten_advantages:
      adv = ppo.whiten(adv, rmask)
    batch["advantages"] = adv
    n_tokens = jnp.sum(fmask, axis=1)
    stats.update(
        rm_score=jnp.mean(raw), score=jnp.mean(scores), kl=jnp.mean(seq_kl),
        non_score_reward=jnp.mean(-beta * seq_kl), entropy=ppo.masked_mean(ppo.entropy(logits, rc.temperature), rmask),
        response_length=jnp.mean(n_tokens), eos_rate=jnp.mean(rollout["eos_found"].astype(jnp.float32)),
        logp_mismatch=jnp.max(jnp.where(rmask, jnp.abs(logp - rollout["sampler_logp"]), 0.0)),
        advantage_std=jnp.sqrt(ppo.masked_var(adv, rmask)))
    return batch, stats, {"rm_score": raw, "kl": seq_kl}

  return experience


def reward_config(config: ml_collections.ConfigDict, rm_stats: dict | None = None) -> RewardConfig:
  """RewardConfig from the PPO config; rm_stats ({'mean', 'std'}) is what the RM stored."""
  mean = std = None
  if config.normalize_reward:
    if not rm_stats:
      raise ValueError("config.normalize_reward=True but the reward model has no stored mean/std; "
                       "set config.normalize_reward=False or retrain the RM")
    mean, std = float(rm_stats["mean"]), float(rm_stats["std"])
  return RewardConfig(temperature=config.temperature, missing_eos_penalty=config.missing_eos_penalty,
                      rm_mean=mean, rm_std=std, whiten_rewards=config.whiten_rewards,
                      whiten_advantages=config.whiten_advantages, gamma=config.gamma, lam=config.lam,
                      estimator=config.estimator, rloo_k=config.samples_per_prompt)


def learn_config(config: ml_collections.ConfigDict) -> ppo.LearnConfig:
  return ppo.LearnConfig(temperature=config.temperature, clip=config.clip, vf_clip=config.vf_clip,
                         vf_coef=config.vf_coef, ent_coef=config.ent_coef, epochs=config.epochs,
                         minibatches=config.minibatches)


def check_config(config: ml_collections.ConfigDict, mesh: Mesh) -> None:
  """Batch arithmetic and ranges, before anything compiles; messages name the field."""
  for field in ("iterations", "prompts_per_iteration", "samples_per_prompt", "minibatches", "epochs",
                "max_new_tokens", "keep_checkpoints"):
    if getattr(config, field) < 1:
      raise ValueError(f"config.{field}={getattr(config, field)} must be >= 1")
  for field in ("eval_prompts", "checkpoint_every", "value_warmup_iterations"):
    if getattr(config, field) < 0:
      raise ValueError(f"config.{field}={getattr(config, field)} must be >= 0 (0: none)")
  if config.eval_prompts and config.eval_every < 1:
    raise ValueError(f"config.eval_every={config.eval_every} must be >= 1 (iterations between evaluations) "
                     f"while config.eval_prompts={config.eval_prompts}; set eval_prompts=0 for none")
  if config.estimator not in ESTIMATORS:
    raise ValueError(f"config.estimator={config.estimator!r}: choose one of {ESTIMATORS}")
  if config.reward_stats not in REWARD_STATS:
    raise ValueError(f"config.reward_stats={config.reward_stats!r}: choose one of {REWARD_STATS}")
  rows = config.prompts_per_iteration * config.samples_per_prompt
  if config.estimator == "rloo" and config.samples_per_prompt < 2:
    raise ValueError(f"config.samples_per_prompt={config.samples_per_prompt}: RLOO needs at least 2")
  if rows % config.minibatches:
    raise ValueError(f"config.prompts_per_iteration * samples_per_prompt = {rows} rows must be divisible by "
                     f"config.minibatches={config.minibatches}")
  mesh_lib.check_batch_size(rows // config.minibatches, mesh, "rows per minibatch (prompts_per_iteration * "
                            "samples_per_prompt / minibatches)")
  if config.temperature <= 0:
    raise ValueError(f"config.temperature={config.temperature}: PPO samples, so it must be > 0")
  if config.kl.adaptive and (config.kl.target <= 0 or config.kl.horizon <= 0):
    raise ValueError("config.kl.target and config.kl.horizon must be > 0 for the adaptive controller")
  if config.estimator == "rloo" and config.value_warmup_iterations:
    raise ValueError("config.value_warmup_iterations must be 0 with estimator='rloo' (there is no critic)")


class PPOTrainer:
  """The four roles and the compiled functions of PPO; `iteration(prompts, index)` runs one iteration.

  policy_params / critic_params are copied (the learn step donates its state; the frozen
  reference must not alias the policy). `critic_def` None with estimator 'rloo'.
  """

  def __init__(self, config: ml_collections.ConfigDict, mesh: Mesh, *, policy_def: nnx.GraphDef,
               policy_params: nnx.State, critic_def: nnx.GraphDef | None, critic_params: nnx.State | None,
               rm_def: nnx.GraphDef, rm_params: nnx.State, eos_id: int, pad_id: int,
               rm_stats: dict | None = None, rules=mesh_lib.RULES):
    check_config(config, mesh)
    self.config, self.mesh, self.rules = config, mesh, rules
    self.rc, self.hp = reward_config(config, rm_stats), learn_config(config)
    use_critic = config.estimator == "gae"
    if use_critic and critic_def is None:
      raise ValueError("estimator 'gae' needs a critic (config.critic_init 'rm' or 'sft')")
    critic_def = critic_def if use_critic else None
    self.sampling = SamplingConfig(max_new_tokens=config.max_new_tokens, eos_id=eos_id, pad_id=pad_id,
                                   temperature=config.temperature, min_prompt_bucket=config.min_prompt_bucket,
                                   max_prompt_len=config.max_prompt_len)
    self.sampler = Sampler(policy_def, self.sampling, mesh, rules)
    place = lambda p: jax.device_put(jax.tree.map(jnp.copy, p), mesh_lib.tree_shardings(p, mesh, rules))
    self.ref_params, self.rm_params = place(policy_params), place(rm_params)
    updates = config.epochs * config.minibatches
    per_iter = "config.epochs x config.minibatches updates per iteration"
    policy_tx, _ = make_optimizer(config.policy_optimizer, max(config.iterations - config.value_warmup_iterations, 1)
                                  * updates, "config.policy_optimizer",
                                  f"config.iterations - config.value_warmup_iterations, {per_iter}")
    critic_tx = make_optimizer(config.critic_optimizer, config.iterations * updates, "config.critic_optimizer",
                               f"config.iterations, {per_iter}")[0] if use_critic else None
    self.state = ppo.PPOState(
        policy=make_state(jax.tree.map(jnp.copy, policy_params), policy_tx, mesh, config.seed, rules),
        critic=make_state(jax.tree.map(jnp.copy, critic_params), critic_tx, mesh, config.seed + 1, rules)
        if use_critic else None)
    self.beta = float(config.kl.beta)
    self._policy_def, self._critic_def, self._rm_def = policy_def, critic_def, rm_def
    self._txs = (policy_tx, critic_tx)
    self._experience = make_experience(policy_def, critic_def, rm_def, self.rc)
    self._jitted_experience = None
    self._learn: dict[bool, Callable] = {}

  def use_reward_stats(self, stats: dict) -> None:
    """Normalise rewards with these {'mean', 'std'} instead of the RM's stored ones (before iterating)."""
    self.rc = dataclasses.replace(self.rc, rm_mean=float(stats["mean"]), rm_std=float(stats["std"]))
    self._experience = make_experience(self._policy_def, self._critic_def, self._rm_def, self.rc)
    self._jitted_experience = None

  # -- compiled pieces, built on first use -----------------------------------------------------
  def _experience_fn(self, rollout):
    if self._jitted_experience is None:
      rep = NamedSharding(self.mesh, P())
      sh = lambda p: mesh_lib.tree_shardings(p, self.mesh, self.rules)
      critic = None if self.state.critic is None else self.state.critic.params
      args = (self.state.policy.params, self.ref_params, critic, self.rm_params, rollout, jnp.float32(0))
      batch, _, per_row = jax.eval_shape(self._experience, *args)
      rows = lambda t: mesh_lib.batch_shardings(t, self.mesh)
      self._jitted_experience = jax.jit(
          self._experience, in_shardings=(*map(sh, args[:4]), rows(rollout), rep),
          out_shardings=(rows(batch), rep, rows(per_row)))
    return self._jitted_experience

  def _learn_fn(self, train_policy: bool, batch):
    if train_policy not in self._learn:
      learn = ppo.make_learn_step(self._policy_def, self._critic_def, *self._txs, self.hp, train_policy=train_policy,
                                  mesh=self.mesh)
      self._learn[train_policy] = jit_train_step(
          learn, ppo.ppo_state_shardings(self.state, self.mesh, self.rules), batch, self.mesh)
    return self._learn[train_policy]

  # -- one iteration ---------------------------------------------------------------------------
  def rollout(self, prompts: Sequence[Sequence[int]], rng: jax.Array, prompt_ids: Sequence[int] | None = None
              ) -> tuple[dict[str, np.ndarray], SampleOutput]:
    """Sample config.samples_per_prompt responses per prompt with the current policy; host rows."""
    n = self.config.samples_per_prompt
    out = self.sampler(self.state.policy.params, prompts, rng, num_samples=n, prompt_ids=prompt_ids)
    cfg = self.sampling  # the sampler's own prompt bucketing, so the widths match its rows
    plen = min(bucket(max(len(p) for p in prompts), cfg.min_prompt_bucket), cfg.max_prompt_len)
    ptoks, pmask = left_pad([p for p in prompts for _ in range(n)], plen, cfg.pad_id)
    return assemble(ptoks, pmask, out), out

  def iteration(self, prompts: Sequence[Sequence[int]], index: int,
                prompt_ids: Sequence[int] | None = None) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Rollout, experience and learning for iteration `index` (0-based). Returns the metrics and the
    host rows (response tokens, lengths, raw RM score and KL per row) for gold-quality scoring."""
    cfg = self.config
    key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), index)
    t0 = time.perf_counter()
    rows, out = self.rollout(prompts, jax.random.fold_in(key, 0), prompt_ids)
    rollout = mesh_lib.shard_batch(rows, self.mesh)
    critic = None if self.state.critic is None else self.state.critic.params
    batch, stats, per_row = self._experience_fn(rollout)(
        self.state.policy.params, self.ref_params, critic, self.rm_params, rollout, jnp.float32(self.beta))
    stats = {k: float(v) for k, v in stats.items()}
    t1 = time.perf_counter()
    train_policy = index >= cfg.value_warmup_iterations
    self.state, learn_stats = self._learn_fn(train_policy, batch)(self.state, batch, jax.random.fold_in(key, 1))
    learn_stats = {f"learn/{k}": float(v) for k, v in learn_stats.items()}
    t2 = time.perf_counter()
    metrics = {"iteration": index + 1, "beta": self.beta, **stats, **learn_stats,
               "time/rollout_s": t1 - t0, "time/learn_s": t2 - t1, "policy_updated": float(train_policy)}
    if cfg.kl.adaptive and train_policy:
      self.beta = ppo.adaptive_kl_update(self.beta, stats["kl"], len(out.lengths), cfg.kl.target, cfg.kl.horizon)
    host = {"tokens": out.tokens, "lengths": out.lengths, "stopped": out.stopped,
            **{k: np.asarray(v) for k, v in per_row.items()}}
    return metrics, host
