"""The language-model directories the eval and sampling jobs read: Hugging Face checkpoints, xlra model
directories (xlra.models.checkpoint_io) and training workdirs (their model/ export). Each holds its
tokenizer files (training exports write them, `xlra convert` copies them across), which `load_lm_and_tokenizer`
takes by default."""

from __future__ import annotations

import os

from xlra.models.checkpoint_io import MODEL
from xlra.models.transformer import Transformer

FORMATS = ("auto", "hf", "xlra")


def lm_dir(path: str) -> str:
  """The model directory of `path`: itself (HF or xlra), or the model/ export of a training workdir."""
  if not os.path.exists(os.path.join(path, "model.json")) and not os.path.exists(os.path.join(path, "config.json")):
    exported = os.path.join(path, MODEL)
    if os.path.exists(os.path.join(exported, "model.json")):
      return exported
  return path


def detect_format(path: str) -> str:
  """"xlra" for a directory with model.json, "hf" for one with config.json."""
  if os.path.exists(os.path.join(path, "model.json")):
    return "xlra"
  if os.path.exists(os.path.join(path, "config.json")):
    return "hf"
  raise FileNotFoundError(f"{path!r} is neither an xlra model directory (model.json) nor a Hugging Face "
                          "checkpoint (config.json)")


def load_lm(path: str, fmt: str = "auto", dtype: str = "float32", mesh=None) -> Transformer:
  """The Transformer stored at `path` (fmt: auto | hf | xlra; a training workdir reads its model/)."""
  if fmt not in FORMATS:
    raise ValueError(f"checkpoint_format={fmt!r}: choose one of {FORMATS}")
  path = lm_dir(path)
  fmt = detect_format(path) if fmt == "auto" else fmt
  if fmt == "hf":
    from xlra.models.hf import load_hf
    return load_hf(path, dtype, mesh=mesh)
  from xlra.models.checkpoint_io import load_model
  model = load_model(path, dtype=dtype, mesh=mesh)
  if not isinstance(model, Transformer):
    raise ValueError(f"{path!r} holds a scalar (reward/value) model; a judge or a policy must be a language model")
  return model


def load_lm_and_tokenizer(path: str, tokenizer: str = "", fmt: str = "auto", dtype: str = "float32", mesh=None,
                          field: str = "checkpoint"):
  """(Transformer, tokenizer) of `path`: the tokenizer saved beside the model unless `tokenizer` names
  another directory; refused before anything compiles when it does not fit the model's embedding rows."""
  from xlra.data.tokenizer import check_fits, load_tokenizer

  tok_dir = tokenizer or lm_dir(path)
  tok = load_tokenizer(tok_dir)
  model = load_lm(path, fmt, dtype, mesh)
  check_fits(tok, model.cfg.vocab_size, f"{field}={path!r}", tok_dir)
  return model, tok
