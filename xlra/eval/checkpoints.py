"""The language-model directories the eval job reads: Hugging Face checkpoints and xlra model directories
(xlra.models.checkpoint_io). Both hold their tokenizer files (`xlra convert` copies them across)."""

from __future__ import annotations

import os

from xlra.models.transformer import Transformer

FORMATS = ("auto", "hf", "xlra")


def detect_format(path: str) -> str:
  """"xlra" for a directory with model.json, "hf" for one with config.json."""
  if os.path.exists(os.path.join(path, "model.json")):
    return "xlra"
  if os.path.exists(os.path.join(path, "config.json")):
    return "hf"
  raise FileNotFoundError(f"{path!r} is neither an xlra model directory (model.json) nor a Hugging Face "
                          "checkpoint (config.json)")


def load_lm(path: str, fmt: str = "auto", dtype: str = "float32", mesh=None) -> Transformer:
  """The Transformer stored at `path` (fmt: auto | hf | xlra)."""
  if fmt not in FORMATS:
    raise ValueError(f"checkpoint_format={fmt!r}: choose one of {FORMATS}")
  fmt = detect_format(path) if fmt == "auto" else fmt
  if fmt == "hf":
    from xlra.models.hf import load_hf
    return load_hf(path, dtype, mesh=mesh)
  from xlra.models.checkpoint_io import load_model
  model = load_model(path, dtype=dtype, mesh=mesh)
  if not isinstance(model, Transformer):
    raise ValueError(f"{path!r} holds a scalar (reward/value) model; a judge or a policy must be a language model")
  return model
