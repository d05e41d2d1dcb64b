"""Reliability suite: kills, corrupted checkpoints, bad input, numerics, judging under faults, secrets.

At the end of a session that ran any of it, the counts are printed (kills survived of kills tried,
corruptions survived, bad inputs tried, judgements lost).
"""

from __future__ import annotations

import os

import pytest
import reliability_cli
import reliability_tally


def pytest_terminal_summary(terminalreporter, exitstatus, config):
  if not reliability_tally.TALLY and not reliability_tally.NOTES:
    return
  terminalreporter.section("reliability counts")
  for line in reliability_tally.summary_lines():
    terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def shared_data(tmp_path_factory) -> str:
  """A workdir whose data/ (ci testbed, en, dialog) every job of the suite reads via config.data_dir."""
  from xlra.data.job import prepare

  workdir = str(tmp_path_factory.mktemp("shared_data"))
  prepare(reliability_cli.shared_data_config(), workdir)
  return workdir


@pytest.fixture(scope="session")
def compile_cache_dir(tmp_path_factory) -> str:
  return str(tmp_path_factory.mktemp("jax_cache"))


@pytest.fixture(scope="session")
def cli_env(compile_cache_dir) -> dict[str, str]:
  """Environment of the suite's `xlra` subprocesses: one compilation cache for the session, so a
  restarted run (and the second of two identical runs) reads its programs instead of compiling, and
  cheaper LLVM passes (a fifth less CPU per run here). Both twins of a comparison run the same
  compiled programs, so bitwise equality means the same as with the default flags."""
  fast = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
  return {"XLRA_COMPILATION_CACHE": compile_cache_dir, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {fast}"}


@pytest.fixture(scope="module")
def in_process_compile_cache(compile_cache_dir):
  """The same cache for a module that trains in-process: each `loop.train` call compiles the same
  toy programs again (new closures), which then become reads. Restored after the module."""
  import jax

  old = (jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs)
  jax.config.update("jax_compilation_cache_dir", compile_cache_dir)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  yield
  jax.config.update("jax_compilation_cache_dir", old[0])
  jax.config.update("jax_persistent_cache_min_compile_time_secs", old[1])


@pytest.fixture
def fake_judge():
  """tests/eval's fake OpenAI chat-completions server on 127.0.0.1 (tests/ is on sys.path)."""
  from eval.conftest import FakeOpenAI

  server = FakeOpenAI()
  yield server
  server.close()
