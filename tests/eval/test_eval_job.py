"""The eval job end to end on small files: hand-computed win rates, skipped rows, reuse on rerun, an
HTTP judge with the oracle as second judge (agreement), and the `xlra eval` command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from xlra.eval import job
from xlra.eval.judges import base as judges_base

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from configs import eval as eval_config  # noqa: E402

QUALITY_MODULE = '''
CALLS = [0]

def q(example, output):
  """Stand-in gold quality: more words are better (the fake HTTP judge agrees: it prefers longer)."""
  assert example["id"] is not None
  CALLS[0] += 1
  return min(1.0, len(output.split()) / 10)
'''

# Words per output. Baseline: 3 words everywhere. en: 4 wins, 1 tie, 1 loss; de: 2 / 2 / 2.
WORDS = {"en": [5, 5, 5, 3, 1, 5], "de": [1, 1, 3, 3, 5, 5]}


def _write(path, rows):
  with open(path, "w") as f:
    for r in rows:
      f.write(json.dumps(r) + "\n")
  return str(path)


@pytest.fixture
def inputs(tmp_path, monkeypatch):
  (tmp_path / "qmod_eval.py").write_text(QUALITY_MODULE)
  monkeypatch.syspath_prepend(str(tmp_path))
  sys.modules.pop("qmod_eval", None)
  rows = lambda n_words: [{"id": f"q{i}", "lang": lang, "prompt": f"prompt {i} {lang}",
                           "output": " ".join(["w"] * n_words(lang, i))} for lang in WORDS for i in range(6)]
  base = _write(tmp_path / "sft.jsonl", rows(lambda lang, i: 3))
  ppo = rows(lambda lang, i: WORDS[lang][i]) + [{"id": "extra", "lang": "en", "prompt": "p", "output": "o"}]
  ppo = _write(tmp_path / "ppo.jsonl", ppo)
  bad = _write(tmp_path / "bad.jsonl", [{**r, "task": "summarization"} for r in rows(lambda lang, i: 1)])
  examples = _write(tmp_path / "examples.jsonl", [{"id": f"q{i}", "lang": l} for l in WORDS for i in range(6)])
  return tmp_path, base, ppo, bad, examples


def _config(kind, base, ppo, bad, examples):
  c = eval_config.get_config(kind)
  c.baseline.outputs = base
  c.systems.ppo_de = eval_config.system(outputs=ppo, source="en", target="de")
  c.system_outputs = f"bad={bad}"
  c.examples = examples
  c.judge.oracle.quality_fn = "qmod_eval:q"
  c.winrate.n_boot = 500
  return c


def test_oracle_job_end_to_end_and_rerun_reuses(inputs):
  tmp, base, ppo, bad, examples = inputs
  workdir = str(tmp / "work")
  job.run(_config("oracle", base, ppo, bad, examples), workdir)
  summary = json.load(open(os.path.join(workdir, "summary.json")))
  s = summary["systems"]["ppo_de"]
  assert s["per_lang"]["en"]["win_rate"] == pytest.approx(4.5 / 6)
  assert (s["per_lang"]["en"]["wins"], s["per_lang"]["en"]["ties"], s["per_lang"]["en"]["losses"]) == (4, 1, 1)
  assert s["per_lang"]["de"]["win_rate"] == pytest.approx(0.5) and s["overall"]["n"] == 12
  assert s["overall"]["win_rate"] == pytest.approx(7.5 / 12)
  assert s["overall"]["ci_low"] < 7.5 / 12 < s["overall"]["ci_high"]
  assert s["skipped"] == {"no_baseline_output": 1} and (s["source"], s["target"]) == ("en", "de")
  assert summary["systems"]["bad"]["overall"]["win_rate"] == 0.0
  rows = [json.loads(l) for l in open(os.path.join(workdir, "judgements", "ppo_de.jsonl"))]
  assert len(rows) == 12 and {r["p_a"] for r in rows} == {0.0, 0.5, 1.0}
  assert rows[0].keys() >= {"id", "lang", "task", "system", "baseline", "p_a", "error_kind", "cached"}
  md = open(os.path.join(workdir, "summary.md")).read()
  assert "| ppo_de | en | 75.0 |" in md and "| bad | all | 0.0 |" in md and "no_baseline_output" in md

  import qmod_eval
  calls = qmod_eval.CALLS[0]
  assert calls == 2 * 24  # two outputs scored per judged example
  job.run(_config("oracle", base, ppo, bad, examples), workdir)  # nothing changed: nothing judged again
  assert qmod_eval.CALLS[0] == calls
  assert json.load(open(os.path.join(workdir, "summary.json")))["systems"] == summary["systems"]
  _write(ppo, [{"id": "q0", "lang": "en", "prompt": "prompt 0 en", "output": "w w w w"}])
  job.run(_config("oracle", base, ppo, bad, examples), workdir)  # one input changed: that system again
  assert qmod_eval.CALLS[0] == calls + 2


def test_bad_inputs_are_named(inputs):
  tmp, base, ppo, bad, examples = inputs
  c = _config("oracle", base, ppo, bad, examples)
  c.system_outputs = "oops"
  with pytest.raises(ValueError, match="NAME=PATH"):
    job.run(c, str(tmp / "w1"))
  broken = _write(tmp / "broken.jsonl", [{"id": "q0", "lang": "en", "prompt": "p"}])
  c = _config("oracle", base, broken, bad, examples)
  with pytest.raises(ValueError, match="broken.jsonl: row 1 lacks .*'output'"):
    job.run(c, str(tmp / "w2"))
  shifted = _write(tmp / "shifted.jsonl", [{"id": "q0", "lang": "en", "prompt": "other", "output": "o"}])
  with pytest.raises(ValueError, match="disagree on the prompt"):
    job.run(_config("oracle", base, shifted, bad, examples), str(tmp / "w3"))


def test_http_judge_job_with_oracle_agreement_and_cache(inputs, fake_openai):
  tmp, base, ppo, bad, examples = inputs
  workdir = str(tmp / "work")

  def config():
    c = _config("http", base, ppo, bad, examples)
    c.judge.http.base_url, c.judge.http.model, c.judge.http.backoff = fake_openai.base_url, "fake", 0.01
    c.judge2.kind, c.judge2.oracle.quality_fn = "oracle", "qmod_eval:q"
    return c

  fake_openai.faults = {5: ("garbage", "maybe")}  # one of system "bad"'s judgements (judged first)
  job.run(config(), workdir)
  summary = json.load(open(os.path.join(workdir, "summary.json")))
  s = summary["systems"]["ppo_de"]
  assert s["overall"]["win_rate"] == pytest.approx(7.5 / 12)  # the fake judge also prefers more words
  assert s["agreement"] == {"percent": 100.0, "n": 12, "excluded": 0}
  bad_s = summary["systems"]["bad"]
  assert bad_s["failures"] == {"parse": 1} and (bad_s["overall"]["n"], bad_s["overall"]["failures"]) == (11, 1)
  assert bad_s["agreement"] == {"percent": 100.0, "n": 11, "excluded": 1}
  assert summary["judge_stats"]["judge"]["http_attempts"] == fake_openai.calls == 24
  assert "Agreement of http with oracle: bad 100.0% (n=11), ppo_de 100.0% (n=12)" in open(
      os.path.join(workdir, "summary.md")).read()
  # Lose the judgements (a crash before they were written): the request cache answers everything.
  for name in os.listdir(os.path.join(workdir, "judgements")):
    os.remove(os.path.join(workdir, "judgements", name))
  job.run(config(), workdir)
  assert fake_openai.calls == 24
  rows = [json.loads(l) for l in open(os.path.join(workdir, "judgements", "ppo_de.jsonl"))]
  assert all(r["cached"] for r in rows if r["judge"] == "judge")


def test_failed_judgements_heal_on_rerun_and_fail_the_run_meanwhile(inputs, fake_openai):
  tmp, base, ppo, bad, examples = inputs
  workdir = str(tmp / "work")

  def config(**http):
    c = _config("http", base, ppo, bad, examples)
    c.judge.http.base_url, c.judge.http.model, c.judge.http.backoff = fake_openai.base_url, "fake", 0.01
    c.judge.http.update(http)
    return c

  fake_openai.fault_fn = lambda n, body: ("status", 500)  # an outage
  with pytest.raises(judges_base.JudgingFailed, match=r"24 of 24 judgements failed \(100.0%; http: 24\), more "
                     r"than config.judge.max_failure_share=0.05"):
    job.run(config(max_retries=0), workdir)
  summary = json.load(open(os.path.join(workdir, "summary.json")))  # the reports are written first
  assert summary["systems"]["ppo_de"]["failures"] == {"http": 12}
  # Healthy again: the same command asks every failed judgement once, and the run passes.
  fake_openai.fault_fn = None
  calls = fake_openai.calls
  job.run(config(max_retries=0), workdir)
  rows = [json.loads(l) for name in ("ppo_de", "bad") for l in open(os.path.join(workdir, "judgements", f"{name}.jsonl"))]
  assert len(rows) == 24 and all(r["p_a"] is not None for r in rows) and fake_openai.calls == calls + 24
  # Partly failed: only the failed rows are asked again, the answered ones are reused as they are.
  os.remove(os.path.join(workdir, "judge_cache.jsonl"))
  path = os.path.join(workdir, "judgements", "ppo_de.jsonl")
  kept = [json.loads(l) for l in open(path)]
  for r in kept[:3]:
    r.update(p_a=None, error_kind="timeout", error="timeout: no answer")
  with open(path, "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in kept)
  calls = fake_openai.calls
  job.run(config(max_retries=0), workdir)
  assert fake_openai.calls == calls + 3  # paid again only because the cache was deleted by hand
  again = [json.loads(l) for l in open(path)]
  assert all(r["p_a"] is not None for r in again) and again[3:] == kept[3:]
  job.run(config(max_retries=0), workdir)  # all answered: nothing asked
  assert fake_openai.calls == calls + 3


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan")])
def test_failure_share_outside_0_1_is_refused_before_judging(inputs, share):
  tmp, base, ppo, bad, examples = inputs
  c = _config("oracle", base, ppo, bad, examples)
  c.judge2.max_failure_share = share
  with pytest.raises(ValueError, match=r"config.judge2.max_failure_share="):
    job.run(c, str(tmp / "w"))
  assert not os.path.exists(tmp / "w" / "judgements")


def test_command_line(inputs):
  tmp, base, ppo, bad, examples = inputs
  root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
  env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp), root, os.environ.get("PYTHONPATH", "")])}
  workdir = str(tmp / "cli")
  cmd = [sys.executable, "-m", "xlra.main", "eval", f"--config={root}/configs/eval.py:oracle", f"--workdir={workdir}",
         f"--config.baseline.outputs={base}", f"--config.system_outputs=ppo={ppo}", f"--config.examples={examples}",
         "--config.judge.oracle.quality_fn=qmod_eval:q", "--config.winrate.n_boot=200"]
  proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]
  summary = json.load(open(os.path.join(workdir, "summary.json")))
  assert summary["systems"]["ppo"]["overall"]["win_rate"] == pytest.approx(7.5 / 12)


def test_testbed_oracle_job(tmp_path):
  from xlra.data import testbed
  exs = [ex for lang in ("en", "vi") for task in testbed.TASKS
         for ex in testbed.generate_split(lang, task, "eval", 3, 0)]
  row = lambda ex, out: {"id": ex.id, "lang": ex.lang, "task": ex.task, "prompt": ex.prompt, "output": out}
  c = eval_config.get_config("oracle")
  c.examples = _write(tmp_path / "examples.jsonl", [ex.to_dict() for ex in exs])
  # Baseline: the reference with its last word dropped every second example, else the reference itself.
  c.baseline.outputs = _write(tmp_path / "sft.jsonl", [row(ex, ex.reference.rsplit(" ", 1)[0] if i % 2 else
                                                           ex.reference) for i, ex in enumerate(exs)])
  c.system_outputs = "ref=" + _write(tmp_path / "ref.jsonl", [row(ex, ex.reference) for ex in exs])
  c.winrate.n_boot = 200
  job.run(c, str(tmp_path / "work"))
  s = json.load(open(tmp_path / "work" / "summary.json"))["systems"]["ref"]
  q = [testbed.quality(ex, ex.reference) - testbed.quality(ex, ex.reference.rsplit(" ", 1)[0]) for ex in exs[1::2]]
  # Independent count from q itself: wins where the truncation lowered q, losses where it raised it.
  wins, losses = sum(d > 1e-9 for d in q), sum(d < -1e-9 for d in q)
  assert (s["overall"]["wins"], s["overall"]["losses"], s["overall"]["n"]) == (wins, losses, len(exs))
  assert wins > 0 and set(s["per_lang"]) == {"en", "vi"}
