"""`xlra convert` and the params-only model directory (save_model / load_model)."""

from __future__ import annotations

import importlib.util
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import transformers as tf
from flax import nnx

from hf_testing import CASES, batch, hf_model, logits, random_model, torch_logits
from xlra.models import convert
from xlra.models.checkpoint_io import load_model, save_model
from xlra.models.heads import ScalarModel
from xlra.models.hf import config_from_hf

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _convert_config(arg: str, **fields):
  spec = importlib.util.spec_from_file_location("convert_config", os.path.join(_ROOT, "configs", "convert.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(arg)
  config.update(fields)
  return config


def _params(model) -> list[np.ndarray]:
  return [np.asarray(x, np.float32) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]


def _gemma3_cfg():
  cls, kw = CASES["gemma3"]
  return config_from_hf({**cls(**kw).to_dict(), "model_type": cls.model_type})


def test_save_load_model_round_trip(tmp_path):
  cfg = _gemma3_cfg()  # layer_types tuple, rope_scaling dict and local theta must survive JSON
  model = random_model(cfg)
  save_model(model, str(tmp_path / "m"))
  meta = json.loads((tmp_path / "m" / "model.json").read_text())
  assert meta["kind"] == "lm" and meta["format"] == "xlra-model"
  back = load_model(str(tmp_path / "m"))
  assert back.cfg == cfg
  for a, b in zip(_params(model), _params(back), strict=True):
    np.testing.assert_array_equal(a, b)
  low = load_model(str(tmp_path / "m"), dtype="bfloat16")
  assert low.cfg.param_dtype == "bfloat16" and low.embedding[...].dtype == jnp.bfloat16
  save_model(back, str(tmp_path / "m"))  # overwriting an earlier save is allowed


def test_scalar_model_round_trip_on_mesh(tmp_path):
  from xlra.parallel.mesh import make_mesh

  cfg = _gemma3_cfg()
  model = ScalarModel(cfg, rngs=nnx.Rngs(0), backbone=random_model(cfg))
  save_model(model, str(tmp_path / "rm"))
  mesh = make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  back = load_model(str(tmp_path / "rm"), mesh=mesh)
  assert isinstance(back, ScalarModel)
  for a, b in zip(_params(model), _params(back), strict=True):
    np.testing.assert_array_equal(a, b)
  wq = back.backbone.blocks[0].attn.wq[...]
  assert tuple(wq.sharding.spec)[:2] == ("fsdp", "tensor") and len(wq.sharding.device_set) == 8


def test_convert_both_directions(tmp_path):
  ref_model = hf_model("qwen2")
  src = tmp_path / "hf_src"
  ref_model.save_pretrained(src, safe_serialization=True)
  (src / "tokenizer_config.json").write_text('{"model_max_length": 64}')
  work = str(tmp_path / "work")

  convert.run(_convert_config("hf_to_xlra", src=str(src)), work)
  assert os.path.exists(os.path.join(work, "model", "model.json"))
  assert os.path.exists(os.path.join(work, "model", "tokenizer_config.json"))
  tokens, mask = batch()
  want = torch_logits(ref_model, tokens, mask)
  assert np.abs(logits(load_model(os.path.join(work, "model")), tokens, mask) - want)[mask].max() <= 1e-4

  convert.run(_convert_config("xlra_to_hf", src=os.path.join(work, "model")), work)
  out = os.path.join(work, "hf")
  assert os.path.exists(os.path.join(out, "tokenizer_config.json"))
  exported = tf.AutoModelForCausalLM.from_pretrained(out, attn_implementation="eager").eval()
  assert np.abs(torch_logits(exported, tokens, mask) - want)[mask].max() <= 1e-4

  before = os.path.getmtime(os.path.join(out, "model.safetensors"))
  convert.run(_convert_config("xlra_to_hf", src=os.path.join(work, "model")), work)  # done: not redone
  assert os.path.getmtime(os.path.join(out, "model.safetensors")) == before


def test_convert_config_errors(tmp_path):
  with pytest.raises(ValueError, match="hf_to_gguf"):
    _convert_config("hf_to_gguf")
  with pytest.raises(ValueError, match="config.src"):
    convert.run(_convert_config("hf_to_xlra"), str(tmp_path))
  with pytest.raises(ValueError, match="config.dtype"):
    convert.run(_convert_config("hf_to_xlra", src=str(tmp_path), dtype="fp8"), str(tmp_path))
  with pytest.raises(FileNotFoundError, match="model.json"):
    load_model(str(tmp_path))


def test_round_trip_keeps_token_ids_and_bfloat16_and_takes_a_workdir(tmp_path):
  """A bf16 Qwen2 with bos/eos/pad ids comes back bf16 with the same ids; xlra_to_hf takes the workdir."""
  import torch

  src = tmp_path / "hf_src"
  hf_model("qwen2", bos_token_id=1, eos_token_id=2, pad_token_id=3).to(torch.bfloat16).save_pretrained(src)
  work = str(tmp_path / "work")
  convert.run(_convert_config("hf_to_xlra", src=str(src)), work)
  model = load_model(os.path.join(work, "model"))
  assert model.cfg.param_dtype == "bfloat16" and model.embedding[...].dtype == jnp.bfloat16
  convert.run(_convert_config("xlra_to_hf", src=work), work)  # the workdir, not work/model
  meta = json.loads((tmp_path / "work" / "hf" / "config.json").read_text())
  assert (meta["bos_token_id"], meta["eos_token_id"], meta["pad_token_id"]) == (1, 2, 3)
  assert meta["dtype"] == "bfloat16"
  back = tf.AutoModelForCausalLM.from_pretrained(str(tmp_path / "work" / "hf"))
  assert back.dtype == torch.bfloat16 and back.config.eos_token_id == 2
  forced = str(tmp_path / "f32")
  convert.run(_convert_config("xlra_to_hf", src=work, dst=forced, dtype="float32"), work)
  assert json.loads(open(os.path.join(forced, "config.json")).read())["dtype"] == "float32"
