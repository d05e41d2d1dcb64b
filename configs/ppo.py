"""PPO (or RLOO) of a target-language SFT policy against a (possibly other-language) reward model.

    xlra ppo --config=configs/ppo.py:tiny --workdir=/tmp/xlra_ppo \
      --config.policy_checkpoint=WORK/sft_de --config.rm_checkpoint=WORK/rm_en --config.lang=de

Presets (ARG): `tiny` (the testbed, a few minutes on 2 CPU cores), `rloo` (tiny with the RLOO
estimator), `paper` (the paper's PPO: beta 0.1 fixed, critic trained first, larger batches).
policy_checkpoint / rm_checkpoint are workdirs of `xlra sft` / `xlra rm` runs (their best or
latest checkpoint is used). Details that decide whether PPO works follow Huang et al., "The N
Implementation Details of RLHF with PPO" (see DESIGN.md section 5).
"""

from __future__ import annotations

import os
import runpy

import ml_collections

from xlra.train.optim import default_optimizer_config


def testbed_data(arg: str) -> ml_collections.ConfigDict:
  """The testbed data of the SFT/RM presets (configs/sft.py; configs/ is not a package)."""
  sft = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "sft.py"))
  return sft["testbed_data"](arg)


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
  if arg not in ("tiny", "rloo", "paper"):
    raise ValueError(f"configs/ppo.py:{arg}: choose tiny, rloo or paper")
  c = ml_collections.ConfigDict()
  # Roles. The reference is the policy's own starting checkpoint; the RM may be any language's.
  c.policy_checkpoint = ""  # workdir of the target-language SFT run
  c.rm_checkpoint = ""  # workdir of the reward-model run
  c.critic_init = "rm"  # rm: the critic starts as the RM; sft: the SFT backbone with a fresh head
  # Data: prompts of this language and task ("" = every task), from prompts_jsonl or, when it is empty,
  # the testbed RL split. The tokenizer is the one saved beside the policy; testbed data must be that of
  # the SFT run (same tokenizer): data_dir names the workdir holding it.
  c.lang = "de"
  c.task = ""
  c.prompts_jsonl = ""  # real RL prompts: JSONL {id, lang, prompt[, task]}, held out from the SFT/RM data
  c.eval_prompts_jsonl = ""  # evaluation prompts, same schema; "" = the testbed eval split (none on real prompts)
  c.data = testbed_data("tiny")
  c.data_dir = ""  # a workdir whose data/ to use; "" = WORKDIR (generated there from config.data)
  c.eval_prompts = 64  # at most this many evaluation prompts for the RM-score / gold-q / win-rate curve (0: none)
  c.eval_every = 5  # iterations between evaluations (and at the end)
  # Rollouts.
  c.iterations = 40
  c.prompts_per_iteration = 16
  c.samples_per_prompt = 1  # RLOO's k (>= 2); GAE may also draw several per prompt
  c.max_new_tokens = 48
  c.temperature = 0.7  # log-probs of the learner are recomputed at this temperature
  c.min_prompt_bucket = 32
  c.max_prompt_len = 128  # testbed prompts are <= ~115 tokens
  # Rewards.
  c.estimator = "gae"  # gae | rloo
  c.kl = ml_collections.ConfigDict({"beta": 0.1, "adaptive": False, "target": 6.0, "horizon": 10_000})
  # Replaces the score of a response without EOS (None keeps it). It must sit below the scores the
  # policy gets: a cross-lingual RM scores target-language outputs several std below its own references.
  c.missing_eos_penalty = -5.0
  c.normalize_reward = True  # (score - mean) / std, with the statistics of reward_stats:
  # "policy": the RM's scores on the starting policy's own samples of the RL prompts (measured once, kept in
  # WORKDIR/reward_stats.json); "rm": on the RM's reference outputs, in its own language. A cross-lingual RM
  # scores the target language several std away from its own references, so under "rm" a fixed
  # missing_eos_penalty can sit above every score the policy gets and reward never stopping.
  c.reward_stats = "policy"
  c.whiten_rewards = False
  c.whiten_advantages = True
  c.gamma = 1.0
  c.lam = 0.95
  # Learning.
  c.epochs = 4
  c.minibatches = 2
  c.clip = 0.2
  c.vf_clip = 0.2
  c.vf_coef = 0.1
  c.ent_coef = 0.0
  c.value_warmup_iterations = 2  # critic-only iterations before the first policy update
  c.policy_optimizer = default_optimizer_config()
  c.policy_optimizer.update(lr=1e-5, warmup_steps=0, decay="constant", b2=0.999, eps=1e-5)
  c.critic_optimizer = default_optimizer_config()
  c.critic_optimizer.update(lr=3e-5, warmup_steps=0, decay="constant", b2=0.999, eps=1e-5)
  # Machinery.
  c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})
  c.sharding_rules = ()
  c.seed = 0
  c.checkpoint_every = 10
  c.keep_checkpoints = 2
  c.log_every = 1

  if arg == "rloo":
    c.estimator = "rloo"
    c.samples_per_prompt = 4
    c.prompts_per_iteration = 8
    c.value_warmup_iterations = 0
    c.critic_init = "none"
  elif arg == "paper":
    c.iterations = 500
    c.prompts_per_iteration = 64
    c.minibatches = 4
    c.max_new_tokens = 128
    c.max_prompt_len = 1024
    c.value_warmup_iterations = 10
  return c
