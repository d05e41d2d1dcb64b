"""Judging under faults, at the cache itself: a writer SIGKILLed while appending judgements (many
fsynced appends a second) loses none it acknowledged, and the rerun, which asks only what the cache
lacks, ends with every judgement exactly once. (The whole `xlra eval` killed midway against a fake
HTTP judge is in test_kill_resume.py.)"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import subprocess
import sys
import time

import reliability_tally as tally
from reliability_cli import REPO

N = 1500
WRITER = """
import sys
from xlra.eval.judges.cache import JudgementCache
cache = JudgementCache(sys.argv[1])
for i in range(int(sys.argv[2])):
  key = f"k{i}"
  if key in cache:  # what the judge does: ask only what the cache lacks
    continue
  cache.put(key, {"p_first": i / 7, "error_kind": None, "pad": "x" * (i % 300)})
  print(i, flush=True)  # acknowledged: the record is on disk
cache.close()
"""


def _writer(path: str) -> subprocess.Popen:
  return subprocess.Popen([sys.executable, "-c", WRITER, path, str(N)], cwd=REPO, stdout=subprocess.PIPE, text=True)


def test_cache_writer_killed_mid_append_loses_and_repeats_nothing(tmp_path):
  path = str(tmp_path / "judge_cache.jsonl")
  at = random.Random(7).randint(200, 900)
  proc, acked = _writer(path), -1
  deadline = time.monotonic() + 120
  while acked < at and time.monotonic() < deadline:
    line = proc.stdout.readline()
    assert line, f"writer ended before the kill point (rc {proc.poll()})"
    acked = int(line)
  os.kill(proc.pid, signal.SIGKILL)
  proc.wait()
  proc.stdout.close()
  tally.add(kills_tried=1)
  tally.note(f"judge cache writer: SIGKILL after {acked + 1} acknowledged appends")
  from xlra.eval.judges.cache import JudgementCache

  cache = JudgementCache(path)
  assert all(f"k{i}" in cache for i in range(acked + 1))  # every acknowledged judgement survived
  assert cache.unreadable_lines <= 1  # at most the one line the kill cut
  cache.close()
  rest = _writer(path)
  out, _ = rest.communicate(timeout=120)
  assert rest.returncode == 0
  asked_again = [int(x) for x in out.split()]
  assert not set(asked_again) & set(range(acked + 1))  # nothing acknowledged was asked again
  keys = []
  with open(path, "rb") as f:
    for line in f:
      try:
        keys.append(json.loads(line)["key"])
      except ValueError:
        pass
  counts = collections.Counter(keys)
  lost, duplicated = N - len(counts), sum(c - 1 for c in counts.values())
  tally.add(judgements_expected=N, judgements_lost=lost, judgements_duplicated=duplicated)
  assert lost == 0 and duplicated == 0 and set(counts) == {f"k{i}" for i in range(N)}
  tally.add(kills_survived=1)
