"""Training metrics: JSONL rows, TensorBoard event files (no TensorFlow), throughput/MFU, progress.

    WORKDIR/metrics.jsonl   one row per logged step: {"step", "time", "split"?, metric: value, ...}
    WORKDIR/tb/             TensorBoard events (tensorboard's own writer and protos)

Only process 0 writes or prints (`xlra.parallel.distributed.is_main_process`). A resumed run first
drops the rows logged after the checkpoint it resumes from, so the file never holds a step twice.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import time
from typing import Mapping, TextIO

import jax
import jax.numpy as jnp
import numpy as np

from xlra import files
from xlra.models.config import ModelConfig
from xlra.parallel.distributed import is_main_process

METRICS_FILE, TB_DIR = "metrics.jsonl", "tb"


class MetricWriter:
  """Appends metric rows to WORKDIR/metrics.jsonl and scalars to WORKDIR/tb."""

  def __init__(self, workdir: str, resume_step: int | None = None):
    self.enabled = is_main_process()
    self.path = os.path.join(workdir, METRICS_FILE)
    self._tb = None
    if not self.enabled:
      return
    os.makedirs(workdir, exist_ok=True)
    if os.path.exists(self.path):
      rows = files.read_jsonl(self.path)
      # Resuming at step 0 means no checkpoint: the step-0 evaluation runs again, so nothing is kept.
      keep = [r for r in rows if resume_step and r.get("step", 0) <= resume_step]
      if len(keep) != len(rows):
        files.write_jsonl(self.path, keep)
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    self._tb = EventFileWriter(os.path.join(workdir, TB_DIR))

  def write(self, step: int, metrics: Mapping[str, float], split: str = "train") -> None:
    """One row; TensorBoard tags are `split/name` (train/loss, val/accuracy, ...)."""
    if not self.enabled:
      return
    from tensorboard.compat.proto import event_pb2, summary_pb2

    now = time.time()
    row = {"step": int(step), "time": round(now, 3), "split": split}
    row.update({k: _jsonable(v) for k, v in metrics.items()})
    with open(self.path, "a", encoding="utf-8") as f:
      f.write(json.dumps(row, ensure_ascii=False) + "\n")
    values = [summary_pb2.Summary.Value(tag=f"{split}/{k}", simple_value=float(v))
              for k, v in metrics.items() if isinstance(v, (int, float, np.floating, np.integer))]
    self._tb.add_event(event_pb2.Event(wall_time=now, step=int(step), summary=summary_pb2.Summary(value=values)))

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
      self._tb = None


def _jsonable(v):
  if isinstance(v, (np.floating, float)):
    v = float(v)
    return v if math.isfinite(v) else str(v)  # JSON has no NaN/Inf
  if isinstance(v, (np.integer, int)):
    return int(v)
  return v


def read_metrics(workdir: str, split: str | None = "train") -> list[dict]:
  """Rows of WORKDIR/metrics.jsonl (of one split, or all when split is None)."""
  path = os.path.join(workdir, METRICS_FILE)
  rows = files.read_jsonl(path) if os.path.exists(path) else []
  return [r for r in rows if split is None or r.get("split") == split]


# -- throughput and model FLOPs utilisation ---------------------------------------------------------

def flops_per_token(cfg: ModelConfig, seq_len: int, lm_head: bool = True) -> float:
  """Training FLOPs per token (forward + backward), PaLM appendix B: 6 N + 12 L H Q T.

  N counts the matmul weights: every block's projections plus the output projection to the
  vocabulary when `lm_head` (a tied head still does that matmul; the input embedding lookup is
  free). Reward models and critics read a scalar head instead: `lm_head=False`.
  """
  d, h, n, k, f = cfg.d_model, cfg.head_dim, cfg.n_heads, cfg.n_kv_heads, cfg.d_ff
  per_layer = d * h * (2 * n + 2 * k) + 3 * d * f
  matmul = cfg.n_layers * per_layer + (d * cfg.vocab_size if lm_head else d)
  attention = 12 * cfg.n_layers * n * h * seq_len
  return 6.0 * matmul + attention


def measure_peak_flops(dtype: str = "float32", sizes: tuple[int, ...] = (1024, 2048), seconds: float = 0.5) -> float:
  """Measured matmul FLOP/s of one device (the MFU denominator when config.peak_flops is 0): the best
  rate of jitted square `jnp.dot`s of each size (float32 accumulation), each run for `seconds`.
  Every call multiplies the same well-scaled input, so no value overflows into inf on the way."""
  dt = jnp.dtype(dtype)
  best = 0.0
  for n in sizes:
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32).astype(dt) / math.sqrt(n)
    mm = jax.jit(lambda x: jnp.dot(x, x, preferred_element_type=jnp.float32).astype(dt))
    mm(a).block_until_ready()
    reps, start, out = 0, time.perf_counter(), a
    while time.perf_counter() - start < seconds:
      out = mm(a)
      reps += 1
    out.block_until_ready()
    best = max(best, 2.0 * n ** 3 * reps / (time.perf_counter() - start))
  return best


@functools.cache
def device_peak_flops(dtype: str) -> float:
  """measure_peak_flops, once per process and dtype (a pipeline runs many training jobs)."""
  return measure_peak_flops(dtype)


class Throughput:
  """Tokens/s and MFU between two log points. `flops_per_token` from `flops_per_token`; `peak` is
  the FLOP/s of all devices together."""

  def __init__(self, flops_per_token: float, peak: float):
    self.flops_per_token, self.peak = flops_per_token, peak
    self.tokens, self.start = 0, time.perf_counter()

  def add(self, tokens: int) -> None:
    self.tokens += int(tokens)

  def read(self) -> dict[str, float]:
    """Rates since the last read (real, non-padding tokens), then restart the window."""
    elapsed = max(time.perf_counter() - self.start, 1e-9)
    rate = self.tokens / elapsed
    out = {"tokens_per_s": rate, "mfu": rate * self.flops_per_token / self.peak if self.peak else 0.0}
    self.tokens, self.start = 0, time.perf_counter()
    return out


# -- progress display -------------------------------------------------------------------------------

def format_seconds(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  h, rest = divmod(seconds, 3600)
  return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s"


class Progress:
  """`[stage] step 120/500 (24%)  3.1 step/s  ETA 2m03s  loss 1.234`, printed at most every
  `every_s` seconds (and at the last step), by process 0."""

  def __init__(self, stage: str, total: int, start_step: int = 0, every_s: float = 10.0, out: TextIO | None = None):
    self.stage, self.total, self.every_s = stage, total, every_s
    self.out = out or sys.stdout
    self.start_step, self.t0 = start_step, time.perf_counter()
    self.last_print = -math.inf

  def update(self, step: int, extra: Mapping[str, float] | None = None, force: bool = False) -> None:
    now = time.perf_counter()
    if not is_main_process() or (not force and step < self.total and now - self.last_print < self.every_s):
      return
    self.last_print = now
    done = step - self.start_step
    rate = done / max(now - self.t0, 1e-9)
    eta = (self.total - step) / rate if rate > 0 else float("nan")
    parts = [f"[{self.stage}] step {step}/{self.total} ({100 * step / max(self.total, 1):.0f}%)",
             f"{rate:.2f} step/s", f"ETA {format_seconds(eta) if math.isfinite(eta) else '?'}"]
    parts += [f"{k} {v:.4g}" for k, v in (extra or {}).items()]
    print("  ".join(parts), file=self.out, flush=True)
