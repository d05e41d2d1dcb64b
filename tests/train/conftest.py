"""A small testbed shared by the training tests: two languages, generated once per session."""

from __future__ import annotations

import os
import runpy
import tempfile

import jax
import pytest

# Training tests build the same jitted step in several runs (interrupted, resumed, ...): a
# compilation cache for this session turns every repeat compile into a cache hit.
if not jax.config.jax_compilation_cache_dir:
  jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="xlra_jax_cache_"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

_CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs")


def load_config(name: str, arg: str):
  """configs/NAME.py's get_config(arg) (configs/ is not a package)."""
  return runpy.run_path(os.path.join(_CONFIGS, f"{name}.py"))["get_config"](arg)


def small_data_config():
  data = load_config("data", "tiny")
  data.languages = ("en", "de")
  data.sizes.update(dict(base=60, sft=120, rm_train=150, rm_val=30, rl=4, eval=8))
  data.tokenizer.vocab_size = 768
  return data


@pytest.fixture(scope="session")
def testbed_bundle(tmp_path_factory):
  from xlra.data.job import prepare

  return prepare(small_data_config(), str(tmp_path_factory.mktemp("testbed")))
