"""A toy supervised task for the training loop (`xlra.train.loop.train`): a one-layer decoder on a
counting language (each token is the previous one + 1), with hooks to poison a step's batch or loss,
so checkpoint corruption, the NaN/Inf guard and the loss-spike detector run in-process in seconds.
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from xlra.data.batching import Loader, sft_batch
from xlra.models.presets import get_preset
from xlra.models.transformer import Transformer
from xlra.train import loop, metrics, optim, sft

CFG = get_preset("tiny", vocab_size=64, d_model=16, n_layers=1, n_heads=2, n_kv_heads=1, head_dim=8, d_ff=32,
                 max_seq_len=16)
LENGTH = 12
BATCH = 8


def config(**fields) -> ml_collections.ConfigDict:
  """Every field the loop reads, for a short run (the field list of configs/sft.py's base_config)."""
  base = config_defaults()
  c = ml_collections.ConfigDict(dict(
      seed=0, num_steps=6, num_epochs=0.0, batch_size=BATCH, eval_batch_size=BATCH, num_microbatches=1,
      mesh=dict(data=-1, fsdp=1, tensor=1), sharding_rules=(), optimizer=optim.default_optimizer_config(),
      log_every=1, eval_every=0, checkpoint_every=2, keep_checkpoints=3, async_checkpoints=False,
      best_metric="loss", best_mode="min", peak_flops=1e9, progress_every_s=1e9, init_checkpoint="", init_hf="",
      **base))
  c.optimizer.lr, c.optimizer.warmup_steps = 1e-2, 1
  c.update(fields)
  return c


def config_defaults() -> dict:
  """The numerics fields of configs/sft.py (spike detector), so a change there shows up here."""
  import reliability_cli

  full = reliability_cli.config_module("sft").base_config("ci")
  return {k: full[k] for k in ("spike_factor", "spike_warmup", "spike_action")}


def _records(n: int, seed: int) -> list[tuple[list[int], list[int]]]:
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(n):
    start, plen = int(rng.integers(3, CFG.vocab_size)), int(rng.integers(2, 4))
    seq = [3 + (start + i) % (CFG.vocab_size - 3) for i in range(plen + 6)]
    out.append((seq[:plen], seq[plen:]))
  return out


class _Hooked:
  """The loader, with `poison(batch_number, batch) -> batch` applied to each batch (1-based)."""

  def __init__(self, inner: Loader, poison: Callable[[int, dict], dict] | None):
    self.inner, self.poison = inner, poison

  def __next__(self) -> dict:
    batch = next(self.inner)
    n = self.inner.epoch * (self.inner.size // BATCH) + self.inner.position // BATCH  # = the step it feeds
    return self.poison(n, batch) if self.poison else batch

  def state(self) -> dict:
    return self.inner.state()

  def restore(self, s: dict) -> None:
    self.inner.restore(s)


def task(poison: Callable[[int, dict], dict] | None = None, loss_fn=sft.sft_loss, eval_data: bool = False
         ) -> loop.Task:
  """A fresh toy task over 64 training sequences; `poison(step, batch)` may alter the batch of a step."""
  train, val = _records(64, 0), _records(8, 1)

  def collate(recs):
    return lambda idx: sft_batch([recs[i][0] for i in idx], [recs[i][1] for i in idx], 0, LENGTH)

  loader = _Hooked(Loader(len(train), BATCH, collate(train), seed=1), poison)
  evals = [dict(collate(val)(list(range(8))), example_weight=np.ones(8, np.float32))] if eval_data else []
  return loop.Task(name="toy", build_model=lambda: Transformer(CFG, rngs=nnx.Rngs(0)), loss_fn=loss_fn,
                   train_data=loader, eval_data=evals, load_init=None,
                   flops_per_token=metrics.flops_per_token(CFG, LENGTH), train_examples=len(train))


def scaled_loss(scale_at: dict[int, float]):
  """sft_loss times a factor on chosen batches (batch["loss_scale"]), to make a loss spike."""
  def loss_fn(model, batch, rng):
    total, weight, stats = sft.sft_loss(model, batch, rng)
    return total * batch["loss_scale"][0], weight, stats
  def poison(n: int, batch: dict) -> dict:
    return {**batch, "loss_scale": np.full((BATCH,), scale_at.get(n, 1.0), np.float32)}
  return loss_fn, poison


def params_of(result: loop.TrainResult) -> dict[str, np.ndarray]:
  return {"/".join(map(str, p)): np.asarray(v[...]) for p, v in result.params.flat_state()}


def sqrt_at_zero_loss(model, batch, rng):
  """A finite loss whose gradient is infinite where batch["sqrt_of"] is 0: the gradient-only guard."""
  total, weight, stats = sft.sft_loss(model, batch, rng)
  bump = jnp.sqrt(batch["sqrt_of"][0] * jnp.mean(model.embedding[...]) ** 2)
  return total + bump, weight, stats
