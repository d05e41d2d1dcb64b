"""The reliability suite's counts, printed at the end of the session (see conftest.py).

Tests add to them as they go: a kill is "tried" when SIGKILL hit a live run and "survived" when the
restarted run ended bitwise equal to an uninterrupted one; likewise corruptions; a bad input is
"clear" when it ended in an error naming its field (or a counted skip), never an opaque failure. Judge
faults are failures a fake judge server served; a judgement is "recovered" when it failed (in an
attempt or a whole run) and ended answered; a request is "paid twice" when a question that had a
completion got another; key characters written: the longest piece (8+ characters) of a planted API
key found in each file or captured output, summed.
"""

from __future__ import annotations

import collections

ORDER = ("kills_tried", "kills_survived", "corruptions_tried", "corruptions_survived", "bad_inputs_tried",
         "bad_inputs_clear", "judgements_expected", "judgements_lost", "judgements_duplicated", "key_leaks",
         "judge_faults_injected", "judgements_recovered", "requests_paid_twice", "key_chars_written")

TALLY: collections.Counter = collections.Counter()
NOTES: list[str] = []  # one line per kill or corruption: where it hit


def add(**counts: int) -> None:
  TALLY.update(counts)


def note(line: str) -> None:
  NOTES.append(line)


def summary_lines() -> list[str]:
  t = TALLY
  lines = [f"kills survived: {t['kills_survived']} of {t['kills_tried']} tried",
           f"corruptions survived: {t['corruptions_survived']} of {t['corruptions_tried']} tried",
           f"bad inputs: {t['bad_inputs_tried']} tried, {t['bad_inputs_clear']} ended in a clear error or a "
           f"counted skip",
           f"judgements lost: {t['judgements_lost']}, duplicated: {t['judgements_duplicated']} "
           f"(of {t['judgements_expected']} expected)",
           f"judge faults injected: {t['judge_faults_injected']}, judgements recovered: "
           f"{t['judgements_recovered']}, requests paid twice: {t['requests_paid_twice']}",
           f"API key leaks: {t['key_leaks']}, key characters written anywhere: {t['key_chars_written']}"]
  return lines + [f"  {n}" for n in NOTES]
