"""Multi-host start-up: JAX's multi-controller runtime, initialised before any device is touched.

Every process runs the same command. Where the cluster is described decides how we initialise:
- explicit: XLRA_COORDINATOR=host:port, XLRA_NUM_PROCESSES=N, XLRA_PROCESS_ID=i (any machine; the
  local launcher and the tests use this, on CPU with gloo collectives);
- SLURM (more than one task), a GKE TPU slice (TPU_WORKER_HOSTNAMES lists several hosts) or
  XLRA_DISTRIBUTED=auto (set by launch/tpu_pod.sh: Cloud TPU VMs describe the slice in their
  metadata server, not in the environment): jax.distributed.initialize() detects the cluster itself;
- otherwise a single process: nothing to do.

On TPU the devices of every host are visible without it, but orbax's multi-host checkpoints and
JAX's health checks need the distributed runtime, so a pod run must not skip it.
"""

from __future__ import annotations

import os

import jax

_ENV = ("XLRA_COORDINATOR", "XLRA_NUM_PROCESSES", "XLRA_PROCESS_ID")
_done = False


def _on_tpu_pod() -> bool:
  # TPU slices on GKE export the worker list; a single host has one entry.
  hosts = os.environ.get("TPU_WORKER_HOSTNAMES", "")
  return len([h for h in hosts.split(",") if h]) > 1


def default_cpu_devices(cores: int | None = None) -> int:
  """How many XLA devices the CPU is split into by default: the largest power of two <= the cores,
  at most 8 (batch sizes stay divisible, and 8 is what the tests run on)."""
  cores = max(1, cores or os.cpu_count() or 1)
  return min(8, 1 << (cores.bit_length() - 1))


def split_host_cpu() -> int | None:
  """Present the CPU as `default_cpu_devices()` XLA devices, before any device is touched, unless
  JAX_NUM_CPU_DEVICES or XLA_FLAGS' xla_force_host_platform_device_count already says how many.

  Why: XLA:CPU runs one program per device, and its ops on this project's small models spread
  poorly over cores (a decode step ran as fast on 1 core as on 2). A data-parallel mesh over
  one device per core runs that many programs side by side instead: on 2 cores the sampler bench
  went from 2.7x to 4.4x transformers' generate and the bench32m SFT step ran ~10% faster.
  Accelerator hosts are unaffected (their default devices are not CPU ones). Returns the count set,
  or None.
  """
  if "JAX_NUM_CPU_DEVICES" in os.environ or "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
    return None
  n = default_cpu_devices()
  jax.config.update("jax_num_cpu_devices", n)
  return n


def initialize_from_env() -> None:
  """Initialise the distributed runtime when the environment describes more than one process."""
  global _done
  if _done:
    return
  mode = os.environ.get("XLRA_DISTRIBUTED", "")
  if mode not in ("", "auto"):
    raise ValueError(f"XLRA_DISTRIBUTED={mode!r}: set 'auto' (let JAX detect the cluster) or leave it unset")
  given = [k for k in _ENV if os.environ.get(k)]
  if given and len(given) != len(_ENV):
    missing = sorted(set(_ENV) - set(given))
    raise ValueError(f"multi-process run: {given} set but {missing} missing; set all of {_ENV}")
  if given:
    n, i = int(os.environ["XLRA_NUM_PROCESSES"]), int(os.environ["XLRA_PROCESS_ID"])
    if not 0 <= i < n:
      raise ValueError(f"XLRA_PROCESS_ID={i} must be in [0, XLRA_NUM_PROCESSES={n})")
    if os.environ.get("JAX_PLATFORMS", "") == "cpu":
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=os.environ["XLRA_COORDINATOR"], num_processes=n, process_id=i)
  elif mode == "auto" or int(os.environ.get("SLURM_NTASKS", "1")) > 1 or _on_tpu_pod():
    jax.distributed.initialize()
  _done = True


def is_main_process() -> bool:
  """Process 0 writes logs, reports and artifacts; every process takes part in checkpoint saves."""
  return jax.process_index() == 0
