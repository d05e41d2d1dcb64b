"""Shared fixtures of the sampling tests: tiny random Hugging Face checkpoints read through load_hf
(tests/models/hf_testing.py), so the PyTorch model stays an independent reference."""

from __future__ import annotations

import jax
import pytest
from models.hf_testing import hf_model

from xlra.models.hf import load_hf
from xlra.parallel.mesh import make_mesh



@pytest.fixture(scope="session")
def prompts():
  """Three prompts of lengths 7, 3 and 11 (so left padding differs per row); ids < hf_testing.VOCAB."""
  return [[5, 17, 9, 33, 2, 71, 40], [61, 8, 3], [12, 44, 90, 7, 7, 29, 50, 81, 3, 64, 22]]


@pytest.fixture(scope="session")
def one_device():
  return make_mesh({"data": 1}, jax.devices()[:1])


class _Models(dict):
  """family -> (torch model, our Transformer loaded from its saved checkpoint), built on first use."""

  def __init__(self, root):
    super().__init__()
    self.root = root

  def __missing__(self, family):
    ref = hf_model(family)
    path = str(self.root / family)
    ref.save_pretrained(path)
    self[family] = (ref, load_hf(path))
    return self[family]


@pytest.fixture(scope="session")
def models(tmp_path_factory):
  return _Models(tmp_path_factory.mktemp("hf"))
