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
  assert "| **de** | *60.0 [52.0, 68.0] | 70.0 [60.0, 80.0] |" in md
  assert "55.0 [45.0, 65.0] ~" in md  # the interval includes 50%
  assert "Cross-lingual mean: **62.5%** over 2 pairs" in md  # (70 + 55) / 2
  assert "de: de (monolingual), en: de" in md
  assert "excludes 50%: 1 of 2 above it (de->en), 0 below it; the rest" in md  # en->de's interval holds 50%
  grid["en"]["de"] = cell(0.4, 0.35, 0.45)
  assert "excludes 50%: 1 of 2 above it (de->en), 1 below it (en->de);" in report.winrate_table(grid, ["de", "en"],
                                                                                               ["de", "en"])


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
  assert set(res["rm_accuracy_by_error"]) == {"de", "en"} and len(res["n_by_error"]) == 9
  assert all(0 < n <= 2 * 16 for n in res["n_by_error"].values()), res["n_by_error"]
  assert all(0 <= a <= 1 for row in res["rm_accuracy_by_error"].values() for a in row.values())
  assert "## Reward-model accuracy by error type" in md and "| RM \\ error | drop | swap |" in md
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
