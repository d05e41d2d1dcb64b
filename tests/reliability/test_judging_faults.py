"""Judging under faults. At the cache itself: a writer SIGKILLed while appending judgements (many
fsynced appends a second) loses none it acknowledged, and the rerun, which asks only what the cache
lacks, ends with every judgement exactly once. Against a fake judge server serving every transient
fault (5xx, 429, HTML and cut-off bodies, empty choices, a trickle past the deadline): each question
failing once is recovered within the run, an outage's failures by the rerun, and no question is paid
for twice. (The whole `xlra eval` killed midway against a fake HTTP judge is in test_kill_resume.py.)"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import subprocess
import sys
import time

import threading

import pytest

import reliability_tally as tally
from reliability_cli import REPO, config_module, eval_inputs, files_under, key_chars_written

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


KEY = "sk-PLANTED-faults-9d2e7b41c0a6f3e8"
FAULTS = [("status", 500), ("status", 429, 0), ("status", 503), ("echo", 502, 280),
          ("raw", b"<html><h1>502 Bad Gateway</h1></html>"), ("raw", b'{"choices": [{"message": {"cont'),
          ("json", lambda r: {**r, "choices": []}), ("json", lambda r: {"error": {"message": "overloaded"}}),
          ("trickle", 0.5)]
N_EVAL = 20  # prompts; two systems: 40 judgements


def _eval_config(tmp_path, server, max_retries: int):
  c = config_module("eval").get_config("http")
  c.baseline.outputs, c.system_outputs = eval_inputs(tmp_path, N_EVAL)
  h = c.judge.http
  h.base_url, h.model, h.api_key_env, h.max_retries, h.backoff, h.timeout = (
      server.base_url, "fake", "XLRA_RELIABILITY_JUDGE_KEY", max_retries, 0.01, 1.0)
  c.winrate.n_boot = 100
  return c


def _rows(workdir) -> list[dict]:
  return [json.loads(line) for name in ("a", "b") for line in open(os.path.join(workdir, "judgements", f"{name}.jsonl"))]


def _leaks(workdir, caplog) -> int:
  log = os.path.join(str(workdir), "..", "captured.log")
  with open(log, "w") as f:
    f.write(caplog.text)
  found = key_chars_written(files_under(str(workdir)) + [log], KEY)
  tally.add(key_chars_written=sum(found.values()))
  return sum(found.values())


def test_each_question_failing_once_is_recovered_within_the_run(tmp_path, fake_judge, monkeypatch, caplog):
  from xlra.eval import job

  monkeypatch.setenv("XLRA_RELIABILITY_JUDGE_KEY", KEY)
  caplog.set_level("INFO")
  seen, lock = set(), threading.Lock()

  def once(n, body):  # every question's first attempt meets the next fault of the list
    with lock:
      question = body["messages"][-1]["content"]
      if question in seen:
        return None
      seen.add(question)
      return FAULTS[len(seen) % len(FAULTS)]

  fake_judge.fault_fn = once
  workdir = tmp_path / "work"
  job.run(_eval_config(tmp_path, fake_judge, max_retries=2), str(workdir))
  rows = _rows(workdir)
  recovered = sum(r["p_a"] is not None for r in rows)
  tally.add(judge_faults_injected=len(seen), judgements_recovered=recovered,
            requests_paid_twice=fake_judge.paid_twice())
  tally.note(f"judge: {len(seen)} questions each failed once ({len(FAULTS)} fault kinds): {recovered} recovered")
  assert len(rows) == 2 * N_EVAL == len(seen) == recovered and fake_judge.paid_twice() == 0
  assert _leaks(workdir, caplog) == 0


def test_an_outage_is_recovered_by_the_rerun_and_nothing_is_paid_twice(tmp_path, fake_judge, monkeypatch, caplog):
  from xlra.eval import job
  from xlra.eval.judges.base import JudgingFailed

  monkeypatch.setenv("XLRA_RELIABILITY_JUDGE_KEY", KEY)
  caplog.set_level("INFO")
  served = []
  fake_judge.fault_fn = lambda n, body: (served.append(n), FAULTS[n % len(FAULTS)])[1] if n % 2 else None
  workdir = tmp_path / "work"
  with pytest.raises(JudgingFailed, match=r"judgements failed .*more than config.judge.max_failure_share"):
    job.run(_eval_config(tmp_path, fake_judge, max_retries=0), str(workdir))
  failed = {(r["system"], r["id"]) for r in _rows(workdir) if r["p_a"] is None}
  fake_judge.fault_fn = None
  calls = fake_judge.calls
  job.run(_eval_config(tmp_path, fake_judge, max_retries=0), str(workdir))  # the same command, healthy
  rows = _rows(workdir)
  recovered = sum(r["p_a"] is not None for r in rows if (r["system"], r["id"]) in failed)
  asked_again = fake_judge.calls - calls
  job.run(_eval_config(tmp_path, fake_judge, max_retries=0), str(workdir))  # all answered: nothing asked
  tally.add(judge_faults_injected=len(served), judgements_recovered=recovered,
            requests_paid_twice=fake_judge.paid_twice())
  tally.note(f"judge outage: {len(failed)} of {len(rows)} failed, the rerun asked {asked_again} and recovered "
             f"{recovered}")
  assert len(failed) == len(served) > 0 and recovered == asked_again == len(failed)
  assert fake_judge.calls == calls + asked_again and fake_judge.paid_twice() == 0
  assert _leaks(workdir, caplog) == 0
