"""Pairwise judges behind one interface (`Judge.judge(list[Judgement]) -> list[JudgeResult]`).

  OracleJudge(quality_fn=None)            the testbed's gold quality; equal scores tie
  LocalJudge(model, tokenizer, config)    an xlra Transformer read at the answer tokens, both orders averaged
  LocalJudge.from_checkpoint(path, config)  a Hugging Face or xlra model directory
  HttpJudge(HttpJudgeConfig(...))         an OpenAI-compatible chat-completions server, cached and budgeted
"""

from xlra.eval.judges.base import FAILURE_KINDS, TASKS, Judge, Judgement, JudgeResult
from xlra.eval.judges.http import HttpJudge, HttpJudgeConfig
from xlra.eval.judges.local import LocalJudge, LocalJudgeConfig
from xlra.eval.judges.oracle import OracleJudge

__all__ = ["FAILURE_KINDS", "TASKS", "HttpJudge", "HttpJudgeConfig", "Judge", "JudgeResult", "Judgement", "LocalJudge",
           "LocalJudgeConfig", "OracleJudge"]
