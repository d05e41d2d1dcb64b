"""The main job: the source x target study, from data to report.

    xlra pipeline --config=configs/pipeline.py:demo --workdir=runs/demo     # the README's first command
    xlra pipeline --config=configs/pipeline.py:demo_summarize --workdir=runs/demo_summarize   # pointwise RMs
    xlra pipeline --config=configs/pipeline.py:ci --workdir=runs/ci         # smaller; CI runs it end to end
    xlra pipeline --config=configs/pipeline.py:demo --workdir=runs/de_en \
        --config.languages=de,en --config.bon.n=8 --config.ppo.pairs=en-de
    xlra pipeline --config=configs/pipeline.py:paper --workdir=/mnt/bucket/runs/paper \
        --config.init_hf=/ckpt/gemma-2-2b --config.data.tokenizer.path=/ckpt/gemma-2-2b \
        --config.data.real.seahorse_tsv=... --config.data.real.oasst_jsonl=...

Stages (each cached in WORKDIR/stages/, resumable): data -> base LM -> SFT per target -> RM per source
-> RM accuracy matrix -> best-of-n for every (source RM, target) pair -> PPO for config.ppo.pairs ->
baselines (translate-train RM, no-target-language SFT) -> report.md / results.json / PNGs.
Sub-configs are the job configs (configs/sft.py, rm.py, ppo.py, eval.py); the pipeline sets their
data, languages, mesh and checkpoints, so one field here changes every stage.
"""

from __future__ import annotations

import os
import runpy

import ml_collections

PRESETS = ("demo", "demo_summarize", "ci", "paper")


def _sibling(name: str) -> dict:
  """Another config file's globals (configs/ is not a package)."""
  return runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), name))


def get_config(arg: str = "demo") -> ml_collections.ConfigDict:
  if arg not in PRESETS:
    raise ValueError(f"configs/pipeline.py:{arg}: choose one of {PRESETS}")
  sft_cfgs, rm_cfgs, ppo_cfgs, eval_cfgs = (_sibling(f) for f in ("sft.py", "rm.py", "ppo.py", "eval.py"))
  data_cfgs = _sibling("data.py")
  testbed = arg != "paper"
  job = "tiny" if testbed else "gemma2_2b_dialog"
  c = ml_collections.ConfigDict()
  c.seed = 0
  # Target languages (policies). The demo's three fit 15 minutes on 2 CPU cores (README) and carry both
  # simulated annotator biases (de: length, es: politeness); the testbed has de, en, es, ru, tr, vi.
  c.languages = ("de", "en", "es") if testbed else ("de", "en", "es", "ru", "tr", "vi")
  c.sources = ""  # RM source languages, comma-separated; "" = the same as languages
  c.init_hf = ""  # real runs: the Hugging Face checkpoint every model starts from (no base-LM stage)

  # Shared by every stage.
  c.data = sft_cfgs["testbed_data"]("tiny") if testbed else data_cfgs["get_config"]("real")
  c.data.tasks = ("dialog",)
  if testbed:  # a 2048-token BPE keeps prompts near 100 tokens and responses near 30
    # 400 SFT examples overfit within 250 steps; 1,500 RM pairs per language (2 epochs, below) get the RMs
    # to ~80% against the gold order in their own language, 400 to ~65%.
    c.data.sizes.update(dict(base=600, sft=3000, eval=100, rm_train=1500))
    c.data.tokenizer.vocab_size = 2048
    c.data.base_mix.parallel = 0.5  # half the base documents followed by a translation: the language bridge
  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1))
  c.model = ml_collections.ConfigDict(dict(preset="tiny" if testbed else "gemma2_2b", dtype="float32",
                                           param_dtype="float32"))

  c.base = sft_cfgs["get_config"](job)  # base LM on the raw multilingual corpus (testbed only)
  c.base.corpus = "base"
  c.sft = sft_cfgs["get_config"](job)  # one SFT model per target language, from the base LM
  c.rm = rm_cfgs["get_config"](job)  # one RM per source language, from that language's SFT model
  c.rm.rm.loss = "pairwise"
  c.rm.sft_first = False
  if testbed:  # packed rows (about two examples each); step counts sized for the 15-minute demo
    c.base.update(dict(num_steps=600, num_epochs=0.0, pack=True, eval_every=200, checkpoint_every=200))
    c.sft.update(dict(num_steps=250, num_epochs=0.0, pack=True, eval_every=125, checkpoint_every=125))
    c.rm.num_epochs = 2.0

  # Best-of-n. temperature 0.7: the tiny policies ramble at 1.0. missing_eos_penalty is in the RM's
  # normalised units and far below its scores, so a candidate that never stopped wins only when all did.
  # baseline_samples: target SFT samples each prompt is judged against (its score is their mean; the
  # interval still resamples prompts). More samples narrow the interval, at k judge calls per prompt.
  c.bon = ml_collections.ConfigDict(dict(
      n=16, temperature=0.7, top_k=0, top_p=1.0, max_new_tokens=48, eval_prompts=100, baseline_samples=8,
      rows_per_batch=64, normalize_reward=True, missing_eos_penalty=-10.0, min_prompt_bucket=32,
      max_prompt_len=256, score_batch_size=64))
  c.ppo = ppo_cfgs["get_config"]("tiny" if testbed else "paper")
  c.ppo.pairs = "en-de"  # SOURCE-TARGET,... (RM language - policy language); "" = no PPO
  c.ppo.eval_prompts = c.bon.eval_prompts  # the PPO policy is judged on the best-of-n prompts
  if testbed:
    c.ppo.update(dict(iterations=40, eval_every=10))
  # Controls beside every best-of-n cell (report "Controls"): shortest- and longest-of-n (length rules) and
  # the oracle pick (best by gold q, the ceiling) cost only judge calls; placebo=True also trains an RM per
  # target on its data with shuffled labels, whose best-of-n must sit at 50%.
  c.controls = ml_collections.ConfigDict(dict(placebo=testbed))  # real data: the placebo needs testbed RM data
  c.judge = eval_cfgs["judge"]("oracle" if testbed else "http")
  c.winrate = ml_collections.ConfigDict(dict(level=0.95, n_boot=10_000, seed=0))
  c.baselines = ml_collections.ConfigDict(dict(
      source="en",  # whose data is translated
      targets="de",  # comma-separated targets for both baselines; "" = none
      translate_train=True,  # an RM trained on the source's preference data translated into the target
      no_target_sft=True))  # a target policy whose SFT data is the source's, translated

  if arg == "ci":
    c.languages = ("de", "en")
    c.data = sft_cfgs["testbed_data"]("ci")
    c.data.tasks = ("dialog",)
    c.data.sizes.base = 120  # enough text for a 1024-token BPE: prompts stay under max_prompt_len
    c.data.tokenizer.vocab_size = 1024
    for sub in (c.base, c.sft, c.rm):
      sub.num_steps, sub.num_epochs = 12, 0.0
      sub.eval_every = sub.checkpoint_every = 12
      sub.batch_size = 8
      sub.max_len = 320
    c.bon.update(dict(n=4, eval_prompts=8, max_new_tokens=24, max_prompt_len=384, baseline_samples=2))
    # minibatches=1: 8 rollout rows per minibatch, divisible by the 8 devices of the test mesh.
    c.ppo.update(dict(iterations=2, prompts_per_iteration=8, minibatches=1, eval_prompts=8, eval_every=2,
                      max_new_tokens=24, value_warmup_iterations=1, epochs=1))
    c.winrate.n_boot = 1000
  elif arg == "demo_summarize":  # the paper's other setting: summarization with pointwise (Seahorse-like) RMs
    c.data.tasks = ("summarize",)
    c.rm.rm.loss = "pointwise"
    c.baselines.translate_train = False  # translated preference pairs need pairwise RMs
    c.ppo.pairs = ""  # the demo's PPO runs on dialog
  elif arg == "paper":
    c.bon.update(dict(n=64, eval_prompts=500, max_new_tokens=512, max_prompt_len=1024, rows_per_batch=256,
                      baseline_samples=1))  # an LM judge pays two calls per judgement
    c.ppo.eval_prompts = c.bon.eval_prompts
    c.ppo.pairs = "en-de,en-es,en-ru,en-tr,en-vi,de-de"
    c.baselines.targets = "de,es,ru,tr,vi"
  return c
