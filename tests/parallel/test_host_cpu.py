"""The CLI's default CPU split (xlra.parallel.distributed.split_host_cpu), in fresh processes: the
test process itself already runs with 8 devices."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from xlra.parallel.distributed import default_cpu_devices

_PROBE = ("import json, jax; from xlra.parallel import distributed; n = distributed.split_host_cpu(); "
          "print(json.dumps({'set': n, 'devices': jax.device_count(), 'platform': jax.devices()[0].platform}))")


def _probe(**env: str) -> dict:
  clean = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
  out = subprocess.run([sys.executable, "-c", _PROBE], env={**clean, "JAX_PLATFORMS": "cpu", **env},
                       capture_output=True, text=True, timeout=120, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_default_is_the_largest_power_of_two_up_to_8():
  assert [default_cpu_devices(c) for c in (1, 2, 3, 4, 6, 8, 12, 64)] == [1, 2, 2, 4, 4, 8, 8, 8]


def test_split_sets_the_default_count():
  got = _probe()
  assert got == {"set": default_cpu_devices(), "devices": default_cpu_devices(), "platform": "cpu"}


@pytest.mark.parametrize("env", [{"JAX_NUM_CPU_DEVICES": "3"},
                                 {"XLA_FLAGS": "--xla_force_host_platform_device_count=3"}])
def test_an_explicit_count_wins(env):
  assert _probe(**env) == {"set": None, "devices": 3, "platform": "cpu"}
