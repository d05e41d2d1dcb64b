"""SIGKILL the real command line (`python -m xlra.main JOB ...`) mid-run, start it again with the same
command, and compare with an uninterrupted run of the same command: final parameters bitwise, and
every logged training step present exactly once with the same loss.

Kill points: SFT while a checkpoint is being written, then again while it exports its model; RM at a
random logged step; PPO after its first checkpoint; the evaluation halfway through its judgements
(HTTP judge against a local fake server); the pipeline inside its RM stage. The uninterrupted
reference of each job runs alongside its killed twin (two processes on two cores).
"""

from __future__ import annotations

import os
import random

import pytest

import reliability_tally as tally
from reliability_cli import (Job, any_of, assert_same_arrays, checkpoint_in_flight, checkpoint_written,
                             count_lines, data_flags, eval_inputs, lines_written, model_arrays, path_exists,
                             train_steps_logged)
from xlra import files

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("XLRA_RELIABILITY_SEED", "0"))  # the random kill points; printed in the counts
SFT_STEPS, RM_STEPS, PPO_ITERS = 8, 6, 4
TRAIN_FLAGS = ["--config.batch_size=8", "--config.eval_batch_size=8", "--config.max_len=208",
               "--config.log_every=1", "--config.peak_flops=1e9", "--config.progress_every_s=0",
               "--config.languages=en"]
VOLATILE = ("time", "tokens_per_s", "mfu")  # wall-clock metrics: differ between any two runs


def _steps(workdir: str, split: str) -> dict[int, dict]:
  """step -> metrics row without the wall-clock fields; asserts no step is logged twice."""
  rows = [r for r in files.read_jsonl(os.path.join(workdir, "metrics.jsonl")) if r.get("split") == split]
  steps = [r["step"] for r in rows]
  assert len(steps) == len(set(steps)), f"{workdir}: {split} steps logged twice: {steps}"
  return {r["step"]: {k: v for k, v in r.items() if k not in VOLATILE and not k.startswith("time/")} for r in rows}


def _pair(tmp_path, name: str, job: str, config: str, flags: list[str], env: dict) -> tuple[Job, Job]:
  logs = str(tmp_path / "logs")
  return (Job(f"{name}_ref", job, config, str(tmp_path / f"{name}_ref"), flags, logs, env),
          Job(f"{name}_killed", job, config, str(tmp_path / f"{name}_killed"), flags, logs, env))


def _kill(job: Job, when, label: str) -> str:
  seen = job.run_and_kill(when)
  tally.add(kills_tried=1)
  tally.note(f"{label}: SIGKILL when {seen}")
  return seen


def _killed_beside_ref(tmp, name: str, job: str, config: str, flags: list[str], env: dict,
                       kills: list[tuple]) -> tuple[Job, Job]:
  """The uninterrupted run in the background while its twin is killed at each (condition, label)
  in turn, restarted with the same command each time, and finally run to the end."""
  ref, killed = _pair(tmp, name, job, config, flags, env)
  ref_proc = ref.start()
  for when, label in kills:
    _kill(killed, when, label)
  killed.run()
  ref.finish(ref_proc)
  return ref, killed


def _assert_same_model(ref: Job, killed: Job, what: str, model_dir: str = "model") -> None:
  assert_same_arrays(model_arrays(os.path.join(killed.workdir, model_dir)),
                     model_arrays(os.path.join(ref.workdir, model_dir)), what)


@pytest.fixture(scope="module")
def sft_runs(tmp_path_factory, shared_data, cli_env):
  tmp = tmp_path_factory.mktemp("sft")
  flags = [*data_flags(shared_data), *TRAIN_FLAGS, f"--config.num_steps={SFT_STEPS}", "--config.checkpoint_every=2",
           "--config.eval_every=4"]
  return _killed_beside_ref(tmp, "sft", "sft", "sft.py:ci", flags, cli_env, [
      (any_of(checkpoint_in_flight(), checkpoint_written(1)), "sft #1"),
      (path_exists("model", "the model export started"), "sft #2")])


def test_sft_killed_twice_ends_bitwise_equal(sft_runs):
  ref, killed = sft_runs
  _assert_same_model(ref, killed, "sft after two kills")
  for split in ("train", "val"):
    got, want = _steps(killed.workdir, split), _steps(ref.workdir, split)
    assert got == want, f"sft {split} metrics differ after the kills"
  assert sorted(_steps(ref.workdir, "train")) == list(range(1, SFT_STEPS + 1))
  assert os.listdir(os.path.join(killed.workdir, "best")) == os.listdir(os.path.join(ref.workdir, "best"))
  assert not [e for e in os.listdir(killed.workdir) if ".tmp." in e]  # no half-written file left over
  tally.add(kills_survived=2)


@pytest.fixture(scope="module")
def rm_runs(tmp_path_factory, shared_data, cli_env, sft_runs):
  tmp = tmp_path_factory.mktemp("rm")
  flags = [*data_flags(shared_data), *TRAIN_FLAGS, f"--config.num_steps={RM_STEPS}", "--config.checkpoint_every=2",
           "--config.eval_every=3", f"--config.init_checkpoint={sft_runs[0].workdir}"]
  at = random.Random(SEED).randint(1, RM_STEPS)
  return _killed_beside_ref(tmp, "rm", "rm", "rm.py:ci", flags, cli_env,
                            [(train_steps_logged(at), f"rm (random step {at}, seed {SEED})")])


def test_rm_killed_at_a_random_step_ends_bitwise_equal(rm_runs):
  ref, killed = rm_runs
  _assert_same_model(ref, killed, "rm after a kill")
  assert _steps(killed.workdir, "train") == _steps(ref.workdir, "train")
  stats = lambda w: files.read_json(os.path.join(w, "model", "reward_stats.json"))
  assert stats(killed.workdir) == stats(ref.workdir)
  tally.add(kills_survived=1)


def test_ppo_killed_after_its_first_checkpoint_ends_bitwise_equal(tmp_path, shared_data, cli_env, sft_runs, rm_runs):
  flags = [*data_flags(shared_data), f"--config.policy_checkpoint={sft_runs[0].workdir}",
           f"--config.rm_checkpoint={rm_runs[0].workdir}", "--config.lang=en", "--config.task=dialog",
           f"--config.iterations={PPO_ITERS}", "--config.prompts_per_iteration=8", "--config.max_new_tokens=8",
           "--config.eval_prompts=4", "--config.eval_every=2", "--config.checkpoint_every=1", "--config.epochs=1",
           "--config.minibatches=1", "--config.value_warmup_iterations=1"]
  ref, killed = _killed_beside_ref(tmp_path, "ppo", "ppo", "ppo.py:tiny", flags, cli_env,
                                   [(checkpoint_written(1), "ppo")])
  _assert_same_model(ref, killed, "ppo after a kill")
  assert _steps(killed.workdir, "train") == _steps(ref.workdir, "train")
  assert _steps(killed.workdir, "eval") == _steps(ref.workdir, "eval")
  outputs = lambda w: files.read_jsonl(os.path.join(w, "outputs", "eval.jsonl"))
  assert outputs(killed.workdir) == outputs(ref.workdir)
  tally.add(kills_survived=1)


def test_eval_killed_midway_loses_and_repeats_no_judgement(tmp_path, cli_env, fake_judge):
  n = 24
  base, systems = eval_inputs(tmp_path, n)
  flags = [f"--config.baseline.outputs={base}", f"--config.system_outputs={systems}",
           f"--config.judge.http.base_url={fake_judge.base_url}", "--config.judge.http.model=fake",
           "--config.judge.http.max_concurrency=2", "--config.judge.http.backoff=0.01", "--config.chunk=4",
           "--config.winrate.n_boot=200"]
  ref, killed = _pair(tmp_path, "eval", "eval", "eval.py:http", flags, cli_env)
  fake_judge.fault_fn = lambda call, body: ("sleep", 0.05)  # slow enough to be caught midway
  ref.run()
  answered = len(fake_judge.answered)
  assert answered == 2 * n  # two systems, one order per example
  cache = "judge_cache.jsonl"
  _kill(killed, lines_written(cache, n, "judgements cached"), "eval")
  before = count_lines(os.path.join(killed.workdir, cache))
  assert 0 < before < 2 * n, "the kill should land midway through the judgements"
  killed.run()
  asked_again = len(fake_judge.answered) - answered - 2 * n  # questions the second life asked twice
  keys = [r["key"] for r in files.read_jsonl(os.path.join(killed.workdir, cache))]
  lost = 2 * n - len(set(keys))
  duplicated = len(keys) - len(set(keys))
  tally.add(judgements_expected=2 * n, judgements_lost=lost, judgements_duplicated=duplicated)
  assert lost == 0 and duplicated == 0
  assert 0 <= asked_again <= 2  # only requests in flight at the kill (concurrency 2) may be asked again
  for name in ("a", "b"):
    rows = lambda w: [{k: v for k, v in r.items() if k != "cached"}
                      for r in files.read_jsonl(os.path.join(w, "judgements", f"{name}.jsonl"))]
    assert rows(killed.workdir) == rows(ref.workdir) and len(rows(ref.workdir)) == n
    assert all(r["error_kind"] is None for r in rows(killed.workdir))
  summary = lambda w: {k: v for k, v in files.read_json(os.path.join(w, "summary.json")).items() if k != "judge_stats"}
  assert summary(killed.workdir) == summary(ref.workdir)
  tally.add(kills_survived=1)


PIPELINE_FLAGS = ["--config.languages=en", "--config.data.languages=en", "--config.ppo.pairs=",
                  "--config.baselines.targets=", "--config.bon.n=2", "--config.bon.eval_prompts=4",
                  "--config.bon.max_new_tokens=8", "--config.winrate.n_boot=100"] + [
    f"--config.{stage}.{field}={value}" for stage in ("base", "sft", "rm")
    for field, value in (("num_steps", 4), ("checkpoint_every", 2), ("eval_every", 2))]


def _results(workdir: str) -> dict:
  """results.json without its wall-clock fields."""
  r = files.read_json(os.path.join(workdir, "results.json"))
  r.pop("timing")
  for meta in r["bon_meta"].values():
    meta.pop("seconds")
  return r


def test_pipeline_killed_inside_a_stage_resumes_and_ends_bitwise_equal(tmp_path, cli_env):
  """Killed in its RM stage (data, base LM and SFT finished): the rerun skips the finished stages,
  resumes the RM from its checkpoint, and the study ends as an uninterrupted one."""
  ref, killed = _killed_beside_ref(tmp_path, "pipeline", "pipeline", "pipeline.py:ci", PIPELINE_FLAGS, cli_env, [
      (checkpoint_written(2, os.path.join("rm", "en", "checkpoints")), "pipeline (inside rm/en)")])
  log = killed.tail(400)
  assert "base: done earlier" in log and "sft/en: done earlier" in log and "rm/en: running" in log
  for model in ("base", "sft/en", "rm/en"):
    _assert_same_model(ref, killed, f"pipeline {model} after a kill", os.path.join(model, "model"))
  assert _results(killed.workdir) == _results(ref.workdir)
  for name in ("candidates.jsonl", "baseline.jsonl"):
    rows = lambda w: files.read_jsonl(os.path.join(w, "bon", "en", name))  # noqa: E731
    assert rows(killed.workdir) == rows(ref.workdir)
  tally.add(kills_survived=1)
