"""Logits parity with transformers' PyTorch models: load_hf, save_hf round trips, dtypes, shards, errors."""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers as tf
from flax import nnx
from safetensors.numpy import load_file, save_file

from hf_testing import CASES, batch, gemma3_multimodal, hf_model, logits, random_model, torch_logits
from xlra.models.config import ModelConfig
from xlra.models.hf import config_from_hf, load_hf, save_hf
from xlra.models.presets import get_preset
from xlra.models.transformer import Transformer


def _max_diff(ours, ref, mask=None) -> float:
  diff = np.abs(np.asarray(ours, np.float32) - ref)
  return float(diff[mask].max() if mask is not None else diff.max())


@pytest.mark.parametrize("family", sorted(CASES))
def test_logits_match_transformers(family, tmp_path):
  ref_model = hf_model(family)
  ref_model.save_pretrained(tmp_path, safe_serialization=True)
  model = load_hf(str(tmp_path))
  assert model.cfg.family == family
  tokens, mask = batch()
  assert _max_diff(logits(model, tokens), torch_logits(ref_model, tokens)) <= 1e-4
  # right-padded batch of unequal lengths: compare on the real tokens only
  assert _max_diff(logits(model, tokens, mask), torch_logits(ref_model, tokens, mask),
                   mask) <= 1e-4


def test_gemma3_multimodal_language_model(tmp_path):
  ref_model = gemma3_multimodal()
  ref_model.save_pretrained(tmp_path, safe_serialization=True)
  assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "gemma3"
  tokens, mask = batch()
  tokens = np.minimum(tokens, CASES["gemma3"][1]["vocab_size"] - 4)  # no image/boi/eoi tokens
  assert _max_diff(logits(load_hf(str(tmp_path)), tokens, mask), torch_logits(ref_model, tokens, mask),
                   mask) <= 1e-4


def test_bfloat16_checkpoint(tmp_path):
  ref_model = hf_model("gemma2").to(torch.bfloat16)
  ref_model.save_pretrained(tmp_path, safe_serialization=True)
  tokens, _ = batch()
  # the same bf16-rounded weights computed in float32 (a fresh load: .float() would keep bf16-rounded rope buffers)
  ref_f32 = tf.AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32, attn_implementation="eager")
  ref = torch_logits(ref_f32.eval(), tokens)
  model = load_hf(str(tmp_path), dtype="float32")
  assert model.embedding[...].dtype == jnp.float32
  assert _max_diff(logits(model, tokens), ref) <= 1e-4
  low = load_hf(str(tmp_path), dtype="bfloat16")
  assert low.embedding[...].dtype == jnp.bfloat16 and low.cfg.dtype == "bfloat16"
  np.testing.assert_array_equal(np.asarray(low.embedding[...], np.float32), np.asarray(model.embedding[...]))
  assert _max_diff(logits(low, tokens), ref) < 0.25  # bf16 compute: loose, but the right model


def test_sharded_checkpoint_with_index(tmp_path):
  ref_model = hf_model("qwen3")
  ref_model.save_pretrained(tmp_path, safe_serialization=True, max_shard_size="20KB")
  assert os.path.exists(tmp_path / "model.safetensors.index.json")
  assert len([f for f in os.listdir(tmp_path) if f.endswith(".safetensors")]) > 1
  tokens, _ = batch()
  assert _max_diff(logits(load_hf(str(tmp_path)), tokens), torch_logits(ref_model, tokens)) <= 1e-4


@pytest.mark.parametrize("family", ["llama", "qwen2", "gemma3"])
def test_save_hf_round_trip(family, tmp_path):
  cfg = config_from_hf({**CASES[family][0](**CASES[family][1]).to_dict(), "model_type": CASES[family][0].model_type})
  if family == "llama":
    cfg = get_preset("tiny")  # our own preset, tied embeddings
  model = random_model(cfg)
  save_hf(model, str(tmp_path), max_shard_bytes=40_000 if family == "qwen2" else 5 << 30)
  assert os.path.exists(tmp_path / "model.safetensors.index.json") == (family == "qwen2")
  ref_model = tf.AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation="eager").eval()
  tokens, mask = batch()
  tokens = tokens % cfg.vocab_size
  assert _max_diff(logits(model, tokens, mask), torch_logits(ref_model, tokens, mask),
                   mask) <= 1e-4
  assert _max_diff(logits(load_hf(str(tmp_path)), tokens), logits(model, tokens)) == 0


def test_save_hf_bfloat16(tmp_path):
  model = random_model(get_preset("tiny"))
  save_hf(model, str(tmp_path), dtype="bfloat16")
  assert json.loads((tmp_path / "config.json").read_text())["dtype"] == "bfloat16"
  ref_model = tf.AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
  assert ref_model.model.embed_tokens.weight.dtype == torch.float32
  want = np.asarray(model.embedding[...].astype(jnp.bfloat16).astype(jnp.float32))
  np.testing.assert_array_equal(ref_model.model.embed_tokens.weight.detach().numpy(), want)


def test_mesh_placement(tmp_path):
  from xlra.parallel.mesh import RULES, logical_spec, make_mesh

  ref_model = hf_model("llama")
  ref_model.save_pretrained(tmp_path, safe_serialization=True)
  mesh = make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  model = load_hf(str(tmp_path), mesh=mesh)
  wq = model.blocks[0].attn.wq
  assert wq[...].sharding.spec == logical_spec(wq.get_metadata()["axes"], RULES)
  assert wq[...].sharding.spec[0] == "fsdp" and wq[...].sharding.spec[1] == "tensor"
  assert len(wq[...].addressable_shards) == 8 and wq[...].addressable_shards[0].data.shape == (16, 2, 8)
  tokens, _ = batch()
  assert _max_diff(logits(model, tokens), torch_logits(ref_model, tokens)) <= 1e-4


# ------------------------------------------------------------------------------------------------ errors


def test_unsupported_architecture_named():
  with pytest.raises(ValueError, match="mistral"):
    config_from_hf({"model_type": "mistral", "hidden_size": 32})


@pytest.mark.parametrize("field,value,match", [
    ("attention_bias", True, "attention_bias"),
    ("mlp_bias", True, "mlp_bias"),
    ("rope_parameters", {"rope_type": "yarn", "factor": 2.0, "rope_theta": 1e4}, "yarn"),
    ("hidden_act", "relu", "hidden_act"),
])
def test_unsupported_field_named(field, value, match):
  d = {**tf.LlamaConfig(**CASES["llama"][1]).to_dict(), field: value}
  with pytest.raises(ValueError, match=match):
    config_from_hf(d)


def test_ambiguous_multimodal_softcap_named():
  text = tf.Gemma3TextConfig(**{**CASES["gemma3"][1], "final_logit_softcapping": 30.0})
  with pytest.raises(ValueError, match="final_logit_softcapping"):
    config_from_hf(tf.Gemma3Config(text_config=text.to_dict()).to_dict())


def _drop_up_proj(tensors):
  del tensors["model.layers.1.mlp.up_proj.weight"]


def _shrink_k_proj(tensors):
  tensors["model.layers.0.self_attn.k_proj.weight"] = np.zeros((8, 32), np.float32)


def _add_o_bias(tensors):
  tensors["model.layers.0.self_attn.o_proj.bias"] = np.zeros((32,), np.float32)


@pytest.mark.parametrize("edit,match", [
    (_drop_up_proj, r"lacks tensor 'model\.layers\.1\.mlp\.up_proj\.weight'.*\(48, 32\)"),  # missing
    (_shrink_k_proj, r"k_proj\.weight' has shape \(8, 32\), expected \(16, 32\)"),  # misshaped
    (_add_o_bias, r"o_proj\.bias"),  # a weight we would silently ignore
])
def test_bad_tensor_named(edit, match, tmp_path):
  hf_model("llama").save_pretrained(tmp_path, safe_serialization=True)
  tensors = load_file(tmp_path / "model.safetensors")
  edit(tensors)
  save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
  with pytest.raises(ValueError, match=match):
    load_hf(str(tmp_path))


def test_inexpressible_config_named(tmp_path):
  with pytest.raises(ValueError, match="qk_norm"):
    save_hf(random_model(get_preset("tiny", qk_norm=True)), str(tmp_path))
