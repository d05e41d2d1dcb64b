"""The main job: plan validation, stage caching, the report, and the `ci` preset end to end."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
from ml_collections import config_flags  # noqa: F401  (configs are plain modules loaded below)

from xlra.files import read_jsonl
from xlra.pipeline import report
from xlra.pipeline.runner import StageRunner

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _config(arg="ci"):
  import importlib.util
  spec = importlib.util.spec_from_file_location("pipeline_cfg", os.path.join(ROOT, "configs", "pipeline.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config(arg)


@pytest.mark.parametrize("field,value,needle", [
    ("languages", ("de", "xx"), "config.languages"),
    ("sources", "en,fr", "config.sources"),
    ("ppo.pairs", "en_de", "config.ppo.pairs"),
    ("ppo.pairs", "en-tr", "config.ppo.pairs"),  # tr is not a target of the ci preset
    ("baselines.source", "vi", "config.baselines.source"),
    ("baselines.targets", "en", "config.baselines.targets"),  # the source itself
])
def test_plan_rejects_bad_grid_with_the_field_named(field, value, needle):
  from xlra.pipeline.stages import make_plan
  c = _config()
  node, _, leaf = field.rpartition(".")
  target = c
  for part in filter(None, node.split(".")):
    target = target[part]
  target[leaf] = value
  with pytest.raises(ValueError, match=needle.replace(".", r"\.")):
    make_plan(c)


def test_plan_reads_comma_separated_lists_from_the_command_line():
  from xlra.pipeline.stages import make_plan
  c = _config()
  c.languages = ("de,en",)  # what --config.languages=de,en parses to for a tuple field
  c.sources = "en"
  plan = make_plan(c)
  assert plan.languages == ("de", "en") and plan.sources == ("en",)


def test_plan_lists_every_stage_once():
  from xlra.pipeline.stages import make_plan
  c = _config()
  plan = make_plan(c)
  names = [n for n, _ in plan.stages(c)]
  assert len(names) == len(set(names))
  assert names[:3] == ["data", "base", "sft/de"]
  assert {"rm/de", "rm/en", "rm_accuracy", "bon/de", "bon/en", "ppo/en-de", "baseline/translate_train/de",
          "baseline/no_target_sft/de"} <= set(names)


def test_stage_runner_skips_finished_stages_and_keeps_their_results(tmp_path):
  calls = []
  plan = [("a", 1.0), ("b", 2.0)]
  out = io.StringIO()
  r = StageRunner(str(tmp_path), plan, out=out)
  assert r.run("a", lambda: calls.append("a") or {"x": 1}) == {"x": 1}
  r2 = StageRunner(str(tmp_path), plan, out=out)  # a rerun: "a" is finished, "b" is not
  assert r2.run("a", lambda: calls.append("a2") or {"x": 2}) == {"x": 1}
  assert r2.run("b", lambda: calls.append("b") or [3]) == [3]
  assert calls == ["a", "b"]
  assert "done earlier" in out.getvalue() and "remaining" in out.getvalue()
  with pytest.raises(KeyError, match="not in the pipeline plan"):
    r2.run("c", lambda: None)


def test_stage_runner_refuses_a_finished_stage_with_another_config(tmp_path):
  plan = [("a", 1.0)]
  r = StageRunner(str(tmp_path), plan, out=io.StringIO())
  r.run("a", lambda: 1, {"sft": {"num_steps": 250, "lr": 1e-3}, "langs": ("de", "en")})
  again = StageRunner(str(tmp_path), plan, out=io.StringIO())
  assert again.run("a", lambda: 2, {"sft": {"num_steps": 250, "lr": 1e-3}, "langs": ["de", "en"]}) == 1
  with pytest.raises(ValueError, match=r"stage a finished .* \(changed: sft.num_steps\); use a new --workdir"):
    again.run("a", lambda: 2, {"sft": {"num_steps": 500, "lr": 1e-3}, "langs": ["de", "en"]})


def test_winrate_table_marks_diagonal_and_unsure_cells():
  cell = lambda w, lo, hi: {"win_rate": w, "ci_low": lo, "ci_high": hi, "n": 10}
  grid = {"de": {"de": cell(0.6, 0.52, 0.68), "en": cell(0.7, 0.6, 0.8)},
          "en": {"de": cell(0.55, 0.45, 0.65), "en": cell(0.4, 0.3, 0.49)}}
  md = report.winrate_table(grid, ["de", "en"], ["de", "en"])
  assert "| **de** | *60.0 [52.0, 68.0] n=10 | 70.0 [60.0, 80.0] n=10 |" in md
  assert "55.0 [45.0, 65.0] n=10 ~" in md  # the interval includes 50%
  assert "Cross-lingual mean: **62.5%** over 2 pairs" in md  # (70 + 55) / 2
  assert "de: de (monolingual), en: de" in md
  assert "excludes 50%: 1 of 2 above it (de->en), 0 below it; the rest" in md  # en->de's interval holds 50%
  grid["en"]["de"] = cell(0.4, 0.35, 0.45)
  assert "excludes 50%: 1 of 2 above it (de->en), 1 below it (en->de);" in report.winrate_table(grid, ["de", "en"],
                                                                                               ["de", "en"])
  # Failed judgements are shown per cell by kind; a cell whose judgements all failed names no best source.
  grid["en"]["de"] = {**cell(0.4, 0.35, 0.45), "failures": 3, "failures_by_kind": {"http": 2, "parse": 1}}
  grid["de"]["en"] = {**cell(float("nan"), float("nan"), float("nan")), "n": 0, "failures": 10,
                      "failures_by_kind": {"timeout": 10}}
  md = report.winrate_table(grid, ["de", "en"], ["de", "en"])
  assert "40.0 [35.0, 45.0] n=10 (3 failed: http 2, parse 1)" in md and "(10 failed: timeout 10)" in md
  assert "Cross-lingual mean: **40.0%** over 1 pairs" in md and "en: en (monolingual)" in md


def test_controls_table_places_every_rm_between_placebo_and_ceiling():
  cell = lambda w, lo, hi: {"win_rate": w, "ci_low": lo, "ci_high": hi, "n": 10, "gold_q": w / 2}
  controls = {"de": {"placebo": cell(0.52, 0.44, 0.6), "shortest": cell(0.55, 0.47, 0.63),
                     "longest": cell(0.4, 0.32, 0.48), "oracle": cell(0.9, 0.85, 0.95)},
              "en": {"placebo": cell(0.62, 0.55, 0.7), "shortest": cell(0.7, 0.6, 0.8),
                     "longest": cell(0.3, 0.2, 0.4), "oracle": cell(0.6, 0.5, 0.7)}}
  bon = {"de": {"de": cell(0.58, 0.5, 0.66), "en": cell(0.65, 0.57, 0.73)},
         "en": {"de": cell(0.6, 0.52, 0.68), "en": cell(0.66, 0.58, 0.74)}}
  md = report.controls_table(controls, bon, ["de", "en"], ["de", "en"])
  assert "| target | placebo RM | shortest-of-n | longest-of-n | RM de | RM en | oracle (best q) |" in md
  assert "| **de** | 52.0 [44.0, 60.0] n=10 | 55.0 [47.0, 63.0] n=10 | 40.0 [32.0, 48.0] n=10 | " \
         "*58.0 [50.0, 66.0] n=10 | 60.0 [52.0, 68.0] n=10 | 90.0 [85.0, 95.0] n=10 |" in md
  # en->de (60) beats de's better length rule (55); de->en (65) does not beat en's shortest-of-n (70).
  assert "Cross-lingual RMs above the better length rule of their target: 1 of 2 (en->de)." in md
  assert "Placebo RM intervals that include 50%: 1 of 2 targets" in md  # en's placebo [55, 70] excludes it
  assert "Targets where the oracle pick is at or above every RM: 1 of 2." in md  # en: 0.66 > oracle 0.6
  meta = {"de": {"gold_q_sample": 0.2, "q_variance": {"within_var": 0.5, "share": {"facts": 0.3, "visible": 0.6,
                                                                                 "p_no_end": 0.4}}}}
  vt = report.variance_table(meta, controls, bon, ["de", "en"], ["de"])
  assert "| **de** | 0.500 | 30.0% | 60.0% | 0.200 | 0.290 | 0.300 | 0.450 |" in vt
  assert "| target | p_no_end |" in vt and "| **de** | 40.0 |" in vt


def test_error_table_splits_transfer_by_pair_and_by_visible_and_fact_kinds():
  by_pair = {"de": {"de": {"no_end": 1.0, "swap": 0.5}, "en": {"no_end": 0.8, "swap": 0.4}},
             "en": {"de": {"no_end": 0.6, "swap": 0.6}, "en": {"no_end": 0.9, "swap": 0.7}}}
  pooled = {"de": {"no_end": 0.9, "swap": 0.45}, "en": {"no_end": 0.75, "swap": 0.65}}
  md = report.error_table(pooled, {"no_end": 80, "swap": 80}, ["de", "en"], by_pair)
  assert "| de->en | 80.0 | 40.0 |" in md and "| en->en * | 90.0 | 70.0 |" in md and md.count("_probes_") == 1
  # visible (no_end): own (100 + 90) / 2, cross (80 + 60) / 2; facts (swap): own (50 + 70) / 2, cross (40 + 60) / 2.
  assert ("visible in the answer or against the request: own language 95.0%, cross-lingual 70.0%; over the fact "
          "kinds: own language 60.0%, cross-lingual 50.0%.") in md


def test_failed_judging_fails_its_stage_and_the_rerun_asks_again(tmp_path):
  """A judge that fails more than config.judge.max_failure_share: the stage raises after writing its rows,
  the runner does not mark it done, and a rerun with the judge healthy judges everything and finishes."""

  from xlra.data.testbed import generate_split
  from xlra.eval.judges.base import Judge, JudgeResult, JudgingFailed
  from xlra.pipeline.stages import Pipeline

  class Outage(Judge):
    def __init__(self, down: bool):
      super().__init__()
      self.down = down

    def _judge(self, requests):
      return [JudgeResult.failure("http", "HTTP 503") if self.down else JudgeResult(p_a=1.0) for _ in requests]

  examples = generate_split("de", "dialog", "eval", 4, 0)
  p = Pipeline.__new__(Pipeline)
  p.config, p.workdir = _config(), str(tmp_path)
  p.runner = StageRunner(str(tmp_path), [("bon/de", 1.0)], out=io.StringIO())
  stage = lambda: p.judge_against("bon/en-de", examples, ["x"] * 4, [["y"]] * 4)
  p._judge = Outage(down=True)
  with pytest.raises(JudgingFailed, match=r"judging bon/en-de: 4 of 4 judgements failed .*http: 4.*"
                                          r"config\.judge\.max_failure_share=0\.05"):
    p.runner.run("bon/de", stage)
  rows = read_jsonl(os.path.join(tmp_path, "judgements", "bon_en-de.jsonl"))
  assert [r["error_kind"] for r in rows] == ["http"] * 4  # written before the stage failed
  p.runner = StageRunner(str(tmp_path), [("bon/de", 1.0)], out=io.StringIO())
  p._judge = Outage(down=False)
  cell = p.runner.run("bon/de", stage)  # not "done earlier": asked again
  assert cell["win_rate"] == 1.0 and cell["failures"] == 0 and cell["failures_by_kind"] == {}
  assert p._judge.stats["requests"] == 4


@pytest.mark.slow
def test_ci_preset_end_to_end_and_rerun_skips_everything(tmp_path):
  """`xlra pipeline --config=configs/pipeline.py:ci` through the real CLI: results.json has the
  documented schema, the report and PNGs exist, and a second run redoes no stage."""
  workdir = str(tmp_path / "ci")
  cmd = [sys.executable, "-m", "xlra.main", "pipeline", f"--config={ROOT}/configs/pipeline.py:ci", f"--workdir={workdir}"]
  env = {**os.environ, "XLRA_COMPILATION_CACHE": str(tmp_path / "jax_cache")}
  first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1500)
  assert first.returncode == 0, first.stderr[-3000:]
  res = json.load(open(os.path.join(workdir, "results.json")))
  langs = res["config"]["languages"]
  assert langs == ["de", "en"]
  for s in langs:
    for t in langs:
      cell = res["bon"][s][t]
      assert set(cell) >= {"win_rate", "ci_low", "ci_high", "n"}
      assert 0 <= cell["ci_low"] <= cell["win_rate"] <= cell["ci_high"] <= 1 and cell["n"] == 8
      assert 0 <= res["rm_accuracy"][s][t] <= 1
      assert cell["judgements"] == 16  # ci: each prompt judged against 2 samples of the target SFT model
  # Every best-of-n system of a target, the baselines included, meets the same samples of the target's
  # SFT model (the no-target-SFT policy is judged against the target SFT, not against itself).
  drawn = {r["id"]: r["outputs"] for r in read_jsonl(os.path.join(workdir, "bon", "de", "baseline.jsonl"))}
  assert len(drawn) == 8 and all(len(o) == 2 for o in drawn.values())
  judged = [f for f in os.listdir(os.path.join(workdir, "judgements")) if f.startswith("bon") and f.endswith("-de.jsonl")]
  assert any("no_target_sft" in f for f in judged) and any("translate_train" in f for f in judged), judged
  for f in judged:
    for row in read_jsonl(os.path.join(workdir, "judgements", f)):
      assert row["baseline"] == drawn[row["id"]][row["baseline_sample"]], f
  assert set(res["ppo"]) == {"en"} and set(res["ppo"]["en"]) == {"de"}
  assert {"win_rate", "ci_low", "ci_high", "n"} <= set(res["ppo"]["en"]["de"])
  assert res["timing"].keys() >= {"data", "base", "sft/de", "rm/en", "bon/de", "ppo/en-de"}
  assert all(v >= 0 for v in res["timing"].values())
  md = open(os.path.join(workdir, "report.md")).read()
  assert "| RM source \\ target | de | en |" in md and "## Reward-model accuracy" in md
  # Every RM probed on every error kind of the dialog task, pooled over both targets' validation prompts.
  assert set(res["rm_accuracy_by_error"]) == {"de", "en"} and len(res["n_by_error"]) == 11
  assert all(0 < n <= 2 * 16 for n in res["n_by_error"].values()), res["n_by_error"]
  assert all(0 <= a <= 1 for row in res["rm_accuracy_by_error"].values() for a in row.values())
  assert "## Reward-model accuracy by error type" in md and "| RM \\ error | drop | swap |" in md
  assert set(res["rm_accuracy_by_error_pair"]["en"]) == {"de", "en"} and "| en->de |" in md
  # Controls per target, each a judged win-rate cell; where the SFT samples' q varies.
  for t in langs:
    assert set(res["controls"][t]) == {"placebo", "shortest", "longest", "oracle"}
    for c in res["controls"][t].values():
      assert 0 <= c["ci_low"] <= c["win_rate"] <= c["ci_high"] <= 1 and c["n"] == 8
    assert res["controls"][t]["oracle"]["gold_q"] >= max(res["bon"][s][t]["gold_q"] for s in langs)
    share = res["bon_meta"][t]["q_variance"]["share"]
    assert {"facts", "visible", "p_no_end"} <= set(share)
  assert "## Controls: placebo, length rules, oracle ceiling" in md and "## Where the SFT policy's samples differ" in md
  for png in ("bon_winrate.png", "ppo_winrate.png", "rm_accuracy.png", "ppo_curves.png"):
    with open(os.path.join(workdir, png), "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  assert "[pipeline]" in first.stdout and "remaining" in first.stdout

  second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
  assert second.returncode == 0, second.stderr[-3000:]
  n_stages = len(res["timing"])
  assert second.stdout.count("done earlier") == n_stages, second.stdout
  assert json.load(open(os.path.join(workdir, "results.json")))["bon"] == res["bon"]
  # A changed RM config must not silently reuse the finished RMs (and everything after them).
  third = subprocess.run(cmd + ["--config.rm.num_steps=13"], capture_output=True, text=True, env=env, timeout=600)
  assert third.returncode != 0 and "stage rm/de finished" in third.stderr and "rm.num_steps" in third.stderr, \
      third.stderr[-2000:]
