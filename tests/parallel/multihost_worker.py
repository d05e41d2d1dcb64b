"""One process of the multi-host SFT test (tests/parallel/test_multihost.py), run as a script.

    XLRA_COORDINATOR=127.0.0.1:PORT XLRA_NUM_PROCESSES=2 XLRA_PROCESS_ID=i JAX_PLATFORMS=cpu \
      XLA_FLAGS=--xla_force_host_platform_device_count=2 python tests/parallel/multihost_worker.py OUT WORKDIR

Without the XLRA_* variables it is the single-process reference (give it 4 fake devices). Either way
it trains the tiny model for a few SFT steps on a (data=1, fsdp=2, tensor=2) mesh with the project's
own pieces: the process-sharded data loader, `shard_batch`, the SFT step jitted with pinned
shardings, the orbax Checkpointer. With two processes the fsdp axis runs across them (the device
array is [process, local device]), so every parameter is split between the processes, gradients
cross the process boundary through gloo, and a checkpoint is complete only if both wrote their half.

Every process writes OUT_<process>.npz: per-step metrics and the target tokens of its own rows;
process 0 adds the final params, gathered to host.
"""

from __future__ import annotations

import sys

import jax
import numpy as np
from flax import nnx

from xlra.data import batching
from xlra.models.presets import get_preset
from xlra.models.transformer import Transformer
from xlra.parallel import distributed, mesh as mesh_lib
from xlra.train import checkpoint as ckpt_lib, optim, sft, state as state_lib, update

STEPS = 3
GLOBAL_BATCH, LENGTH = 8, 16
MESH = {"data": 1, "fsdp": 2, "tensor": 2}
CFG = get_preset("tiny", vocab_size=256, max_seq_len=64)


def build_model() -> Transformer:
  return Transformer(CFG, rngs=nnx.Rngs(0))


def make_optimizer():
  opt = optim.default_optimizer_config()
  # eps well above float noise (Adam's first update is lr * g / (|g| + eps)); see test_mesh.py
  opt.lr, opt.warmup_steps, opt.weight_decay, opt.eps = 1e-2, 0, 0.1, 1e-4
  return optim.make_optimizer(opt, total_steps=10)


def records(n: int = 32, seed: int = 0) -> list[dict]:
  """Encoded SFT records (prompt/response token ids) of varied lengths: the loader pads them."""
  rng = np.random.default_rng(seed)
  out = []
  for i in range(n):
    p, r = int(rng.integers(2, 6)), int(rng.integers(3, LENGTH - 6))
    out.append({"id": str(i), "prompt": rng.integers(3, 256, p).tolist(), "response": rng.integers(3, 256, r).tolist()})
  return out


def main(out_prefix: str, workdir: str) -> None:
  distributed.initialize_from_env()  # before anything touches a device
  from jax.experimental import multihost_utils

  assert jax.device_count() == 4, f"expected 4 devices in all, got {jax.devices()}"
  mesh = mesh_lib.make_mesh(MESH)
  tx, schedule = make_optimizer()
  graphdef, abstract_params = state_lib.abstract_params(build_model)
  params = state_lib.init_params(build_model, mesh)  # created in their shards, as the training loop does
  state = state_lib.make_state(params, tx, mesh, seed=0)
  shardings = state_lib.state_shardings(state, mesh)
  loader = batching.sft_loader(records(), GLOBAL_BATCH, 0, LENGTH, seed=0,
                               process_index=jax.process_index(), process_count=jax.process_count())

  step_fn, rows, local_targets = None, [], []
  for _ in range(STEPS):
    local = next(loader)  # this process's rows only
    assert local["tokens"].shape[0] == GLOBAL_BATCH // jax.process_count()
    local_targets.append(int(np.sum(local["loss_mask"][:, 1:] & local["mask"][:, 1:])))
    batch = mesh_lib.shard_batch(local, mesh)
    assert batch["tokens"].shape == (GLOBAL_BATCH, LENGTH)
    if step_fn is None:
      step_fn = update.jit_train_step(sft.make_sft_step(graphdef, tx, schedule, mesh=mesh), shardings, batch, mesh)
    state, metrics = step_fn(state, batch, jax.random.PRNGKey(1))
    rows.append({k: float(v) for k, v in jax.device_get(metrics).items()})

  final = multihost_utils.process_allgather(state.params, tiled=True)  # whole arrays on every process

  # Orbax from every process, then read back onto the same shardings (multi-host restore).
  ckpt = ckpt_lib.Checkpointer(workdir, keep=1, async_save=True)
  ckpt.save(STEPS, state, {"data": loader.state(), "step": STEPS})
  ckpt.wait()
  target = ckpt_lib.restore_target(state_lib.abstract_state(abstract_params, tx), shardings)
  restored, loop_state = ckpt.restore(STEPS, target)
  ckpt.close()
  assert loop_state["step"] == STEPS, loop_state
  assert int(jax.device_get(restored.step)) == STEPS
  back = multihost_utils.process_allgather(restored.params, tiled=True)
  for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(final)):
    np.testing.assert_array_equal(a, b)

  arrays = {f"metric/{k}": np.array([r[k] for r in rows]) for k in rows[0]}
  arrays["local_targets"] = np.array(local_targets)
  arrays["process_count"] = np.array(jax.process_count())
  if jax.process_index() == 0:
    arrays.update({f"param/{jax.tree_util.keystr(p)}": np.asarray(v)
                   for p, v in jax.tree_util.tree_leaves_with_path(final)})
  np.savez(f"{out_prefix}_{jax.process_index()}.npz", **arrays)


if __name__ == "__main__":
  main(sys.argv[1], sys.argv[2])
