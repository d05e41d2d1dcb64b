"""The RM generalizability matrix: an RM per source language, each scored on every language's
validation set, with the majority-class and longer-output baselines.

    xlra rm-eval --config=configs/rm_eval.py:tiny --workdir=/tmp/xlra_rm_eval     # testbed, 6 RMs
    xlra rm-eval --config=configs/rm_eval.py:ci --workdir=/tmp/xlra_rm_eval_ci
    xlra rm-eval --config=configs/rm_eval.py:tiny --workdir=DIR --config.rm_dirs=en=/w/rm_en/model,de=/w/rm_de/model
    xlra rm-eval --config=configs/rm_eval.py:qwen2.5_1.5b_dialog --workdir=DIR --config.rm.data.languages=de,en \
        --config.rm.init_checkpoint=SFT_WORKDIR --config.rm.data.tokenizer.path=/ckpt/qwen \
        --config.rm.data.real.oasst_jsonl=/data/oasst/trees.jsonl

ARG is a configs/rm.py preset (the RMs' training config, under `rm`). With config.rm_dirs empty,
the job trains one multilingual SFT model and then the RMs (finished ones are reused on a rerun).
Writes WORKDIR/rm_accuracy.json, rm_accuracy.md and rm_accuracy.png.
"""

from __future__ import annotations

import os
import runpy

import ml_collections


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
  rm = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "rm.py"))  # configs/ is no package
  c = ml_collections.ConfigDict()
  c.rm = rm["get_config"](arg)
  # One RM per source language, scored on every target's validation set. Both default to the languages
  # the data is read in (--config.rm.data.languages=de,en sets all three), so real data in two languages
  # is not asked for six. `+ ()` derives a reference of its own: setting targets alone leaves the rest.
  c.sources = c.rm.data.get_ref("languages") + ()
  c.targets = c.rm.data.get_ref("languages") + ()
  c.rm_dirs = ""  # LANG=MODEL_DIR,... to evaluate existing RMs instead of training them
  return c
