"""Evaluation: judge each system's outputs against the baseline's (the target-language SFT model).

    xlra eval --config=configs/eval.py:oracle --workdir=/tmp/xlra_eval \
      --config.baseline.outputs=WORK/outputs/sft_de.jsonl --config.system_outputs=ppo_de=WORK/outputs/ppo_de.jsonl \
      --config.examples=WORK/data/eval_examples.jsonl

Presets (ARG): `oracle` (the testbed's gold quality), `local` (an LM judge from a Hugging Face or
xlra model directory, --config.judge.local.path=DIR), `http` (an OpenAI-compatible server,
--config.judge.http.base_url=... --config.judge.http.model=...). Systems are named entries of
`config.systems` (set in a copy of this file or by the pipeline, which builds this config) or, from
the command line, --config.system_outputs=ppo_de=PATH,bon_de=PATH.

Output files are JSONL rows {"id", "prompt", "output", "lang"} (optional "task"); rows of a system and
of the baseline are matched by (id, lang). A system without `outputs` but with a `checkpoint` is
generated from on `config.prompts` first (see xlra.eval.job).
"""

from __future__ import annotations

import ml_collections


def system(outputs: str = "", checkpoint: str = "", source: str = "", target: str = "",
           tokenizer: str = "") -> ml_collections.ConfigDict:
  """One system under evaluation. source/target: the RM's and the policy's language (for the report grid).
  checkpoint_format: auto | hf | xlra (an xlra model directory); tokenizer: its directory, "" = the checkpoint's."""
  return ml_collections.ConfigDict({"outputs": outputs, "checkpoint": checkpoint, "checkpoint_format": "auto",
                                    "tokenizer": tokenizer, "source": source, "target": target})


def judge(kind: str) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({
      "kind": kind,  # oracle | local | http | none (for the second judge only)
      # Past this share of failed judgements the run fails after writing its reports (a rerun asks the
      # failed ones again). 0.05: a healthy LM judge still answers a few percent with something other
      # than "1"/"2", and failed rows are left out of the win rate, so at 5% the examples it covers stay
      # close to the set asked; more means an outage or a broken judge, whose win rate should not pass.
      "max_failure_share": 0.05,
      "oracle": {"quality_fn": ""},  # "module:function" replacing the testbed's q; "" = testbed
      "local": {"path": "", "checkpoint_format": "auto", "tokenizer": "", "dtype": "float32", "batch_size": 8,
                "max_len": 0, "min_bucket": 64, "chat_template": "auto"},
      "http": {"base_url": "http://127.0.0.1:8000/v1", "model": "", "api_key_env": "", "timeout": 60.0,
               "max_retries": 5, "backoff": 1.0, "backoff_max": 60.0, "max_concurrency": 4, "request_budget": 0,
               "temperature": 0.0, "max_tokens": 2, "logprobs": True, "top_logprobs": 5,
               "order": "random",  # the paper: a random order per example for GPT-4
               "cache_path": ""},  # "" = WORKDIR/judge_cache.jsonl
  })


def get_config(arg: str = "oracle") -> ml_collections.ConfigDict:
  if arg not in ("oracle", "local", "http"):
    raise ValueError(f"configs/eval.py:{arg}: choose oracle, local or http")
  c = ml_collections.ConfigDict()
  c.task = "dialog"  # for rows without a "task" field: dialog | summarization (testbed: summarize)
  c.examples = ""  # JSONL of testbed examples (Example.to_dict rows); the oracle judge needs them
  c.prompts = ""  # JSONL {"id", "prompt", "lang"[, "task"]} to generate on, for systems given as checkpoints
  c.baseline_name = "sft"
  c.baseline = system()
  c.systems = ml_collections.ConfigDict()  # name -> system(...)
  c.system_outputs = ""  # "NAME=PATH,NAME=PATH": more systems from the command line (outputs files)
  c.judge = judge(arg)
  c.judge2 = judge("none")  # optional second judge: its agreement with the first is reported
  c.winrate = ml_collections.ConfigDict({"mode": "hard", "level": 0.95, "n_boot": 10_000, "seed": 0})
  c.generation = ml_collections.ConfigDict({"max_new_tokens": 128, "temperature": 0.0, "batch_size": 16,
                                            "seed": 0, "max_prompt_len": 1024})
  c.chunk = 256  # requests per judge call (progress is logged per chunk)
  return c
