"""On the testbed, best-of-n under a trained RM raises the gold quality q over single samples.

Slow (minutes on 2 CPU cores): trains the `tiny` SFT policy and pointwise RM with the training jobs, then
runs `xlra bon`. Set XLRA_TEST_RM_WORKDIR to an existing `xlra rm --config=configs/rm.py:tiny` workdir
(it holds sft/ and model/) to skip the training.
"""

from __future__ import annotations

import os
import runpy

import numpy as np
import pytest

from xlra import files
from xlra.sampling import job

# Known state (recorded by the sampling helper): with the `tiny` presets the SFT policy's samples on the en
# dialog eval prompts have gold q = 0 on 99.5% of candidates (invented names and numbers), and the RM's
# scores do not correlate with gold on them (r = 0.01), so there is nothing for best-of-n to select.
# Flip to a plain test once the tiny SFT/RM presets produce samples with nonzero q.
pytestmark = [pytest.mark.slow, pytest.mark.xfail(reason="tiny-preset SFT samples have gold q = 0; see above",
                                                  strict=False)]


def _config(name: str, arg: str):
  return runpy.run_path(os.path.join(os.path.dirname(__file__), "..", "..", "configs", name))["get_config"](arg)


def test_best_of_n_with_trained_rm_raises_gold_quality(tmp_path):
  rm_work = os.environ.get("XLRA_TEST_RM_WORKDIR", "")
  if not rm_work:
    from xlra.train.jobs import train_rm
    rm_work = str(tmp_path / "rm")
    train_rm(_config("rm.py", "tiny"), rm_work)  # trains WORKDIR/sft first, then the RM from it
  config = _config("bon.py", "tiny")
  config.update(dict(policy_checkpoint=os.path.join(rm_work, "sft"), rm_checkpoint=rm_work, data_dir=rm_work,
                     lang="en", task="dialog", split="eval", n=8, max_prompts=24, temperature=1.0))
  summary = job.run_best_of_n(config, str(tmp_path / "bon"))
  rows = files.read_jsonl(str(tmp_path / "bon" / job.OUTPUT))
  best = np.array([r["gold_q"] for r in rows])
  single = np.array([np.mean(r["gold_q_all"]) for r in rows])
  # The RM's choice beats the average sample on gold q, over the prompt set and on more prompts than not.
  assert summary["gold_q_best"] > summary["gold_q_single"] + 0.02, summary
  assert np.sum(best > single) > np.sum(best < single), (best, single)
