"""The train state as a plain pytree, and how it is created and placed on a mesh.

`TrainState` holds arrays only (params, optimizer state, base RNG key), so orbax saves it and jit
shards it as is. The model's structure (nnx GraphDef) stays outside, static. The step number is
not stored separately: it is the optimizer's update count (`xlra.train.optim.step_of`).
"""

from __future__ import annotations

from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from xlra.parallel import mesh as mesh_lib
from xlra.train.optim import step_of


@flax.struct.dataclass
class TrainState:
  params: nnx.State  # nnx.Param variables (float32 master weights unless param_dtype says otherwise)
  opt_state: Any  # optax state; its `count` is the step
  rng: jax.Array  # base key, uint32[2]; each step folds its count in

  @property
  def step(self) -> jax.Array:
    return step_of(self.opt_state)


def split_params(model: nnx.Module) -> tuple[nnx.GraphDef, nnx.State]:
  """(graphdef, params). Models here hold nothing but nnx.Param; anything else would be lost."""
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  if jax.tree.leaves(rest):
    raise ValueError(f"{type(model).__name__} holds non-Param state {list(rest.flat_state())[:3]}; "
                     "the trainer only carries nnx.Param variables")
  return graphdef, params


def abstract_params(build: Callable[[], nnx.Module]) -> tuple[nnx.GraphDef, nnx.State]:
  """Graphdef and ShapeDtypeStruct params of `build()` without allocating anything."""
  return split_params(nnx.eval_shape(build))


_EAGER_INIT_MAX_PARAMS = 50_000_000


def init_params(build: Callable[[], nnx.Module], mesh: Mesh, rules=mesh_lib.RULES) -> nnx.State:
  """Fresh params on their shardings.

  Large models (and every model of a multi-process run) are created inside one jit with sharded
  outputs, so no device ever holds the whole model. Small ones are created eagerly and then placed: compiling that jit costs seconds per run,
  while the eager ops' compilations are cached for the whole process (tests, the pipeline's many
  small models). Both give the same values.
  """
  _, abstract = abstract_params(build)
  shardings = mesh_lib.tree_shardings(abstract, mesh, rules)
  if count_params(abstract) > _EAGER_INIT_MAX_PARAMS or jax.process_count() > 1:
    return jax.jit(lambda: split_params(build())[1], out_shardings=shardings)()
  return jax.device_put(split_params(build())[1], shardings)


def state_shardings(state: TrainState, mesh: Mesh, rules=mesh_lib.RULES) -> TrainState:
  """Shardings of every leaf of a (possibly abstract) TrainState: params and optimizer moments by
  their logical axes, counters and the RNG key replicated."""
  return TrainState(params=mesh_lib.tree_shardings(state.params, mesh, rules),
                    opt_state=mesh_lib.tree_shardings(state.opt_state, mesh, rules),
                    rng=NamedSharding(mesh, P()))


def abstract_state(abstract_params_: nnx.State, tx: optax.GradientTransformation) -> TrainState:
  """ShapeDtypeStruct TrainState (for restoring a checkpoint onto its shardings)."""
  return TrainState(params=abstract_params_, opt_state=jax.eval_shape(tx.init, abstract_params_),
                    rng=jax.ShapeDtypeStruct((2,), jnp.uint32))


def make_state(params: nnx.State, tx: optax.GradientTransformation, mesh: Mesh, seed: int,
               rules=mesh_lib.RULES) -> TrainState:
  """TrainState around params (placed onto their shardings; the step donates the state, so pass
  arrays nobody else holds). Optimizer moments get the params' shardings explicitly:
  `jax.jit(tx.init)` alone may leave them all on one device."""
  params = jax.device_put(params, mesh_lib.tree_shardings(params, mesh, rules))
  opt_sh = mesh_lib.tree_shardings(jax.eval_shape(tx.init, params), mesh, rules)
  opt_state = jax.jit(tx.init, out_shardings=opt_sh)(params)
  rng = jax.device_put(jax.random.PRNGKey(seed), NamedSharding(mesh, P()))
  return TrainState(params=params, opt_state=opt_state, rng=rng)


def count_params(params: nnx.State) -> int:
  return sum(int(x.size) for x in jax.tree.leaves(params))
