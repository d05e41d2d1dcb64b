"""Best-of-n: n samples per prompt from a target-language policy, the best under a (possibly other-language) RM.

    xlra bon --config=configs/bon.py:tiny --workdir=/tmp/xlra_bon \
      --config.policy_checkpoint=WORK/sft_de --config.rm_checkpoint=WORK/rm_en --config.lang=de \
      --config.data_dir=WORK/sft_de
    xlra bon --config=configs/bon.py:real --workdir=DIR --config.policy_checkpoint=/ckpt/sft_de_hf \
      --config.rm_checkpoint=WORK/rm_en --config.prompts=prompts.jsonl

Presets (ARG): `tiny` / `ci` (testbed prompts of config.split, data as the sft/rm presets of the same
name build it), `paper` (n=64, as in the paper), `real` (a prompts JSONL {"id", "prompt", "lang"} and a
Hugging Face policy directory). policy_checkpoint is a model directory, a training workdir (its
`model/` export) or a Hugging Face directory; rm_checkpoint is a reward-model directory or `xlra rm`
workdir. Writes WORKDIR/bon.jsonl (prompt, chosen output, its score, all scores) and WORKDIR/bon_summary.json.
"""

from __future__ import annotations

import os
import runpy

import ml_collections

PRESETS = ("tiny", "ci", "paper", "real")


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
  if arg not in PRESETS:
    raise ValueError(f"configs/bon.py:{arg}: choose one of {PRESETS}")
  c = ml_collections.ConfigDict()
  c.policy_checkpoint = ""  # the target-language SFT policy
  c.rm_checkpoint = ""  # the reward model (any language)
  c.tokenizer = ""  # tokenizer directory; "" = the one saved beside the policy, else the data's
  # Prompts: the testbed split `split` of lang/task, or a JSONL {"id", "prompt", "lang"} (overrides it).
  c.lang = "de"
  c.task = "dialog"
  c.split = "eval"  # rl | eval
  c.prompts = ""
  c.max_prompts = 0  # 0: all
  # Data of testbed runs: the same data config as the sft/rm preset, so data_dir's cache is reused.
  sft = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "sft.py"))  # configs/ is no package
  c.data = sft["testbed_data"]("ci" if arg == "ci" else "tiny")
  c.data_dir = ""  # a workdir whose data/ to use (e.g. the SFT run's); "" = this job's WORKDIR
  # Sampling.
  c.n = 16
  c.max_new_tokens = 64
  c.temperature = 0.7
  c.top_k = 0
  c.top_p = 1.0
  c.min_prompt_bucket = 32
  c.max_prompt_len = 256
  c.rows_per_batch = 64  # prompts x samples per generation call
  # Scoring.
  c.score_batch_size = 32
  c.missing_eos_penalty = -1.0  # replaces the score of a response without EOS; None keeps it
  c.normalize_reward = True  # (score - mean) / std with the RM's stored statistics, when it has them
  c.keep_candidates = False  # also write every candidate's text
  # Machinery.
  c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})
  c.sharding_rules = ()
  c.seed = 0

  if arg == "ci":
    c.n = 4
    c.max_new_tokens = 48
    c.max_prompts = 8
  elif arg == "paper":
    c.n = 64
    c.max_new_tokens = 128
    c.max_prompt_len = 1024
  elif arg == "real":
    c.prompts = "prompts.jsonl"
    c.max_new_tokens = 512
    c.max_prompt_len = 1024
    c.rows_per_batch = 128
  return c
