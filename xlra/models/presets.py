"""Named model sizes: `tiny` for tests and the demo, real sizes checked through `jax.eval_shape`.

`PUBLISHED_PARAMS` holds the parameter counts the model cards publish; tests compare against them.
"""

from __future__ import annotations

from xlra.models.config import ModelConfig

_LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192}


def _gemma2(**kw) -> ModelConfig:
  n = kw["n_layers"]
  return ModelConfig(family="gemma2", act="gelu_tanh", norm_offset=True, post_norms=True, embed_scale=True,
                     tie_embeddings=True, attn_softcap=50.0, final_softcap=30.0, query_pre_attn_scalar=256,
                     sliding_window=4096, layer_types=tuple("sliding" if i % 2 == 0 else "full" for i in range(n)),
                     vocab_size=256_000, head_dim=256, max_seq_len=8192, **kw)


def _gemma3(**kw) -> ModelConfig:
  n = kw["n_layers"]
  return ModelConfig(family="gemma3", act="gelu_tanh", norm_offset=True, post_norms=True, embed_scale=True,
                     qk_norm=True, tie_embeddings=True, query_pre_attn_scalar=256, rope_theta=1_000_000.0,
                     local_rope_theta=10_000.0, sliding_window=512,
                     layer_types=tuple("full" if (i + 1) % 6 == 0 else "sliding" for i in range(n)),
                     vocab_size=262_144, head_dim=256, max_seq_len=32_768, **kw)


def _qwen2(**kw) -> ModelConfig:
  return ModelConfig(family="qwen2", qkv_bias=True, rope_theta=1_000_000.0, norm_eps=1e-6,
                     vocab_size=kw.pop("vocab_size", 151_936), max_seq_len=32_768, **kw)


PRESETS: dict[str, ModelConfig] = {
    # Tests and the offline demo: trained from scratch on the testbed.
    "tiny": ModelConfig(family="llama", vocab_size=512, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2,
                        head_dim=16, d_ff=192, max_seq_len=256),
    "small": ModelConfig(family="llama", vocab_size=1024, d_model=128, n_layers=4, n_heads=4, n_kv_heads=2,
                         head_dim=32, d_ff=384, max_seq_len=512),
    # The benchmark config of the scale-out issue: d=512, 8 layers, GQA (about 32M parameters).
    "bench32m": ModelConfig(family="llama", vocab_size=8192, d_model=512, n_layers=8, n_heads=8, n_kv_heads=2,
                            head_dim=64, d_ff=2048, max_seq_len=1024, tie_embeddings=False),
    # A ~1B Llama-shaped preset for accelerator benchmarks.
    "llama_1b": ModelConfig(family="llama", vocab_size=128_256, d_model=2048, n_layers=16, n_heads=32,
                            n_kv_heads=8, head_dim=64, d_ff=8192, rope_theta=500_000.0, norm_eps=1e-5,
                            rope_scaling={**_LLAMA3_ROPE, "factor": 32.0}, max_seq_len=8192),
    "gemma2_2b": _gemma2(d_model=2304, n_layers=26, n_heads=8, n_kv_heads=4, d_ff=9216),
    "gemma2_9b": _gemma2(d_model=3584, n_layers=42, n_heads=16, n_kv_heads=8, d_ff=14336),
    "gemma3_1b": _gemma3(d_model=1152, n_layers=26, n_heads=4, n_kv_heads=1, d_ff=6912),
    "qwen2.5_0.5b": _qwen2(d_model=896, n_layers=24, n_heads=14, n_kv_heads=2, head_dim=64, d_ff=4864),
    "qwen2.5_1.5b": _qwen2(d_model=1536, n_layers=28, n_heads=12, n_kv_heads=2, head_dim=128, d_ff=8960),
    "qwen2.5_3b": _qwen2(d_model=2048, n_layers=36, n_heads=16, n_kv_heads=2, head_dim=128, d_ff=11008),
    "qwen2.5_7b": _qwen2(d_model=3584, n_layers=28, n_heads=28, n_kv_heads=4, head_dim=128, d_ff=18944,
                         vocab_size=152_064, tie_embeddings=False),
    "qwen3_0.6b": ModelConfig(family="qwen3", vocab_size=151_936, d_model=1024, n_layers=28, n_heads=16,
                              n_kv_heads=8, head_dim=128, d_ff=3072, qk_norm=True, rope_theta=1_000_000.0,
                              max_seq_len=40_960),
    "llama3_8b": ModelConfig(family="llama", vocab_size=128_256, d_model=4096, n_layers=32, n_heads=32,
                             n_kv_heads=8, head_dim=128, d_ff=14336, rope_theta=500_000.0, norm_eps=1e-5,
                             tie_embeddings=False, max_seq_len=8192),  # Llama 3 (3.1 adds _LLAMA3_ROPE)
}

# Parameter counts from the model cards / safetensors index of the released checkpoints.
PUBLISHED_PARAMS: dict[str, int] = {
    "gemma2_2b": 2_614_341_888,
    "gemma2_9b": 9_241_705_984,
    "gemma3_1b": 999_885_952,
    "qwen2.5_0.5b": 494_032_768,
    "qwen2.5_1.5b": 1_543_714_304,
    "qwen2.5_3b": 3_085_938_688,
    "qwen2.5_7b": 7_615_616_512,
    "qwen3_0.6b": 596_049_920,
    "llama3_8b": 8_030_261_248,
}


def get_preset(name: str, **overrides) -> ModelConfig:
  if name not in PRESETS:
    raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}")
  return PRESETS[name].replace(**overrides)
