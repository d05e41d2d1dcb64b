"""Tiny random Hugging Face checkpoints for the interop tests (the PyTorch model is the reference).

Weights are re-drawn after HF's init so that biases, norm scales and attention patterns all matter:
HF initialises biases at 0, norms at 1 (Gemma: 0) and matrices at std 0.02, which would leave a wrong
bias mapping or a wrong mask below the 1e-4 tolerance.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import torch
import transformers as tf
from flax import nnx

from xlra.models.config import ModelConfig
from xlra.models.transformer import Transformer

torch.set_num_threads(2)  # the machine's cores are shared; more threads only contend

VOCAB = 96
_COMMON = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_attention_heads=4, num_key_value_heads=2,
               max_position_embeddings=64)

# family -> (config class, kwargs). Windows (4) are shorter than the test sequences (12).
CASES = {
    "llama": (tf.LlamaConfig, dict(
        _COMMON, num_hidden_layers=2, head_dim=8, tie_word_embeddings=False, rope_theta=500.0,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 16})),
    "qwen2": (tf.Qwen2Config, dict(
        _COMMON, num_hidden_layers=2, tie_word_embeddings=True, rope_theta=1000.0, use_sliding_window=True,
        sliding_window=4, max_window_layers=1)),
    "qwen3": (tf.Qwen3Config, dict(_COMMON, num_hidden_layers=2, head_dim=16, tie_word_embeddings=False)),
    "gemma2": (tf.Gemma2Config, dict(
        _COMMON, num_hidden_layers=2, head_dim=8, sliding_window=4, query_pre_attn_scalar=24,
        attn_logit_softcapping=5.0, final_logit_softcapping=3.0, pad_token_id=0)),
    "gemma3": (tf.Gemma3TextConfig, dict(
        _COMMON, num_hidden_layers=3, head_dim=8, sliding_window=4, query_pre_attn_scalar=16,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"], final_logit_softcapping=6.0,
        rope_parameters={"full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 5000.0},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 100.0}}, pad_token_id=0)),
}


def gemma3_multimodal(seed: int = 0) -> torch.nn.Module:
  """A tiny Gemma3ForConditionalGeneration (model_type gemma3): we load its language model only."""
  torch.manual_seed(seed)
  text = tf.Gemma3TextConfig(**{**CASES["gemma3"][1], "final_logit_softcapping": None})
  vision = dict(model_type="siglip_vision_model", hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                num_attention_heads=2, image_size=16, patch_size=8)
  cfg = tf.Gemma3Config(text_config=text.to_dict(), vision_config=vision, mm_tokens_per_image=4,
                        image_token_index=VOCAB - 1, boi_token_index=VOCAB - 3, eoi_token_index=VOCAB - 2)
  model = tf.Gemma3ForConditionalGeneration._from_config(cfg, attn_implementation="eager", dtype=torch.float32)
  return randomize_(model, seed).eval()


def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
  """Draw every weight afresh: matrices N(0, 0.15), norm scales and biases around their init +- 0.2."""
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for _, p in model.named_parameters():
      noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
      p.copy_((noise * 0.15 if p.ndim == 2 else p.float() + 0.2 * noise).to(p.dtype))
  return model


def hf_model(family: str, seed: int = 0, **overrides) -> torch.nn.Module:
  torch.manual_seed(seed)
  cls, kw = CASES[family]
  cfg = cls(**{**kw, **overrides})
  model = tf.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", dtype=torch.float32)
  return randomize_(model, seed).eval()


def batch(seed: int = 0, lengths=(12, 7, 3), length: int = 12) -> tuple[np.ndarray, np.ndarray]:
  """Right-padded token ids [B, L] (pad id 0) and the mask of real tokens."""
  rng = np.random.default_rng(seed)
  mask = np.arange(length)[None, :] < np.asarray(lengths)[:, None]
  tokens = np.where(mask, rng.integers(1, VOCAB, (len(lengths), length)), 0)
  return tokens.astype(np.int32), mask


def torch_logits(model: torch.nn.Module, tokens: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
  with torch.no_grad():
    am = None if mask is None else torch.from_numpy(mask.astype(np.int64))
    return model(torch.from_numpy(tokens.astype(np.int64)), attention_mask=am).logits.float().numpy()


def random_model(cfg: ModelConfig, seed: int = 1) -> Transformer:
  """Our model with numpy-drawn weights like `randomize_` (no JAX random: eager init compiles per op)."""
  rng = np.random.default_rng(seed)
  model = nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0)))
  for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
    shape = var.get_value().shape
    base = 1.0 if (path[-1] == "scale" and not cfg.norm_offset) else 0.0
    value = rng.normal(0, 0.15, shape) if len(shape) > 1 else base + 0.2 * rng.normal(size=shape)
    var.set_value(jnp.asarray(value, cfg.param_dtype))
  return model


_forward = nnx.jit(lambda model, tokens, mask: model(tokens, mask=mask))


def logits(model: Transformer, tokens: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
  """Float32 logits of our model, jitted once per config (eager dispatch compiles every op separately)."""
  mask = np.ones(tokens.shape, bool) if mask is None else mask
  return np.asarray(_forward(model, jnp.asarray(tokens), jnp.asarray(mask)), np.float32)


def chat_checkpoint(path, texts, vocab_size: int = 384, tokenizer_vocab: int = 320, dtype=torch.float32,
                    seed: int = 0) -> tf.PreTrainedTokenizerBase:
  """A tiny random Qwen2 checkpoint at `path` with its own byte-level BPE tokenizer (trained on `texts`, chat
  template included) and the tokenizer's bos/eos/pad ids in config.json, as a user's real checkpoint
  would be; returns the tokenizer. `vocab_size` embedding rows >= the tokenizer's tokens."""
  from xlra.data.tokenizer import load_tokenizer, train_bpe

  train_bpe(texts, tokenizer_vocab, str(path), min_frequency=1)
  tok = load_tokenizer(str(path))
  assert len(tok) <= vocab_size
  torch.manual_seed(seed)
  cfg = tf.Qwen2Config(**{**_COMMON, "vocab_size": vocab_size, "max_position_embeddings": 512},
                       num_hidden_layers=2, tie_word_embeddings=True, use_sliding_window=False,
                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
  model = tf.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", dtype=torch.float32)
  randomize_(model, seed).to(dtype).save_pretrained(str(path), safe_serialization=True)
  # Read back beside config.json, as a user's checkpoint is: transformers picks the tokenizer class by model_type.
  return load_tokenizer(str(path))
