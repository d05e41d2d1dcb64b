"""Hugging Face interop: `config.json` <-> ModelConfig, safetensors <-> Transformer params.

`load_hf(dir)` builds the module abstractly (`nnx.eval_shape`, so a large model never materialises a
random init) and fills it one tensor at a time from single or sharded safetensors; with a mesh each
tensor goes straight onto its NamedSharding, so the host never holds more than one tensor. No pickle,
no remote code: only `config.json` and `*.safetensors` are read.

Layouts. HF linear weights are [out, in]; ours are [in, ...]: wq/wk/wv [D, heads, H], wo [heads, H, D],
MLP kernels [in, out], embedding [V, D], lm_head [D, V]. Every mapping is "reshape the HF tensor to
`view`, then transpose by `perm`", one table (`_tensor_table`) serving both directions.

HF configs are normalised through transformers' own config classes (old `rope_theta`/`rope_scaling`
and new `rope_parameters` formats, per-family defaults such as Gemma 3's sliding pattern), then every
field we do not implement is rejected by name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from typing import Any, Callable, Iterator, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, SingleDeviceSharding
from safetensors import safe_open

from xlra.models.config import ModelConfig
from xlra.models.transformer import Transformer

# HF model_type -> (our family, HF architecture class written by save_hf)
_MODEL_TYPES = {
    "llama": ("llama", "LlamaForCausalLM"),
    "qwen2": ("qwen2", "Qwen2ForCausalLM"),
    "qwen3": ("qwen3", "Qwen3ForCausalLM"),
    "gemma2": ("gemma2", "Gemma2ForCausalLM"),
    "gemma3_text": ("gemma3", "Gemma3ForCausalLM"),
    "gemma3": ("gemma3", None),  # multimodal wrapper: we read its text_config and language model
}
_FAMILY_MODEL_TYPE = {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "gemma2": "gemma2",
                      "gemma3": "gemma3_text"}
_ROPE_TYPES = ("default", "linear", "llama3")
_LAYER_TYPES = {"full_attention": "full", "sliding_attention": "sliding"}


def _unsupported(field: str, value: Any, why: str) -> ValueError:
  return ValueError(f"config.json field {field}={value!r} is not implemented by xlra: {why}")


def _rope(params: Mapping[str, Any], field: str) -> tuple[float, dict | None]:
  """(theta, our rope_scaling) of one HF rope-parameter dict; unknown rope types fail by name."""
  rope_type = params.get("rope_type", params.get("type", "default"))
  if rope_type not in _ROPE_TYPES:
    raise _unsupported(f"{field}.rope_type", rope_type, f"implemented rope types are {_ROPE_TYPES}")
  if params.get("partial_rotary_factor", 1.0) != 1.0:
    raise _unsupported(f"{field}.partial_rotary_factor", params["partial_rotary_factor"], "rotary on all dims only")
  theta = float(params["rope_theta"])
  if rope_type == "default":
    return theta, None
  if rope_type == "linear":
    return theta, {"rope_type": "linear", "factor": float(params["factor"])}
  keys = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
  return theta, {"rope_type": "llama3", **{k: params[k] for k in keys}}


def _normalise(config_dict: Mapping[str, Any]):
  """The transformers config object for this dict (text part of a multimodal Gemma 3)."""
  model_type = config_dict.get("model_type")
  if model_type not in _MODEL_TYPES:
    raise ValueError(f"unsupported architecture: model_type={model_type!r} (architectures="
                     f"{config_dict.get('architectures')}); xlra implements {sorted(_MODEL_TYPES)}")
  from transformers import CONFIG_MAPPING  # lazy: importing transformers costs seconds

  hc = CONFIG_MAPPING[model_type].from_dict(dict(config_dict))
  if model_type == "gemma3":
    hc = hc.text_config
    if hc.final_logit_softcapping is not None:  # ambiguous: which class would read this checkpoint?
      raise _unsupported("text_config.final_logit_softcapping", hc.final_logit_softcapping,
                         "Gemma3ForConditionalGeneration ignores it but Gemma3ForCausalLM applies it")
  return hc


def config_from_hf(config_dict: Mapping[str, Any]) -> ModelConfig:
  """ModelConfig of a Hugging Face `config.json` dict; unsupported architectures or fields fail by name."""
  hc = _normalise(config_dict)
  family = _MODEL_TYPES[config_dict["model_type"]][0]
  gemma = family.startswith("gemma")

  act = hc.hidden_activation if gemma else hc.hidden_act
  if act not in ("silu", "gelu_pytorch_tanh"):
    raise _unsupported("hidden_activation" if gemma else "hidden_act", act, "use silu or gelu_pytorch_tanh")
  if getattr(hc, "attention_bias", False) and family != "qwen2":
    raise _unsupported("attention_bias", True, f"{family} without biases only (Qwen 2 q/k/v biases are built in)")
  if getattr(hc, "mlp_bias", False):
    raise _unsupported("mlp_bias", True, "MLPs have no biases")
  if getattr(hc, "use_bidirectional_attention", False):
    raise _unsupported("use_bidirectional_attention", True, "decoders are causal")

  n = hc.num_hidden_layers
  window = getattr(hc, "sliding_window", None)
  hf_types = getattr(hc, "layer_types", None) or ["full_attention"] * n
  for t in hf_types:
    if t not in _LAYER_TYPES:
      raise _unsupported("layer_types", t, f"layer types are {sorted(_LAYER_TYPES)}")
  # A sliding layer without a window (Qwen with use_sliding_window=false) attends fully, as in HF.
  layer_types = tuple(_LAYER_TYPES[t] if window else "full" for t in hf_types)

  rope = hc.rope_parameters
  local_theta = None
  if family == "gemma3":  # per-layer-type rope: scaling on full layers, its own theta on sliding ones
    theta, scaling = _rope(rope["full_attention"], "rope_parameters.full_attention")
    local_theta, local_scaling = _rope(rope["sliding_attention"], "rope_parameters.sliding_attention")
    if local_scaling is not None:
      raise _unsupported("rope_parameters.sliding_attention.rope_type", local_scaling["rope_type"],
                         "sliding layers use default rope")
  else:
    theta, scaling = _rope(rope, "rope_parameters")

  n_heads = hc.num_attention_heads
  head_dim = getattr(hc, "head_dim", None) or hc.hidden_size // n_heads
  return ModelConfig(
      family=family, vocab_size=hc.vocab_size, d_model=hc.hidden_size, n_layers=n, n_heads=n_heads,
      n_kv_heads=hc.num_key_value_heads or n_heads, head_dim=head_dim, d_ff=hc.intermediate_size,
      act="silu" if act == "silu" else "gelu_tanh", norm_eps=hc.rms_norm_eps, norm_offset=gemma,
      post_norms=gemma, qkv_bias=family == "qwen2", qk_norm=family in ("qwen3", "gemma3"),
      tie_embeddings=bool(hc.tie_word_embeddings), embed_scale=gemma, rope_theta=theta, rope_scaling=scaling,
      local_rope_theta=local_theta, attn_softcap=getattr(hc, "attn_logit_softcapping", None),
      final_softcap=getattr(hc, "final_logit_softcapping", None),
      query_pre_attn_scalar=getattr(hc, "query_pre_attn_scalar", None),
      sliding_window=window if "sliding" in layer_types else None,
      layer_types=layer_types if "sliding" in layer_types else None, max_seq_len=hc.max_position_embeddings,
      **_token_ids(config_dict))


def _token_ids(config_dict: Mapping[str, Any]) -> dict[str, Any]:
  """bos/eos/pad ids of a config.json (top level, or the text config of a multimodal one)."""
  d = config_dict.get("text_config") or config_dict
  out = {}
  for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
    v = d.get(key, config_dict.get(key))
    out[key] = tuple(v) if isinstance(v, list) else v
  return out


def _hf_rope(theta: float, scaling: dict | None) -> dict:
  return {"rope_type": "default", "rope_theta": theta} if scaling is None else {**scaling, "rope_theta": theta}


def config_to_hf(cfg: ModelConfig, dtype: str = "float32"):
  """The transformers config that `save_hf` writes; fails if HF would not read it back as `cfg`."""
  from transformers import CONFIG_MAPPING

  model_type = _FAMILY_MODEL_TYPE[cfg.family]
  gemma = cfg.family.startswith("gemma")
  kw: dict[str, Any] = dict(
      vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.d_ff,
      num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads, num_key_value_heads=cfg.n_kv_heads,
      max_position_embeddings=cfg.max_seq_len, rms_norm_eps=cfg.norm_eps, tie_word_embeddings=cfg.tie_embeddings,
      dtype=dtype, architectures=[_MODEL_TYPES[model_type][1]], bos_token_id=cfg.bos_token_id,
      eos_token_id=list(cfg.eos_token_id) if isinstance(cfg.eos_token_id, tuple) else cfg.eos_token_id,
      pad_token_id=cfg.pad_token_id)
  if cfg.family != "qwen2":  # Qwen 2 derives head_dim from hidden_size / heads
    kw["head_dim"] = cfg.head_dim
  kw["hidden_activation" if gemma else "hidden_act"] = "silu" if cfg.act == "silu" else "gelu_pytorch_tanh"
  if cfg.family == "gemma3":
    kw["rope_parameters"] = {"full_attention": _hf_rope(cfg.rope_theta, cfg.rope_scaling),
                             "sliding_attention": _hf_rope(cfg.local_rope_theta or cfg.rope_theta, None)}
  else:
    kw["rope_parameters"] = _hf_rope(cfg.rope_theta, cfg.rope_scaling)
  types = [{"full": "full_attention", "sliding": "sliding_attention"}[cfg.layer_type(i)] for i in range(cfg.n_layers)]
  if cfg.family in ("qwen2", "qwen3"):
    kw.update(use_sliding_window=cfg.sliding_window is not None, sliding_window=cfg.sliding_window,
              layer_types=types)
  if gemma:
    kw.update(query_pre_attn_scalar=cfg.query_pre_attn_scalar or cfg.head_dim, sliding_window=cfg.sliding_window,
              layer_types=types, attn_logit_softcapping=cfg.attn_softcap,
              final_logit_softcapping=cfg.final_softcap)
  hc = CONFIG_MAPPING[model_type](**kw)
  back = config_from_hf({**hc.to_dict(), "model_type": model_type})
  ignore = {"dtype", "param_dtype"}
  if cfg.query_pre_attn_scalar is None and gemma:
    ignore.add("query_pre_attn_scalar")
  if cfg.local_rope_theta is None and cfg.family == "gemma3":
    ignore.add("local_rope_theta")
  diff = [f.name for f in dataclasses.fields(cfg)
          if f.name not in ignore and getattr(back, f.name) != getattr(cfg, f.name)]
  if diff:
    raise ValueError(f"ModelConfig fields {diff} ({[getattr(cfg, f) for f in diff]}) cannot be expressed "
                     f"as a Hugging Face {model_type} config; save_hf would write a different model")
  return hc


# ---------------------------------------------------------------------------------------------- tensors


@dataclasses.dataclass(frozen=True)
class _Tensor:
  """One HF tensor: ours = hf.reshape(view).transpose(perm)."""

  path: tuple[str | int, ...]  # attribute path in Transformer
  name: str
  hf_shape: tuple[int, ...]
  view: tuple[int, ...]
  perm: tuple[int, ...]

  @property
  def shape(self) -> tuple[int, ...]:
    return tuple(self.view[p] for p in self.perm)

  def to_ours(self, a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.reshape(self.view).transpose(self.perm))

  def to_hf(self, a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(np.argsort(self.perm)).reshape(self.hf_shape))


def _tensor_table(cfg: ModelConfig, prefix: str = "model.") -> list[_Tensor]:
  d, f, v, n, k, h = cfg.d_model, cfg.d_ff, cfg.vocab_size, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
  copy = lambda path, name, shape: _Tensor(path, name, shape, shape, tuple(range(len(shape))))
  out = [copy(("embedding",), prefix + "embed_tokens.weight", (v, d)),
         copy(("final_norm", "scale"), prefix + "norm.weight", (d,))]
  if not cfg.tie_embeddings:
    out.append(_Tensor(("lm_head",), "lm_head.weight", (v, d), (v, d), (1, 0)))
  gemma = cfg.post_norms
  for i in range(cfg.n_layers):
    p, b = f"{prefix}layers.{i}.", ("blocks", i)
    a = p + "self_attn."
    out += [copy(b + ("attn_norm", "scale"), p + "input_layernorm.weight", (d,)),
            _Tensor(b + ("attn", "wq"), a + "q_proj.weight", (n * h, d), (n, h, d), (2, 0, 1)),
            _Tensor(b + ("attn", "wk"), a + "k_proj.weight", (k * h, d), (k, h, d), (2, 0, 1)),
            _Tensor(b + ("attn", "wv"), a + "v_proj.weight", (k * h, d), (k, h, d), (2, 0, 1)),
            _Tensor(b + ("attn", "wo"), a + "o_proj.weight", (d, n * h), (d, n, h), (1, 2, 0)),
            _Tensor(b + ("mlp", "w_gate"), p + "mlp.gate_proj.weight", (f, d), (f, d), (1, 0)),
            _Tensor(b + ("mlp", "w_up"), p + "mlp.up_proj.weight", (f, d), (f, d), (1, 0)),
            _Tensor(b + ("mlp", "w_down"), p + "mlp.down_proj.weight", (d, f), (d, f), (1, 0))]
    if cfg.qkv_bias:
      out += [_Tensor(b + ("attn", "b" + x), a + f"{x}_proj.bias", (m * h,), (m, h), (0, 1))
              for x, m in (("q", n), ("k", k), ("v", k))]
    if cfg.qk_norm:
      out += [copy(b + ("attn", "q_norm", "scale"), a + "q_norm.weight", (h,)),
              copy(b + ("attn", "k_norm", "scale"), a + "k_norm.weight", (h,))]
    if gemma:  # Gemma names: post_attention_layernorm is the *output* norm of attention
      out += [copy(b + ("attn_post_norm", "scale"), p + "post_attention_layernorm.weight", (d,)),
              copy(b + ("mlp_norm", "scale"), p + "pre_feedforward_layernorm.weight", (d,)),
              copy(b + ("mlp_post_norm", "scale"), p + "post_feedforward_layernorm.weight", (d,))]
    else:
      out.append(copy(b + ("mlp_norm", "scale"), p + "post_attention_layernorm.weight", (d,)))
  return out


def _variable(model: nnx.Module, path: tuple[str | int, ...]) -> nnx.Variable:
  obj: Any = model
  for key in path:
    obj = obj[key] if isinstance(key, int) else getattr(obj, key)
  return obj


class _SafetensorsDir:
  """Lazy reader of a directory's single or sharded (index.json) safetensors files."""

  def __init__(self, path: str, stack: contextlib.ExitStack):
    self.path, self._stack, self._open = path, stack, {}
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.exists(index):
      with open(index) as fh:
        self.where = dict(json.load(fh)["weight_map"])
    elif os.path.exists(os.path.join(path, "model.safetensors")):
      self.where = {name: "model.safetensors" for name in self._file("model.safetensors").keys()}
    else:
      raise FileNotFoundError(f"{path} has neither model.safetensors nor model.safetensors.index.json "
                              f"(pickle checkpoints are not read; re-save with safe_serialization)")

  def _file(self, fname: str):
    if fname not in self._open:
      self._open[fname] = self._stack.enter_context(safe_open(os.path.join(self.path, fname), framework="numpy"))
    return self._open[fname]

  def shape(self, name: str) -> tuple[int, ...]:
    return tuple(self._file(self.where[name]).get_slice(name).get_shape())

  def read(self, name: str) -> np.ndarray:
    try:
      return self._file(self.where[name]).get_tensor(name)  # bfloat16 arrives as ml_dtypes.bfloat16
    except TypeError as e:  # older safetensors cannot hand bfloat16 to numpy (safetensors issue #598)
      import safetensors
      raise TypeError(f"{self.path}: reading {name!r} failed ({e}); safetensors {safetensors.__version__} "
                      f"lacks numpy bfloat16 support: upgrade it (tested with 0.8)") from e


def _language_prefix(names: Mapping[str, Any], path: str) -> str:
  for prefix in ("model.", "model.language_model.", "language_model.model."):
    if prefix + "embed_tokens.weight" in names:
      return prefix
  raise ValueError(f"{path}: no embedding tensor found (looked for model.embed_tokens.weight and the "
                   f"Gemma 3 multimodal language_model prefixes)")


def param_sharding_fn(mesh=None, rules: Mapping[str, Any] | None = None) -> Callable[[nnx.Variable], Any]:
  """var -> its Sharding: NamedSharding(mesh, rules on the var's `axes` metadata), or the first local device.

  rules default to xlra.parallel.mesh.RULES. Shared by load_hf and checkpoint_io.load_model.
  """
  if mesh is None:
    device = SingleDeviceSharding(jax.local_devices()[0])
    return lambda var: device
  from xlra.parallel.mesh import RULES, logical_spec

  rules = RULES if rules is None else rules
  return lambda var: NamedSharding(mesh, logical_spec(var.get_metadata().get("axes"), rules))


def load_hf(path: str, dtype: str = "float32", *, compute_dtype: str | None = None, mesh=None,
            rules: Mapping[str, Any] | None = None) -> Transformer:
  """Transformer with the weights of the HF checkpoint directory `path`.

  dtype: parameter dtype the weights are cast to (on the host, tensor by tensor); compute_dtype defaults
  to it. mesh/rules: place each tensor on NamedSharding(mesh, rules applied to the param's `axes`)
  (rules default to xlra.parallel.mesh.RULES); without a mesh, tensors go to the first local device.
  """
  with open(os.path.join(path, "config.json")) as fh:
    cfg = config_from_hf(json.load(fh)).replace(param_dtype=jnp.dtype(dtype).name,
                                                dtype=jnp.dtype(compute_dtype or dtype).name)
  model = nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0)))
  sharding_of = param_sharding_fn(mesh, rules)
  np_dtype = np.dtype(jnp.dtype(dtype))
  with contextlib.ExitStack() as stack:
    files = _SafetensorsDir(path, stack)
    prefix = _language_prefix(files.where, path)
    table = _tensor_table(cfg, prefix)
    for t in table:
      if t.name not in files.where:
        raise ValueError(f"{path}: checkpoint lacks tensor {t.name!r} (expected shape {t.hf_shape})")
      got = files.shape(t.name)
      if got != t.hf_shape:
        raise ValueError(f"{path}: tensor {t.name!r} has shape {got}, expected {t.hf_shape} from config.json")
    ours = {t.name for t in table} | ({"lm_head.weight"} if cfg.tie_embeddings else set())
    extra = sorted(n for n in files.where if n not in ours and (n.startswith(prefix) or n.startswith("lm_head")))
    if extra:
      raise ValueError(f"{path}: tensors {extra[:5]}{'...' if len(extra) > 5 else ''} are not used by the "
                       f"{cfg.family} mapping (a config feature xlra does not implement, e.g. biases)")
    for t in table:
      var = _variable(model, t.path)
      assert tuple(var.get_value().shape) == t.shape, (t.name, var.get_value().shape, t.shape)
      arr = t.to_ours(files.read(t.name)).astype(np_dtype, copy=False)
      # each device copies only its own slice of this one host tensor
      var.set_value(jax.make_array_from_callback(arr.shape, sharding_of(var), lambda idx, arr=arr: arr[idx]))
      del arr
  return model


def _host(x: jax.Array) -> np.ndarray:
  if not getattr(x, "is_fully_addressable", True):
    from jax.experimental import multihost_utils
    x = multihost_utils.process_allgather(x, tiled=True)
  return np.asarray(jax.device_get(x))


def _shards(items: Iterator[tuple[str, np.ndarray]], max_bytes: int) -> Iterator[dict[str, np.ndarray]]:
  shard, size = {}, 0
  for name, arr in items:
    if shard and size + arr.nbytes > max_bytes:
      yield shard
      shard, size = {}, 0
    shard[name] = arr
    size += arr.nbytes
  if shard:
    yield shard


def save_hf(model: Transformer, path: str, dtype: str | None = None, *, max_shard_bytes: int = 5 << 30) -> None:
  """Write `path/config.json` + safetensors (sharded with an index above max_shard_bytes) for transformers.

  dtype: tensor dtype in the files (default: the model's param dtype). Host memory holds one shard.
  """
  from safetensors.numpy import save_file

  cfg = model.cfg
  dtype = jnp.dtype(dtype or cfg.param_dtype).name
  hc = config_to_hf(cfg, dtype)
  np_dtype = np.dtype(jnp.dtype(dtype))
  table = _tensor_table(cfg)
  items = ((t.name, t.to_hf(_host(_variable(model, t.path).get_value())).astype(np_dtype)) for t in table)
  writer = jax.process_index() == 0  # every process gathers (collective); process 0 writes
  if writer:
    os.makedirs(path, exist_ok=True)
    for old in os.listdir(path):  # a previous save's weights would shadow or mix with these
      if old.startswith("model") and (old.endswith(".safetensors") or old.endswith(".safetensors.index.json")):
        os.remove(os.path.join(path, old))
    hc.save_pretrained(path)
  written: list[tuple[str, list[str], int]] = []  # (temporary file, tensor names, bytes)
  for i, shard in enumerate(_shards(items, max_shard_bytes)):  # one shard in host memory at a time
    if writer:
      tmp = os.path.join(path, f"model-{i + 1:05d}.safetensors.tmp")
      save_file(shard, tmp, metadata={"format": "pt"})
      written.append((tmp, list(shard), sum(a.nbytes for a in shard.values())))
  if not writer:
    return
  if len(written) == 1:
    os.replace(written[0][0], os.path.join(path, "model.safetensors"))
    return
  weight_map = {}
  for i, (tmp, names, _) in enumerate(written):
    fname = f"model-{i + 1:05d}-of-{len(written):05d}.safetensors"
    os.replace(tmp, os.path.join(path, fname))
    weight_map.update({name: fname for name in names})
  with open(os.path.join(path, "model.safetensors.index.json"), "w") as fh:
    json.dump({"metadata": {"total_size": sum(w[2] for w in written)}, "weight_map": weight_map}, fh, indent=2)
