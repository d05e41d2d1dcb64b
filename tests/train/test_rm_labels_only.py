"""Reward models learn only from the simulated annotators' labels: no field derived from the gold
quality q (q values, the corruption kinds and specs that produced a candidate) reaches an RM's batches.

The testbed keeps those fields on every pair for diagnostics; if a loader ever read one (weighting by
q, filtering by kind), the RM would learn from the gold judge the study evaluates with.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from tests.train.conftest import load_config
from xlra.train import jobs

GOLD_FIELDS = ("q_chosen", "q_rejected", "q", "chosen_kinds", "rejected_kinds", "kinds", "chosen_spec",
               "rejected_spec", "spec")


def _scrambled(bundle, seed: int):
  """The bundle with every q-derived field of every RM record replaced by noise."""
  rng = np.random.default_rng(seed)
  tb = bundle.testbed

  def scramble(rec: dict) -> dict:
    return {k: (float(rng.random()) if k.startswith("q") else ["noise", int(rng.integers(9))])
            if k in GOLD_FIELDS else v for k, v in rec.items()}

  pairs = {k: [scramble(r) for r in rs] for k, rs in tb.pairs.items()}
  points = {k: [scramble(r) for r in rs] for k, rs in tb.pointwise.items()}
  return dataclasses.replace(bundle, testbed=dataclasses.replace(tb, pairs=pairs, pointwise=points))


@pytest.mark.parametrize("kind", ["pairwise", "pointwise"])
def test_rm_batches_do_not_depend_on_gold_fields(testbed_bundle, kind):
  config = load_config("rm", "ci")
  config.languages = ("en",)
  config.rm.loss = kind
  config.batch_size = 8
  assert any(k in GOLD_FIELDS for r in testbed_bundle.testbed.get_pairs("rm_train", "en") for k in r)

  def batches(bundle) -> list[dict]:
    task = jobs.rm_task(config, bundle)
    it = iter(task.train_data)
    train = [jax.tree.map(np.asarray, next(it)) for _ in range(4)]
    return train + [jax.tree.map(np.asarray, b) for b in task.eval_data]

  real, noisy = batches(testbed_bundle), batches(_scrambled(testbed_bundle, 0))
  assert len(real) == len(noisy) > 4
  for a, b in zip(real, noisy):
    assert a.keys() == b.keys()
    for key in a:
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)
