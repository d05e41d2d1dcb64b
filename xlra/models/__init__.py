"""Decoder models: one nnx Transformer for Llama 3 / Qwen 2-3 / Gemma 2-3, scalar heads, presets and I/O.

Hugging Face and checkpoint I/O load lazily (safetensors, orbax and transformers cost seconds to import).
"""

from __future__ import annotations

import importlib
from typing import Any

from xlra.models.config import ModelConfig
from xlra.models.heads import ScalarModel
from xlra.models.presets import get_preset
from xlra.models.transformer import KVCache, Transformer

_LAZY = {"load_hf": "xlra.models.hf", "save_hf": "xlra.models.hf", "config_from_hf": "xlra.models.hf",
         "load_model": "xlra.models.checkpoint_io", "save_model": "xlra.models.checkpoint_io"}

__all__ = ["ModelConfig", "ScalarModel", "get_preset", "KVCache", "Transformer", *_LAZY]


def __getattr__(name: str) -> Any:
  if name in _LAZY:
    return getattr(importlib.import_module(_LAZY[name]), name)
  raise AttributeError(f"module 'xlra.models' has no attribute {name!r}")
