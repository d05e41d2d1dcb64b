"""Convert between a Hugging Face checkpoint directory and an xlra model directory.

    xlra convert --config=configs/convert.py:hf_to_xlra --config.src=/path/to/hf_model --workdir=/tmp/conv
    xlra convert --config=configs/convert.py:xlra_to_hf --config.src=/tmp/conv/model --workdir=/tmp/conv \
        --config.dtype=bfloat16
    xlra convert --config=configs/convert.py:xlra_to_hf --config.src=/tmp/xlra_sft --workdir=/tmp/xlra_sft

hf_to_xlra writes WORKDIR/model (or config.dst): orbax params + model.json, see
xlra/models/checkpoint_io.py; tokenizer files next to config.json travel along. xlra_to_hf writes
WORKDIR/hf (or config.dst): config.json + safetensors that transformers loads.
"""

from __future__ import annotations

import ml_collections

DIRECTIONS = ("hf_to_xlra", "xlra_to_hf")


def get_config(arg: str = "hf_to_xlra") -> ml_collections.ConfigDict:
  if arg not in DIRECTIONS:
    raise ValueError(f"configs/convert.py:{arg}: choose one of {DIRECTIONS}")
  c = ml_collections.ConfigDict()
  c.direction = arg
  c.src = ""  # required: the directory to read (xlra_to_hf: a model directory or a training workdir)
  c.dst = ""  # default: WORKDIR/model (hf_to_xlra) or WORKDIR/hf (xlra_to_hf)
  # Parameter dtype of the output: "" keeps the source's (a bfloat16 checkpoint stays bfloat16; training
  # jobs cast to their own config.model.param_dtype when they load it); "float32" or "bfloat16" force one.
  c.dtype = ""
  return c
