"""Oracle judge: wins, losses and ties from the gold quality; the real testbed q when it is importable."""

from __future__ import annotations

import pytest

from xlra.eval.judges import base
from xlra.eval.judges.oracle import OracleJudge


def test_injected_quality_gives_win_loss_tie():
  # Quality: share of the example's key words present (a stand-in for the testbed's q).
  q = lambda ex, out: sum(w in out.split() for w in ex["keys"]) / len(ex["keys"])
  ex = {"keys": ["berlin", "2024", "bank"]}
  reqs = [base.Judgement("p", "berlin 2024", "berlin", example=ex),
          base.Judgement("p", "bank", "berlin 2024 bank", example=ex),
          base.Judgement("p", "bank berlin", "2024 berlin", example=ex, task="summarize")]
  judge = OracleJudge(q)
  assert [r.p_a for r in judge.judge(reqs)] == [1.0, 0.0, 0.5]
  assert reqs[2].task == "summarization" and judge.stats["ok"] == 3
  with pytest.raises(ValueError, match="no `example`"):
    judge.judge([base.Judgement("p", "a", "b")])
  with pytest.raises(ValueError, match="outside"):
    OracleJudge(lambda ex, out: 2.0).judge(reqs[:1])


def test_testbed_quality_prefers_the_reference():
  from xlra.data import testbed
  judge = OracleJudge()  # the testbed's q, imported lazily
  reqs = []
  for task in testbed.TASKS:
    for lang in ("en", "de"):
      for ex in testbed.generate_split(lang, task, "eval", 2, seed=0):
        # Examples as objects and as the dicts an examples JSONL holds.
        reqs.append(base.Judgement(ex.prompt, ex.reference, "ok ok ok ok", lang, task, example=ex.to_dict()))
        reqs.append(base.Judgement(ex.prompt, ex.reference, ex.reference, lang, task, example=ex))
  assert [r.p_a for r in judge.judge(reqs)] == [1.0, 0.5] * 8
