"""Scoring text with a trained reward model, and the reward statistics stored beside it.

    scorer = RewardScorer.load(model_dir, tokenizer)      # WORKDIR/model of `xlra rm`
    raw = scorer.score(prompts, outputs)                  # texts (or token-id lists), float32 [N]
    z = scorer.normalize(raw)                             # (raw - mean) / std on reference outputs

`reward_stats.json` (written by `xlra rm` next to the exported model) holds the mean and standard
deviation of the RM's scores on reference outputs, so best-of-n and PPO can use rewards of a known
scale (Huang et al. normalise the RM this way before RL).
"""

from __future__ import annotations

import os
from typing import Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from xlra import files
from xlra.data import batching
from xlra.data.tokenizer import encode_prompt, encode_response
from xlra.models.checkpoint_io import load_model
from xlra.models.heads import ScalarModel
from xlra.parallel import mesh as mesh_lib
from xlra.train.reward import make_score_fn

STATS_FILE = "reward_stats.json"


class RewardScorer:
  """A reward model on a mesh, with one jitted scoring function of [batch_size, bucketed length <= length]."""

  def __init__(self, graphdef: nnx.GraphDef, params: nnx.State, mesh: Mesh, tokenizer, batch_size: int = 32,
               length: int = 512, stats: dict | None = None):
    mesh_lib.check_batch_size(batch_size, mesh, "scoring batch_size")
    self.mesh, self.tokenizer, self.batch_size, self.length = mesh, tokenizer, batch_size, length
    self.params, self.stats = params, stats
    bs = mesh_lib.batch_sharding(mesh, 2)
    self._score = jax.jit(make_score_fn(graphdef), in_shardings=(mesh_lib.tree_shardings(params, mesh), bs, bs),
                          out_shardings=NamedSharding(mesh, P()))

  @classmethod
  def load(cls, model_dir: str, tokenizer, mesh: Mesh | None = None, **kw) -> RewardScorer:
    mesh = mesh or mesh_lib.make_mesh({"data": -1})
    model = load_model(model_dir, mesh=mesh)
    if not isinstance(model, ScalarModel):
      raise ValueError(f"{model_dir} holds a language model, not a reward model (a ScalarModel)")
    graphdef, params = nnx.split(model, nnx.Param)
    return cls(graphdef, params, mesh, tokenizer, stats=read_stats(model_dir), **kw)

  def score_ids(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
    """Raw scores [N] of token-id sequences (prompt + response, ending with EOS), in their order.

    Rows are scored shortest first, each batch padded to `batching.length_bucket` of its longest row
    (at most `length`), not to `length`: best-of-n candidates are far shorter than the longest prompt
    plus the longest response, and the demo's were scored 2-3x faster so. The batch keeps
    `batch_size` rows, so the compilations are one per length bucket.
    """
    n = len(sequences)
    for i, s in enumerate(sequences):
      if len(s) > self.length:
        raise ValueError(f"scored sequence {i} has {len(s)} tokens, more than the scorer length {self.length}; "
                         "raise the length or truncate the prompt")
    order = np.argsort([len(s) for s in sequences], kind="stable")
    out = np.zeros((n,), np.float32)
    for start in range(0, n, self.batch_size):
      rows = order[start:start + self.batch_size]
      chunk = [sequences[i] for i in rows]
      chunk += [chunk[0]] * (self.batch_size - len(rows))  # a fixed batch size
      width = batching.length_bucket(max(len(s) for s in chunk), self.length)
      tokens, mask = batching.right_pad(chunk, self.tokenizer.pad_token_id, width)
      b = mesh_lib.shard_batch({"tokens": _mine(tokens), "mask": _mine(mask)}, self.mesh)
      out[rows] = np.asarray(jax.device_get(self._score(self.params, b["tokens"], b["mask"])))[:len(rows)]
    return out

  def score(self, prompts: Sequence[str | Sequence[int]], outputs: Sequence[str | Sequence[int]]) -> np.ndarray:
    """Raw scores of (prompt, output) pairs; strings go through the chat template and get EOS."""
    seqs = []
    for p, o in zip(prompts, outputs, strict=True):
      p_ids = encode_prompt(self.tokenizer, p) if isinstance(p, str) else list(p)
      o_ids = encode_response(self.tokenizer, o) if isinstance(o, str) else list(o)
      seqs.append(p_ids + o_ids)
    return self.score_ids(seqs)

  def normalize(self, scores: np.ndarray) -> np.ndarray:
    if not self.stats:
      raise ValueError(f"this reward model has no {STATS_FILE}; train it with `xlra rm` to get one")
    return (np.asarray(scores) - self.stats["mean"]) / max(self.stats["std"], 1e-6)


def _mine(x: np.ndarray) -> np.ndarray:
  return batching.shard(x, jax.process_index(), jax.process_count())


def write_stats(model_dir: str, scores: np.ndarray, source: str) -> dict:
  """Mean and (population) standard deviation of `scores`, written to model_dir/reward_stats.json."""
  scores = np.asarray(scores, np.float64)
  stats = {"mean": float(scores.mean()), "std": float(scores.std()), "n": int(scores.size), "source": source}
  if jax.process_index() == 0:
    files.write_json(os.path.join(model_dir, STATS_FILE), stats)
  return stats


def read_stats(model_dir: str) -> dict | None:
  path = os.path.join(model_dir, STATS_FILE)
  return files.read_json(path) if os.path.exists(path) else None
