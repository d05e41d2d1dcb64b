"""Multi-host: 2 JAX processes x 2 CPU devices (gloo collectives over 127.0.0.1) train the same SFT
steps as one process with 4 devices, and their orbax checkpoint is whole.

The processes run tests/parallel/multihost_worker.py (see its docstring): the real data loader keeps
each process's own rows, `shard_batch` assembles the global batch, the SFT step crosses processes
for its gradient reduction (fsdp spans the processes), and both processes save one checkpoint.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import multihost_worker as worker
from xlra.parallel import distributed, mesh as mesh_lib
from xlra.train import checkpoint as ckpt_lib, state as state_lib

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "multihost_worker.py")
TIMEOUT_S = 300  # all three processes together; about 40 s on an idle 2-core machine


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _env(devices: int, process: tuple[str, int, int] | None) -> dict[str, str]:
  env = {k: v for k, v in os.environ.items() if not k.startswith("XLRA_")}
  env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
  if process is not None:
    coordinator, n, i = process
    env.update(XLRA_COORDINATOR=coordinator, XLRA_NUM_PROCESSES=str(n), XLRA_PROCESS_ID=str(i))
  return env


def _run_all(jobs: dict[str, tuple[list[str], dict]], logdir: str) -> None:
  """Start every job at once; wait for all within TIMEOUT_S; on any failure kill the rest and show
  the logs (a process whose peer died would otherwise wait in a collective forever)."""
  procs = {}
  try:
    for name, (args, env) in jobs.items():
      log = open(os.path.join(logdir, f"{name}.log"), "w")
      procs[name] = (subprocess.Popen([sys.executable, WORKER, *args], env=env, stdout=log,
                                      stderr=subprocess.STDOUT), log)
    deadline = time.monotonic() + TIMEOUT_S
    while any(p.poll() is None for p, _ in procs.values()):
      failed = [n for n, (p, _) in procs.items() if p.returncode not in (None, 0)]
      if failed or time.monotonic() > deadline:
        break
      time.sleep(0.2)
  finally:
    for p, log in procs.values():
      if p.poll() is None:
        p.kill()
        p.wait()
      log.close()
  bad = {n: p.returncode for n, (p, _) in procs.items() if p.returncode != 0}
  if bad:
    tails = "\n".join(f"--- {n} (rc {rc}) ---\n" + _tail(os.path.join(logdir, f"{n}.log")) for n, rc in bad.items())
    pytest.fail(f"worker processes failed or timed out after {TIMEOUT_S}s: {bad}\n{tails}")


def _tail(path: str, lines: int = 30) -> str:
  with open(path, errors="replace") as f:
    return "".join([l for l in f.readlines() if "[Gloo]" not in l][-lines:])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  d = tmp_path_factory.mktemp("multihost")
  coordinator = f"127.0.0.1:{_free_port()}"
  jobs = {"single": ([str(d / "single"), str(d / "wd_single")], _env(4, None))}
  for i in range(2):
    jobs[f"proc{i}"] = ([str(d / "multi"), str(d / "wd_multi")], _env(2, (coordinator, 2, i)))
  _run_all(jobs, str(d))
  load = lambda name: dict(np.load(d / f"{name}.npz"))
  return {"single": load("single_0"), "p0": load("multi_0"), "p1": load("multi_1"), "dir": d}


def _params(out: dict) -> dict[str, np.ndarray]:
  return {k: v for k, v in out.items() if k.startswith("param/")}


@pytest.mark.slow
def test_two_processes_match_one_process_with_four_devices(runs):
  one, multi = runs["single"], runs["p0"]
  assert int(one["process_count"]) == 1 and int(multi["process_count"]) == 2
  for k in ("loss", "grad_norm", "weight", "accuracy"):
    np.testing.assert_allclose(multi[f"metric/{k}"], one[f"metric/{k}"], rtol=1e-5, err_msg=k)
  p1, p2 = _params(one), _params(multi)
  assert p1.keys() == p2.keys() and len(p1) == 20
  # A lost half-batch or a missing cross-process reduction moves weights by ~lr = 1e-2.
  for k in p1:
    np.testing.assert_allclose(p2[k], p1[k], atol=1e-6, rtol=1e-5, err_msg=k)
  _, init = state_lib.split_params(worker.build_model())
  init = {f"param/{jax.tree_util.keystr(p)}": np.asarray(v) for p, v in jax.tree_util.tree_leaves_with_path(init)}
  assert max(np.abs(p1[k] - init[k]).max() for k in p1) > 1e-3  # the steps really trained


@pytest.mark.slow
def test_each_process_fed_only_its_own_rows(runs):
  a, b = runs["p0"]["local_targets"], runs["p1"]["local_targets"]
  # The step's token count is the sum of both processes' rows, which differ.
  np.testing.assert_array_equal(a + b, runs["p0"]["metric/weight"])
  assert not np.array_equal(a, b)
  np.testing.assert_array_equal(runs["p1"]["metric/loss"], runs["p0"]["metric/loss"])


@pytest.mark.slow
def test_checkpoint_written_by_two_processes_restores_on_one_device(runs):
  """Each process held half of every parameter (fsdp across processes): a restore on one device
  gives the single-process run's weights only if both halves were written."""
  workdir = runs["dir"] / "wd_multi"
  ckpt = ckpt_lib.Checkpointer(str(workdir), keep=1)
  assert ckpt.latest_step() == worker.STEPS
  mesh = mesh_lib.make_mesh({"data": 1, "fsdp": 1, "tensor": 1}, devices=jax.devices()[:1])
  tx, _ = worker.make_optimizer()
  _, abstract_params = state_lib.abstract_params(worker.build_model)
  abstract = state_lib.abstract_state(abstract_params, tx)
  restored, loop_state = ckpt.restore(worker.STEPS, ckpt_lib.restore_target(abstract, state_lib.state_shardings(
      abstract, mesh)))
  ckpt.close()
  assert loop_state["step"] == worker.STEPS and int(restored.step) == worker.STEPS
  got = {f"param/{jax.tree_util.keystr(p)}": np.asarray(v) for p, v in jax.tree_util.tree_leaves_with_path(
      restored.params)}
  want = _params(runs["single"])
  assert got.keys() == want.keys()
  for k in want:
    np.testing.assert_allclose(got[k], want[k], atol=1e-6, rtol=1e-5, err_msg=k)


@pytest.mark.parametrize("env,match", [
    ({"XLRA_COORDINATOR": "127.0.0.1:1234", "XLRA_NUM_PROCESSES": "2"}, "XLRA_PROCESS_ID"),
    ({"XLRA_COORDINATOR": "127.0.0.1:1234", "XLRA_NUM_PROCESSES": "2", "XLRA_PROCESS_ID": "2"}, r"\[0, XLRA_NUM"),
    ({"XLRA_DISTRIBUTED": "yes"}, "auto"),
])
def test_bad_multiprocess_environment_fails_before_initialising(env, match, monkeypatch):
  for k in ("XLRA_COORDINATOR", "XLRA_NUM_PROCESSES", "XLRA_PROCESS_ID", "XLRA_DISTRIBUTED"):
    monkeypatch.delenv(k, raising=False)
  for k, v in env.items():
    monkeypatch.setenv(k, v)
  monkeypatch.setattr(distributed, "_done", False)
  called = []
  monkeypatch.setattr(jax.distributed, "initialize", lambda *a, **kw: called.append(1))
  with pytest.raises(ValueError, match=match):
    distributed.initialize_from_env()
  assert not called
