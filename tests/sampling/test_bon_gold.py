"""On the testbed, best-of-n under a trained RM raises the gold quality q over single samples.

Needs trained models: XLRA_TEST_RM_WORKDIR names a finished `xlra rm --config=configs/rm.py:tiny
--workdir=DIR` run (it trains DIR/sft first, then the RM into DIR/model; about 15 minutes on 2 busy CPU
cores). The policy is DIR/sft, the prompts the en dialog eval split. Skipped without it.
"""

from __future__ import annotations

import os
import runpy

import numpy as np
import pytest

from xlra import files
from xlra.sampling import job

RM_WORKDIR = os.environ.get("XLRA_TEST_RM_WORKDIR", "")

# Known state (measured by the sampling helper on a configs/rm.py:tiny run): the tiny SFT policy's samples
# have gold q = 0 on 99.5% of candidates (invented names and numbers) and the RM's scores do not correlate
# with gold on them (r = 0.01), so best-of-n has nothing to select. Drop the xfail once the tiny SFT/RM
# presets give samples with nonzero q.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not RM_WORKDIR, reason="set XLRA_TEST_RM_WORKDIR to an `xlra rm` configs/rm.py:tiny workdir"),
    pytest.mark.xfail(reason="tiny-preset SFT samples have gold q = 0; see above", strict=False),
]


def test_best_of_n_with_trained_rm_raises_gold_quality(tmp_path):
  path = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "bon.py")
  config = runpy.run_path(path)["get_config"]("tiny")
  config.update(dict(policy_checkpoint=os.path.join(RM_WORKDIR, "sft"), rm_checkpoint=RM_WORKDIR,
                     data_dir=RM_WORKDIR, lang="en", task="dialog", split="eval", n=8, max_prompts=24,
                     temperature=1.0))
  summary = job.run_best_of_n(config, str(tmp_path / "bon"))
  rows = files.read_jsonl(str(tmp_path / "bon" / job.OUTPUT))
  best = np.array([r["gold_q"] for r in rows])
  single = np.array([np.mean(r["gold_q_all"]) for r in rows])
  # The RM's choice beats the average sample on gold q, over the prompt set and on more prompts than not.
  assert summary["gold_q_best"] > summary["gold_q_single"] + 0.02, summary
  assert np.sum(best > single) > np.sum(best < single), (best, single)
