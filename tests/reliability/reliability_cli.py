"""Running the real `xlra` command line in a subprocess, killing it with SIGKILL when the workdir
shows a chosen moment (a checkpoint being written, the first one finished, n steps logged, n
judgements cached), and reading what runs leave behind for a bitwise comparison.

Every run's combined stdout/stderr goes to LOGDIR/NAME.log (its tail is shown when a run fails),
so a test can also grep everything a run printed.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import signal
import subprocess
import sys
import time
from typing import Callable

import numpy as np

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
POLL_S = 0.02

# A kill condition looks at the workdir and says what it saw ("checkpoint 2 written"), or None.
Condition = Callable[[str], "str | None"]


def config_module(name: str):
  """configs/NAME.py as a module (configs/ is not a package)."""
  path = os.path.join(REPO, "configs", f"{name}.py")
  spec = importlib.util.spec_from_file_location(f"reliability_configs_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def shared_data_config():
  """The ci testbed data cut to one language and task: what every job of the suite trains on."""
  data = config_module("sft").testbed_data("ci")
  data.languages, data.tasks = ("en",), ("dialog",)
  return data


def data_flags(data_workdir: str) -> list[str]:
  """Overrides that make a job read the shared data (same fingerprint, so nothing is regenerated)."""
  data = shared_data_config()
  flags = [f"--config.data_dir={data_workdir}", "--config.data.languages=en", "--config.data.tasks=dialog",
           f"--config.data.tokenizer.vocab_size={data.tokenizer.vocab_size}"]
  return flags + [f"--config.data.sizes.{k}={v}" for k, v in data.sizes.items()]


@dataclasses.dataclass
class Job:
  """One command line: `python -m xlra.main JOB --config=configs/CONFIG --workdir=WORKDIR FLAGS`."""
  name: str  # for the log file
  job: str
  config: str  # e.g. "sft.py:ci"
  workdir: str
  flags: list[str]
  logdir: str
  env: dict[str, str] | None = None
  starts: int = 0

  def argv(self) -> list[str]:
    return [sys.executable, "-m", "xlra.main", self.job, f"--config={os.path.join(REPO, 'configs', self.config)}",
            f"--workdir={self.workdir}", *self.flags]

  @property
  def log(self) -> str:
    return os.path.join(self.logdir, f"{self.name}.log")

  def start(self) -> subprocess.Popen:
    os.makedirs(self.logdir, exist_ok=True)
    env = dict(os.environ, JAX_PLATFORMS="cpu", **(self.env or {}))
    self.starts += 1
    out = open(self.log, "a", encoding="utf-8")
    out.write(f"\n===== start {self.starts}: {' '.join(self.argv())}\n")
    out.flush()
    proc = subprocess.Popen(self.argv(), cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    out.close()
    return proc

  def tail(self, n: int = 60) -> str:
    with open(self.log, encoding="utf-8", errors="replace") as f:
      return "".join(f.readlines()[-n:])

  def finish(self, proc: subprocess.Popen, timeout: float = 600) -> None:
    """Wait for a started run; fail with the log tail unless it exits 0."""
    try:
      rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
      os.kill(proc.pid, signal.SIGKILL)
      proc.wait()
      raise AssertionError(f"{self.name} did not finish within {timeout}s; log tail:\n{self.tail()}") from None
    if rc != 0:
      raise AssertionError(f"{self.name} exited with {rc}; log tail:\n{self.tail()}")

  def run(self, timeout: float = 600) -> None:
    self.finish(self.start(), timeout)

  def run_and_kill(self, when: Condition, timeout: float = 600) -> str:
    """Start, SIGKILL the moment `when(workdir)` holds, and return what it saw. Fails if the run
    ends (or times out) before that: the kill was never tried."""
    proc = self.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      seen = when(self.workdir)
      if seen:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        with open(self.log, "a", encoding="utf-8") as f:
          f.write(f"\n===== SIGKILL: {seen}\n")
        return seen
      if proc.poll() is not None:
        raise AssertionError(f"{self.name} ended (rc {proc.returncode}) before the kill point; log tail:\n"
                             f"{self.tail()}")
      time.sleep(POLL_S)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    raise AssertionError(f"{self.name}: kill point not reached within {timeout}s; log tail:\n{self.tail()}")


# -- kill conditions --------------------------------------------------------------------------------

def _entries(path: str) -> list[str]:
  try:
    return os.listdir(path)
  except FileNotFoundError:
    return []


def checkpoint_written(min_step: int = 1, subdir: str = "checkpoints") -> Condition:
  """A finished (renamed into place) orbax checkpoint of at least `min_step`."""
  def cond(workdir: str) -> str | None:
    steps = [int(e) for e in _entries(os.path.join(workdir, subdir)) if e.isdigit() and int(e) >= min_step]
    return f"{subdir}/{min(steps)} written" if steps else None
  return cond


def checkpoint_in_flight(subdir: str = "checkpoints") -> Condition:
  """An orbax checkpoint being written (its temporary directory exists)."""
  def cond(workdir: str) -> str | None:
    tmp = [e for e in _entries(os.path.join(workdir, subdir)) if "tmp" in e]
    return f"{subdir}/{tmp[0]} being written" if tmp else None
  return cond


def path_exists(relpath: str, what: str) -> Condition:
  def cond(workdir: str) -> str | None:
    return what if os.path.exists(os.path.join(workdir, relpath)) else None
  return cond


def count_lines(path: str) -> int:
  try:
    with open(path, "rb") as f:
      return f.read().count(b"\n")
  except FileNotFoundError:
    return 0


def lines_written(relpath: str, n: int, what: str) -> Condition:
  """At least `n` complete lines in WORKDIR/relpath (metrics rows, cached judgements, ...)."""
  def cond(workdir: str) -> str | None:
    have = count_lines(os.path.join(workdir, relpath))
    return f"{have} {what}" if have >= n else None
  return cond


def train_steps_logged(n: int) -> Condition:
  def cond(workdir: str) -> str | None:
    path = os.path.join(workdir, "metrics.jsonl")
    try:
      with open(path, encoding="utf-8") as f:
        steps = sum('"split": "train"' in line for line in f if line.endswith("\n"))
    except FileNotFoundError:
      return None
    return f"{steps} train steps logged" if steps >= n else None
  return cond


def any_of(*conds: Condition) -> Condition:
  def cond(workdir: str) -> str | None:
    for c in conds:
      seen = c(workdir)
      if seen:
        return seen
    return None
  return cond


# -- what a run leaves --------------------------------------------------------------------------------

def model_arrays(model_dir: str) -> dict[str, np.ndarray]:
  """Every parameter of an exported model directory (xlra.models.checkpoint_io), by path."""
  from flax import nnx

  from xlra.models.checkpoint_io import load_model

  model = load_model(model_dir)
  flat = nnx.state(model, nnx.Param).flat_state()
  return {"/".join(map(str, path)): np.asarray(v[...]) for path, v in flat}


def assert_same_arrays(got: dict[str, np.ndarray], want: dict[str, np.ndarray], what: str) -> None:
  """Bitwise equality (same keys, dtypes, shapes and bytes)."""
  assert sorted(got) == sorted(want), f"{what}: parameter names differ"
  for k in want:
    a, b = got[k], want[k]
    assert a.dtype == b.dtype and a.shape == b.shape, f"{what}: {k} is {a.dtype}{a.shape}, want {b.dtype}{b.shape}"
    if not np.array_equal(a, b):
      diff = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
      raise AssertionError(f"{what}: {k} differs from the uninterrupted run (max abs diff {diff:g})")


def eval_inputs(directory, n: int) -> tuple[str, str]:
  """Baseline and two systems' outputs (JSONL, n prompts) for `xlra eval`: (baseline path, the
  --config.system_outputs value). Each system its own word and lengths, so no two questions repeat."""
  from xlra import files

  def write(name, words):
    path = os.path.join(str(directory), f"{name}.jsonl")
    files.write_jsonl(path, [{"id": f"q{i}", "lang": "de" if i % 2 else "en", "prompt": f"prompt {i}",
                              "output": " ".join([name] * words(i))} for i in range(n)])
    return path
  base = write("sft", lambda i: 3)
  a, b = write("a", lambda i: 1 + i % 5), write("b", lambda i: 2 + (3 * i) % 4)
  return base, f"a={a},b={b}"


def key_chars_written(paths: list[str], key: str) -> dict[str, int]:
  """For each file that holds a piece (8+ characters) of `key`: the longest piece's length."""
  from eval.conftest import leaked_key_chars  # tests/ is on sys.path

  found = {}
  for path in paths:
    with open(path, "rb") as f:
      n = leaked_key_chars(f.read().decode("utf-8", "replace"), key)
    if n:
      found[path] = n
  return found


def files_under(directory: str) -> list[str]:
  return [os.path.join(d, n) for d, _, names in os.walk(directory) for n in names]
