"""The SFT train step the benchmarks time: the project's own step (xlra.train) on synthetic tokens.

It is what `xlra sft` runs: `init_params` in their shards, AdamW with global-norm clipping from
`xlra.train.optim`, `make_sft_step` jitted once by `jit_train_step` with pinned shardings and a
donated state. Rows are full (no padding), so every token is real and the loss covers L - 1
targets per row.

FLOPs per token (`xlra.train.metrics.flops_per_token`, PaLM appendix B):
    6 * N_matmul + 12 * n_layers * n_heads * head_dim * seq
N_matmul counts every projection weight (q, k, v, o, gate, up, down) and the output projection
(d_model x vocab); the embedding lookup is free. The attention term counts the full seq x seq score
and value products, as PaLM's model FLOPs do, although ours computes 5/8 of that square at seq 512
(causal query blocks, `xlra.models.transformer.query_blocks`): skipped masked work raises the MFU.
"""

from __future__ import annotations

import argparse
import dataclasses

import jax
import numpy as np
from flax import nnx

from xlra.models.config import ModelConfig
from xlra.models.presets import get_preset
from xlra.models.transformer import Transformer
from xlra.parallel import mesh as mesh_lib
from xlra.train import optim, sft, state as state_lib, update
from xlra.train.metrics import flops_per_token

DTYPES = ("float32", "bfloat16")


@dataclasses.dataclass
class SftStep:
  """One compiled SFT step and its workload; `run()` does one step and waits for it."""

  cfg: ModelConfig
  batch: int
  seq: int
  params: int  # parameter count (embedding and head included)
  _step: object
  _state: object
  _batch: dict
  _rng: jax.Array

  @property
  def tokens(self) -> int:
    return self.batch * self.seq

  @property
  def flops_per_token(self) -> float:
    return flops_per_token(self.cfg, self.seq)

  def run(self) -> float:
    """One step; returns the loss (a float, so the step has finished)."""
    self._state, metrics = self._step(self._state, self._batch, self._rng)
    return float(metrics["loss"])


def argument_parser(doc: str) -> argparse.ArgumentParser:
  """The options every single-shape SFT benchmark takes (--preset --batch --seq --dtype --rounds)."""
  ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--preset", default="bench32m")
  ap.add_argument("--batch", type=int, default=8)
  ap.add_argument("--seq", type=int, default=512)
  ap.add_argument("--dtype", default="float32", choices=DTYPES)
  ap.add_argument("--rounds", type=int, default=5)
  return ap


def model_config(preset: str, seq: int, dtype: str) -> ModelConfig:
  """The preset at compute `dtype` with float32 master weights (bf16 compute, f32 accumulation:
  logits, softmax and losses stay float32 in the model and the loss)."""
  if dtype not in DTYPES:
    raise ValueError(f"--dtype={dtype!r}: choose one of {DTYPES}")
  cfg = get_preset(preset, dtype=dtype, param_dtype="float32")
  return cfg.replace(max_seq_len=max(cfg.max_seq_len, seq))


def tokens(cfg: ModelConfig, batch: int, seq: int, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).integers(1, cfg.vocab_size, (batch, seq)).astype(np.int32)


def build(preset: str = "bench32m", batch: int = 8, seq: int = 512, dtype: str = "float32",
          devices: int | None = None, host: dict | None = None, vocab_size: int | None = None) -> SftStep:
  """The jitted step on a data-parallel mesh of `devices` devices (default all: on CPU one per core, as
  `distributed.split_host_cpu` sets up), on full rows of
  random tokens or on the given `host` batch ([batch, seq] arrays from xlra.data.batching)."""
  cfg = model_config(preset, seq, dtype)
  if vocab_size:
    cfg = cfg.replace(vocab_size=vocab_size)
  devices = devices or jax.device_count()
  mesh = mesh_lib.make_mesh({"data": devices}, devices=jax.devices()[:devices])
  tx, schedule = optim.make_optimizer(optim.default_optimizer_config(), total_steps=1000)
  build_model = lambda: Transformer(cfg, rngs=nnx.Rngs(0))
  graphdef, _ = state_lib.abstract_params(build_model)
  state = state_lib.make_state(state_lib.init_params(build_model, mesh), tx, mesh, seed=0)
  if host is None:
    toks = tokens(cfg, batch, seq)
    host = {"tokens": toks, "mask": np.ones_like(toks, bool), "loss_mask": np.ones_like(toks, bool)}
  arrays = mesh_lib.shard_batch(host, mesh)
  step = update.jit_train_step(sft.make_sft_step(graphdef, tx, schedule, mesh=mesh),
                               state_lib.state_shardings(state, mesh), arrays, mesh)
  return SftStep(cfg, batch, seq, state_lib.count_params(state.params), step, state, arrays,
                 jax.random.PRNGKey(0))
