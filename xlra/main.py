"""Command line: `xlra JOB --config=FILE.py[:ARG] --workdir=DIR [--config.FIELD=VALUE ...]`.

Only parses flags and calls the job's `run(config, workdir)`; every job lives in its own module.
"""

from __future__ import annotations

import importlib
import sys

from absl import app, flags, logging
from ml_collections import config_flags

# JOB -> "module:function"; each function takes (config: ConfigDict, workdir: str).
JOBS = {
    "convert": "xlra.models.convert:run",
    "data": "xlra.data.job:run",
    "sft": "xlra.train.jobs:run_sft",
    "rm": "xlra.train.jobs:run_rm",
    "rm-eval": "xlra.eval.rm_accuracy:run",
    "bon": "xlra.sampling.job:run",
    "ppo": "xlra.train.ppo_job:run",
    "eval": "xlra.eval.job:run",
    "pipeline": "xlra.pipeline.stages:run",
}

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, FILE.py[:ARG].", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and outputs.")


def _main(argv: list[str]) -> None:
  job = argv[1]
  if len(argv) > 2:
    raise app.UsageError(f"unexpected arguments {argv[2:]}; flags are --config, --workdir, --config.FIELD=VALUE")
  if _CONFIG.value is None or _WORKDIR.value is None:
    raise app.UsageError(f"xlra {job} needs --config=FILE.py[:ARG] and --workdir=DIR")
  from xlra.config_fields import split_list_fields
  module, fn = JOBS[job].split(":")
  getattr(importlib.import_module(module), fn)(split_list_fields(_CONFIG.value), _WORKDIR.value)


def enable_compilation_cache() -> None:
  """Persist compiled programs (XLRA_COMPILATION_CACHE, default ~/.cache/xlra/jax; "" turns it off).

  Stages of one run compile the same shapes again (an SFT per language, an RM per language), and
  so does a rerun; the cache turns those compilations into reads.
  """
  import os

  import jax

  path = os.environ.get("XLRA_COMPILATION_CACHE", os.path.expanduser("~/.cache/xlra/jax"))
  if path:
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def run() -> None:
  if len(sys.argv) < 2 or sys.argv[1] not in JOBS:
    sys.stderr.write(f"usage: xlra JOB --config=FILE.py[:ARG] --workdir=DIR [--config.FIELD=VALUE ...]\n"
                     f"JOB is one of: {', '.join(JOBS)}\n")
    sys.exit(2)
  # Both must happen before any device use: one XLA device per core on CPU hosts, then multi-host.
  from xlra.parallel import distributed
  distributed.split_host_cpu()
  distributed.initialize_from_env()
  enable_compilation_cache()
  logging.set_verbosity(logging.INFO)
  app.run(_main)


if __name__ == "__main__":
  run()
