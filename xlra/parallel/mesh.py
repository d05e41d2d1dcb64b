"""Device mesh (axes data, fsdp, tensor) and the logical-axis rules that place parameters and batches.

Parameters carry logical axis names in their nnx `axes` metadata (embed, vocab, heads, kv_heads,
head_dim, mlp). `RULES` maps each logical name to a mesh axis (or None: replicated). Batches are
split over (data, fsdp). The same code runs on 1 CPU, 8 fake CPU devices and a pod.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import jax
import numpy as np
from flax import nnx
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")

# logical axis -> mesh axis. FSDP shards the model dimension of every matrix; tensor parallelism
# splits heads, the MLP hidden dimension and the vocabulary.
RULES: dict[str, str | None] = {
    "vocab": "tensor",
    "embed": "fsdp",
    "heads": "tensor",
    "kv_heads": "tensor",
    "head_dim": None,
    "mlp": "tensor",
}


def make_mesh(shape: Mapping[str, int], devices: Iterable[jax.Device] | None = None) -> Mesh:
  """Mesh with axes (data, fsdp, tensor). One entry may be -1: it takes the devices that remain.

  Raises a ValueError naming `mesh.*` config fields when the shape does not fit the devices.
  """
  devices = list(jax.devices() if devices is None else devices)
  unknown = set(shape) - set(MESH_AXES)
  if unknown:
    raise ValueError(f"config.mesh has unknown axes {sorted(unknown)}; the axes are {MESH_AXES}")
  dims = [int(shape.get(a, 1)) for a in MESH_AXES]
  if dims.count(-1) > 1 or any(d == 0 or d < -1 for d in dims):
    raise ValueError(f"config.mesh={dict(zip(MESH_AXES, dims))}: sizes must be positive, at most one -1")
  if -1 in dims:
    rest = math.prod(d for d in dims if d != -1)
    if len(devices) % rest:
      raise ValueError(f"config.mesh={dict(zip(MESH_AXES, dims))}: {len(devices)} devices are not divisible "
                       f"by the fixed axes ({rest}); change the mesh sizes")
    dims[dims.index(-1)] = len(devices) // rest
  if math.prod(dims) != len(devices):
    raise ValueError(f"config.mesh={dict(zip(MESH_AXES, dims))} needs {math.prod(dims)} devices but "
                     f"{len(devices)} are available; set config.mesh.data=-1 to use all of them")
  arr = np.asarray(devices).reshape(dims)
  return Mesh(arr, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES))


def logical_spec(axes: tuple[str | None, ...] | None, rules: Mapping[str, Any] = RULES) -> P:
  """PartitionSpec of a tensor whose dimensions have these logical names.

  A mesh axis is used at most once per tensor (the first dimension that asks for it wins), so
  e.g. a square matrix whose two dims both map to `tensor` stays valid.
  """
  if axes is None:
    return P()
  used, spec = set(), []
  for name in axes:
    if name is not None and name not in rules:
      raise ValueError(f"logical axis {name!r} has no sharding rule; add it to config.sharding_rules")
    target = rules.get(name) if name is not None else None
    targets = (target,) if isinstance(target, str) else tuple(target or ())
    targets = tuple(t for t in targets if t not in used)
    used.update(targets)
    spec.append(targets[0] if len(targets) == 1 else (targets or None))
  return P(*spec)


def _is_var(x) -> bool:
  return isinstance(x, nnx.Variable)


def tree_shardings(tree: Any, mesh: Mesh, rules: Mapping[str, Any] = RULES) -> Any:
  """NamedShardings for a pytree that holds nnx Variables (params, optimizer moments, cache...).

  Variables are placed by their `axes` metadata; any other leaf (step counters, RNG keys) is
  replicated. A Variable whose rank differs from its `axes` (Adafactor's factored row/column
  moments keep the parameter's metadata on a reduced shape) is replicated too, and so is any
  dimension the mesh axes do not divide (those moments again, e.g. shape (1,)): both are small.
  The result is a tree prefix usable as jit in/out_shardings and by device_put.
  """

  def fits(dim: int, target) -> bool:
    names = (target,) if isinstance(target, str) else tuple(target or ())
    return dim % math.prod(mesh.shape[n] for n in names) == 0

  def one(x):
    if _is_var(x):
      axes = x.get_metadata().get("axes")
      if axes is not None and len(axes) == len(x.shape):
        spec = logical_spec(axes, rules)
        return NamedSharding(mesh, P(*(t if fits(d, t) else None for d, t in zip(x.shape, spec))))
    return NamedSharding(mesh, P())

  return jax.tree.map(one, tree, is_leaf=_is_var)


def shard_tree(tree: Any, mesh: Mesh, rules: Mapping[str, Any] = RULES) -> Any:
  return jax.device_put(tree, tree_shardings(tree, mesh, rules))


def batch_sharding(mesh: Mesh, ndim: int = 2) -> NamedSharding:
  """Leading (batch) dimension over (data, fsdp); the rest replicated."""
  return NamedSharding(mesh, P(BATCH_AXES, *([None] * (ndim - 1))))


def batch_shardings(batch: Mapping[str, Any], mesh: Mesh) -> dict[str, NamedSharding]:
  """Per-key batch shardings (leading dim over data*fsdp) for jit in_shardings."""
  return {k: batch_sharding(mesh, v.ndim if hasattr(v, "ndim") else np.ndim(v)) for k, v in batch.items()}


def batch_shards(mesh: Mesh) -> int:
  return mesh.shape["data"] * mesh.shape["fsdp"]


def check_batch_size(batch_size: int, mesh: Mesh, field: str = "config.batch_size") -> None:
  n = batch_shards(mesh)
  if batch_size % n:
    raise ValueError(f"{field}={batch_size} must be divisible by mesh data*fsdp={n} "
                     f"(the batch is split over those axes); use a multiple of {n}")


def shard_batch(batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Global jax.Arrays from this process's rows of a batch (multi-host safe).

  Each process passes only its own slice along the batch dimension; on one process that is the
  whole batch.
  """
  out = {}
  for k, v in batch.items():
    v = np.asarray(v)
    out[k] = jax.make_array_from_process_local_data(batch_sharding(mesh, v.ndim), v)
  return out


def rules_from_config(pairs: Iterable[tuple[str, Any]] | None) -> dict[str, Any]:
  """config.sharding_rules as [(logical, mesh_axis_or_None), ...] overriding RULES."""
  rules = dict(RULES)
  for name, target in pairs or ():
    if target is not None and not set((target,) if isinstance(target, str) else target) <= set(MESH_AXES):
      raise ValueError(f"config.sharding_rules: {name!r} -> {target!r} is not a mesh axis {MESH_AXES}")
    rules[name] = target
  return rules
