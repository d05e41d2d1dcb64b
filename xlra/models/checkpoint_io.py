"""Params-only model checkpoints: the xlra side of `xlra convert`, and the export format of training.

Layout of a model directory DIR (documented here because other stages read and write it):

    DIR/params/      orbax StandardCheckpointer pytree: `nnx.to_pure_dict(nnx.state(model, nnx.Param))`,
                     i.e. nested dicts of arrays, e.g. params["blocks"][0]["attn"]["wq"] [D, N, H]
    DIR/model.json   {"format": "xlra-model", "version": 1, "kind": "lm" | "scalar", "config": {ModelConfig}}
                     written last, so its presence means the directory is complete
    DIR/tokenizer*   the tokenizer the model was trained with (Hugging Face files, chat template included),
                     written beside it by every job that exports a model, and read by every job that loads one

Training checkpoints (orbax CheckpointManager, full TrainState) live elsewhere; this is the format to
hand a model to another stage or to `save_hf`. Restoring builds the module abstractly and reads each
array straight onto its sharding, so a large model is never materialised on one device.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

import jax
import orbax.checkpoint as ocp
from flax import nnx

from xlra.files import read_json, write_json
from xlra.models.config import ModelConfig
from xlra.models.heads import ScalarModel
from xlra.models.hf import param_sharding_fn
from xlra.models.transformer import Transformer

FORMAT, VERSION = "xlra-model", 1
MODEL = "model"  # a training workdir's export: WORKDIR/model
_KINDS = {"lm": Transformer, "scalar": ScalarModel}


def config_to_json(cfg: ModelConfig) -> dict[str, Any]:
  return dataclasses.asdict(cfg)


def config_from_json(d: Mapping[str, Any]) -> ModelConfig:
  """Inverse of config_to_json; unknown fields fail by name (a checkpoint from a newer xlra)."""
  names = {f.name for f in dataclasses.fields(ModelConfig)}
  unknown = sorted(set(d) - names)
  if unknown:
    raise ValueError(f"model config fields {unknown} are unknown to this xlra version; known: {sorted(names)}")
  d = dict(d)
  for key in ("layer_types", "eos_token_id"):  # JSON has no tuples; the frozen config needs hashable fields
    if isinstance(d.get(key), list):
      d[key] = tuple(d[key])
  return ModelConfig(**d)


def _kind(model: nnx.Module) -> str:
  for kind, cls in _KINDS.items():
    if type(model) is cls:
      return kind
  raise TypeError(f"save_model takes a Transformer or ScalarModel, not {type(model).__name__}")


def save_model(model: Transformer | ScalarModel, directory: str) -> None:
  """Write `directory/params` (orbax) and `directory/model.json`; overwrites an earlier save there.

  Every process must call it (orbax saves collectively); arrays may be sharded over a mesh.
  """
  directory = os.path.abspath(directory)
  kind = _kind(model)
  cfg = model.cfg if kind == "lm" else model.backbone.cfg
  meta = os.path.join(directory, "model.json")
  if jax.process_index() == 0 and os.path.exists(meta):
    os.remove(meta)  # mark incomplete while the params are rewritten
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(os.path.join(directory, "params"), nnx.to_pure_dict(nnx.state(model, nnx.Param)), force=True)
  checkpointer.wait_until_finished()
  if jax.process_index() == 0:
    write_json(meta, {"format": FORMAT, "version": VERSION, "kind": kind, "config": config_to_json(cfg)})


def read_model_config(directory: str) -> tuple[str, ModelConfig]:
  """(kind, ModelConfig) of a model directory, with a clear error when it is not one."""
  meta_path = os.path.join(directory, "model.json")
  if not os.path.exists(meta_path):
    raise FileNotFoundError(f"{meta_path} not found: not a complete xlra model directory (written by "
                            f"xlra.models.checkpoint_io.save_model or `xlra convert`)")
  meta = read_json(meta_path)
  if meta.get("format") != FORMAT or meta.get("version") != VERSION or meta.get("kind") not in _KINDS:
    raise ValueError(f"{meta_path}: format/version/kind {meta.get('format')!r}/{meta.get('version')!r}/"
                     f"{meta.get('kind')!r} not understood; expected {FORMAT!r}/{VERSION}/{sorted(_KINDS)}")
  return meta["kind"], config_from_json(meta["config"])


def resolve_model_dir(path: str, field: str = "config.init_checkpoint") -> str:
  """A model directory: `path` itself, or the `model/` export of a training workdir."""
  for candidate in (path, os.path.join(path, MODEL)):
    if os.path.exists(os.path.join(candidate, "model.json")):
      read_model_config(candidate)  # clear error for a foreign or newer format
      return candidate
  raise FileNotFoundError(f"{field}={path!r} is neither a model directory (with model.json) nor a training "
                          f"workdir with a finished {MODEL}/ export")


def load_model(directory: str, *, dtype: str | None = None, compute_dtype: str | None = None, mesh=None,
               rules: Mapping[str, Any] | None = None) -> Transformer | ScalarModel:
  """The model saved by `save_model` (a Transformer, or a ScalarModel if one was saved).

  dtype: parameter dtype to restore into (default: as saved; orbax casts); compute_dtype defaults to
  dtype. With a mesh, each array is read onto NamedSharding(mesh, rules on its `axes`) (rules default
  to xlra.parallel.mesh.RULES); without one, onto the first device.
  """
  directory = os.path.abspath(directory)
  kind, cfg = read_model_config(directory)
  if dtype is not None:
    cfg = cfg.replace(param_dtype=dtype, dtype=compute_dtype or dtype)
  elif compute_dtype is not None:
    cfg = cfg.replace(dtype=compute_dtype)
  model = nnx.eval_shape(lambda: _KINDS[kind](cfg, rngs=nnx.Rngs(0)))
  state = nnx.state(model, nnx.Param)
  sharding_of = param_sharding_fn(mesh, rules)
  for _, var in nnx.to_flat_state(state):  # restore target: shape, dtype and sharding of every param
    value = var.get_value()
    var.set_value(jax.ShapeDtypeStruct(value.shape, value.dtype, sharding=sharding_of(var)))
  restored = ocp.StandardCheckpointer().restore(os.path.join(directory, "params"), nnx.to_pure_dict(state))
  nnx.replace_by_pure_dict(state, restored)
  nnx.update(model, state)
  return model
