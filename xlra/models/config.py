"""The one model config: every architectural switch of the Llama 3, Qwen 2/3 and Gemma 2/3 families."""

from __future__ import annotations

import dataclasses
from typing import Any

FAMILIES = ("llama", "qwen2", "qwen3", "gemma2", "gemma3")
ACTIVATIONS = ("silu", "gelu_tanh")
LAYER_TYPES = ("full", "sliding")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Hyper-parameters of a decoder-only transformer.

  Field names follow the math, not any one checkpoint format; `xlra.models.hf` maps Hugging Face
  `config.json` fields onto them.
  """

  family: str = "llama"
  vocab_size: int = 512
  d_model: int = 64
  n_layers: int = 2
  n_heads: int = 4
  n_kv_heads: int = 2
  head_dim: int = 16
  d_ff: int = 128
  act: str = "silu"
  norm_eps: float = 1e-6
  norm_offset: bool = False  # Gemma: scale is (1 + w), w initialised at 0.
  post_norms: bool = False  # Gemma 2/3: extra norms on the attention and MLP outputs.
  qkv_bias: bool = False  # Qwen 2.
  qk_norm: bool = False  # Qwen 3, Gemma 3: RMSNorm over head_dim of q and k.
  tie_embeddings: bool = True
  embed_scale: bool = False  # Gemma: embeddings times sqrt(d_model).
  rope_theta: float = 10_000.0
  # None, {"rope_type": "llama3", "factor", "low_freq_factor", "high_freq_factor",
  # "original_max_position_embeddings"} or {"rope_type": "linear", "factor"}; applies to full layers.
  rope_scaling: Any = None
  local_rope_theta: float | None = None  # Gemma 3: theta of the sliding-window layers.
  attn_softcap: float | None = None
  final_softcap: float | None = None
  query_pre_attn_scalar: float | None = None  # attention scale is this ** -0.5 (default head_dim).
  sliding_window: int | None = None
  layer_types: tuple[str, ...] | None = None  # per layer "full" or "sliding"; None = all full.
  max_seq_len: int = 2048
  dtype: str = "float32"  # compute dtype
  param_dtype: str = "float32"  # master weights
  # Uncached (training, scoring) attention runs in query blocks of about this many tokens, each against
  # the keys up to its end only: a causal model never looks later, so the skipped scores were all
  # masked. At most MAX_QUERY_BLOCKS blocks; 0 or a length >= the sequence: one block. Compute only:
  # the values are the same up to float rounding.
  attn_block: int = 128
  # Special token ids of the checkpoint's config.json (an int, a tuple of ints for several EOS, or None).
  # The model does not use them (the tokenizer decides what is sampled); they are kept so that a
  # conversion back to Hugging Face writes what it read, and generate() stops where it did.
  bos_token_id: Any = None
  eos_token_id: Any = None
  pad_token_id: Any = None

  def __post_init__(self):
    def bad(field, why):
      raise ValueError(f"ModelConfig.{field}={getattr(self, field)!r}: {why}")

    if self.family not in FAMILIES:
      bad("family", f"unsupported; choose one of {FAMILIES}")
    if self.act not in ACTIVATIONS:
      bad("act", f"choose one of {ACTIVATIONS}")
    if self.n_heads % self.n_kv_heads:
      bad("n_heads", f"must be a multiple of n_kv_heads={self.n_kv_heads} (grouped-query attention)")
    if self.head_dim % 2:
      bad("head_dim", "must be even for rotary embeddings")
    if self.layer_types is not None:
      if len(self.layer_types) != self.n_layers:
        bad("layer_types", f"needs one entry per layer (n_layers={self.n_layers})")
      if any(t not in LAYER_TYPES for t in self.layer_types):
        bad("layer_types", f"entries must be in {LAYER_TYPES}")
      if "sliding" in self.layer_types and not self.sliding_window:
        bad("sliding_window", "sliding layers need a positive window")
    if self.attn_block < 0:
      bad("attn_block", "must be >= 0 (0: attention in one block)")
    if self.rope_scaling is not None and self.rope_scaling.get("rope_type") not in ("llama3", "linear"):
      bad("rope_scaling", "only rope_type 'llama3' and 'linear' are implemented")

  def layer_type(self, i: int) -> str:
    return "full" if self.layer_types is None else self.layer_types[i]

  def replace(self, **kw) -> "ModelConfig":
    return dataclasses.replace(self, **kw)
