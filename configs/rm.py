"""Reward models: pointwise (binary cross-entropy on good/bad, Seahorse-style) or pairwise
(Bradley-Terry on chosen/rejected, OpenAssistant-style), initialised from an SFT model.

    xlra rm --config=configs/rm.py:tiny --workdir=/tmp/xlra_rm        # testbed, en; trains its SFT init first
    xlra rm --config=configs/rm.py:ci --workdir=/tmp/xlra_rm_ci
    xlra rm --config=configs/rm.py:tiny --workdir=/tmp/xlra_rm_de --config.languages=de --config.rm.loss=pairwise
    xlra rm --config=configs/rm.py:gemma2_2b_summarize --workdir=DIR --config.init_checkpoint=SFT_WORKDIR \
        --config.data.tokenizer.path=/ckpt/gemma-2-2b --config.data.real.seahorse_tsv=/data/seahorse/train.tsv \
        --config.data.real.seahorse_articles=/data/gem --config.languages=de

The RM starts from config.init_checkpoint (an SFT model directory or workdir) with a fresh scalar
head; with neither it nor config.init_hf set and config.sft_first, it first trains the SFT model of
config.sft into WORKDIR/sft. The exported WORKDIR/model has reward_stats.json (mean and std of the
scores on reference outputs). Presets as in configs/sft.py; `*_summarize` is pointwise on Seahorse,
`*_dialog` pairwise on oasst1.
"""

from __future__ import annotations

import os
import runpy

import ml_collections




def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
  sft = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "sft.py"))  # configs/ is no package
  c = sft["base_config"](arg)
  testbed = arg in sft["TESTBED"]
  c.languages = ("en",) if testbed else ("de",)  # the RM's source language(s)
  c.rm = ml_collections.ConfigDict(dict(
      loss="pointwise" if testbed or arg.endswith("_summarize") else "pairwise",
      margin_scale=0.0,  # pairwise: BT margin = margin_scale * batch["margin"] where the data has one
      center_coef=0.0))  # pairwise: + center_coef * (r_chosen + r_rejected)^2 (reward centering)
  c.best_metric, c.best_mode = "accuracy", "max"
  c.num_steps, c.num_epochs = 0, 3.0  # tiny, en: 0.68 after 2 epochs, 0.71 after 3-4 (best by accuracy)
  c.optimizer.update(dict(lr=1e-3, warmup_steps=10))
  c.eval_every = c.checkpoint_every = 25
  c.log_every = 5
  # The SFT model the RM starts from, trained first into WORKDIR/sft when nothing else is given.
  c.sft_first = testbed
  c.sft = sft["get_config"](arg)
  c.sft.languages = c.get_ref("languages")
  if not testbed:
    c.optimizer.update(dict(lr=5e-6, warmup_steps=50))
    c.num_epochs = 1.0  # one epoch is often best for RMs (Huang et al.; the paper)
    c.eval_every = c.checkpoint_every = 200
    if arg.endswith("_summarize"):
      c.data.real.seahorse_tsv = ""  # set: Seahorse TSV; and data.real.seahorse_articles
    else:
      c.data.real.oasst_jsonl = ""  # set: oasst1 message trees
  return c
