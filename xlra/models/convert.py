"""`xlra convert`: Hugging Face checkpoint directory <-> xlra model directory (configs/convert.py).

Parameters keep the source's dtype unless config.dtype is set; special token ids (bos/eos/pad) travel
in the model config; tokenizer files travel beside the weights. xlra_to_hf also takes a training
workdir (its model/ export).

A finished conversion is not redone (hf_to_xlra: DST/model.json exists, written last; xlra_to_hf: DST
exists, renamed from DST.tmp once complete); delete the output to convert again.
"""

from __future__ import annotations

import os
import shutil

import jax
import ml_collections
from absl import logging
from flax import nnx

from xlra.files import read_json
from xlra.models.checkpoint_io import load_model, resolve_model_dir, save_model
from xlra.models.hf import load_hf, save_hf
from xlra.models.transformer import Transformer

DIRECTIONS = ("hf_to_xlra", "xlra_to_hf")
# Files of a HF directory that are not weights but belong with the model (tokenizer, generation).
SIDE_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
              "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja", "generation_config.json")
_DTYPES = ("", "float32", "bfloat16")
_TOKENIZER_MARKERS = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


def _copy_side_files(src: str, dst: str) -> list[str]:
  """Carry the tokenizer and generation config from `src` to `dst`; returns what was carried.

  The tokenizer is loaded as `src` resolves it and saved again, rather than copied: transformers picks
  a generic tokenizer's class from config.json's model_type (a Qwen2 checkpoint adds <|endoftext|>), and
  an xlra model directory has no config.json, so copied files would load as a different tokenizer there.
  Saving records the resolved class. Files transformers cannot load are copied as they are, with a warning.
  """
  present = [f for f in SIDE_FILES if os.path.isfile(os.path.join(src, f))]
  raw = [f for f in present if f == "generation_config.json"]
  carried = list(raw)
  if any(f in present for f in _TOKENIZER_MARKERS):
    try:
      from transformers import AutoTokenizer
      tok = AutoTokenizer.from_pretrained(src)
      if jax.process_index() == 0:
        tok.save_pretrained(dst)
      carried.append(f"tokenizer ({type(tok).__name__}, {len(tok)} tokens)")
    except (OSError, ValueError, TypeError) as e:
      logging.warning("convert: transformers cannot load the tokenizer files of %s (%s); copying them as they are",
                      src, str(e)[:200])
      raw = present
      carried = list(present)
  if jax.process_index() == 0:
    for f in raw:
      shutil.copyfile(os.path.join(src, f), os.path.join(dst, f))
  return carried


def _source_dtype(src: str) -> str:
  """The parameter dtype a Hugging Face checkpoint declares (bfloat16 stays bfloat16; a round trip gives
  back what it read), float32 when it declares none or one xlra does not keep (float16)."""
  meta = read_json(os.path.join(src, "config.json"))
  declared = meta.get("dtype") or meta.get("torch_dtype") or (meta.get("text_config") or {}).get("dtype")
  return declared if declared in ("float32", "bfloat16") else "float32"


def _check(config: ml_collections.ConfigDict) -> None:
  if config.direction not in DIRECTIONS:
    raise ValueError(f"config.direction={config.direction!r}: choose one of {DIRECTIONS}")
  if not config.src:
    raise ValueError("config.src is empty: pass --config.src=DIR (the directory to convert)")
  if not os.path.isdir(config.src):
    raise FileNotFoundError(f"config.src={config.src!r} is not a directory")
  if config.dtype not in _DTYPES:
    raise ValueError(f"config.dtype={config.dtype!r}: choose one of {_DTYPES}")


def run(config: ml_collections.ConfigDict, workdir: str) -> None:
  _check(config)
  if config.direction == "hf_to_xlra":
    dst = config.dst or os.path.join(workdir, "model")
    if os.path.exists(os.path.join(dst, "model.json")):  # written last by save_model
      logging.info("convert: %s already holds a converted model; nothing to do", dst)
      return
    model = load_hf(config.src, dtype=config.dtype or _source_dtype(config.src))
    os.makedirs(dst, exist_ok=True)
    side = _copy_side_files(config.src, dst)
    save_model(model, dst)
  else:
    src = resolve_model_dir(config.src, "config.src")  # a model directory or a training workdir
    dst = config.dst or os.path.join(workdir, "hf")
    if os.path.exists(dst):  # only ever created by the rename below
      logging.info("convert: %s already holds a Hugging Face export; nothing to do", dst)
      return
    model = load_model(src)
    if not isinstance(model, Transformer):
      raise ValueError(f"config.src={config.src!r} holds a scalar (reward/value) model; only language models "
                       f"export to Hugging Face causal-LM checkpoints")
    tmp = dst + ".tmp"
    save_hf(model, tmp, dtype=config.dtype or None)
    side = _copy_side_files(src, tmp)
    if jax.process_index() == 0:
      os.replace(tmp, dst)
  n = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
  logging.info("convert %s: %s -> %s (%s parameters, family %s; copied %s)", config.direction, config.src, dst,
               f"{n:,}", model.cfg.family, side or "no tokenizer files")
