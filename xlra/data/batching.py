"""Batches for training and generation, and a deterministic, resumable, process-sharded loader.

Batch dicts (numpy; L is a fixed length so a jitted step compiles once):
  generation  tokens [B, L] int32, mask [B, L] bool              left padded: prompts end at column L-1
  sft         tokens, mask, loss_mask [B, L] bool                right padded; loss_mask is True at the
                                                                 response tokens (EOS included): targets
  sft packed  + segment_ids [B, L] int32 (1, 2, ... per sequence, 0 at padding), positions [B, L] int32
  sft (both)  + target_index [B, M] int32: the positions whose next token is a target, -1 padded, so the
                loss computes logits there only (`target_index`)
  pairwise    chosen_tokens, chosen_mask, rejected_tokens, rejected_mask [B, L]   right padded
  pointwise   tokens, mask [B, L], label [B] int32 (1 good, 0 bad)                right padded
Padding uses the tokenizer's pad id, which is never the EOS id: the reward model reads the last real
token, and a response ends with EOS (`encode_response`).

`Loader` walks a list of examples in an order fixed by (seed, epoch); its position is two ints
(`state()` -> {"epoch", "position"}) that go into a checkpoint, and `restore(state)` resumes exactly.
Every process builds the same global batch and keeps its own rows (`process_index`, `process_count`).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from xlra.data.skips import SkipCounter
from xlra.data.testbed.seeding import stable_key
from xlra.data.tokenizer import encode_prompt, encode_response

Ids = list[int]


def _check_pad(pad_id: int, eos_id: int | None) -> None:
  if eos_id is not None and pad_id == eos_id:
    raise ValueError(f"pad id {pad_id} equals the EOS id: the last real token could not be told from padding")


def right_pad(seqs: Sequence[Ids], pad_id: int, length: int) -> tuple[np.ndarray, np.ndarray]:
  tokens = np.full((len(seqs), length), pad_id, np.int32)
  mask = np.zeros((len(seqs), length), bool)
  for i, s in enumerate(seqs):
    if len(s) > length:
      raise ValueError(f"row {i} has {len(s)} tokens, more than the batch length {length}")
    tokens[i, :len(s)] = s
    mask[i, :len(s)] = True
  return tokens, mask


def left_pad(seqs: Sequence[Ids], pad_id: int, length: int) -> tuple[np.ndarray, np.ndarray]:
  tokens = np.full((len(seqs), length), pad_id, np.int32)
  mask = np.zeros((len(seqs), length), bool)
  for i, s in enumerate(seqs):
    if len(s) > length:
      raise ValueError(f"row {i} has {len(s)} tokens, more than the batch length {length}")
    if s:
      tokens[i, length - len(s):] = s
      mask[i, length - len(s):] = True
  return tokens, mask


def length_bucket(n: int, cap: int, minimum: int = 32) -> int:
  """The padded length for rows of up to n tokens: the smallest of minimum x {1, 1.5, 2, 3, 4, 6, 8, ...}
  that holds n, capped at `cap`. A row wastes at most a third of its length on padding, and lengths up
  to cap take about 2 log2(cap / minimum) distinct values (one compilation each)."""
  b, pow2 = minimum, True
  while b < n and b < cap:
    b, pow2 = (b * 3 // 2, False) if pow2 else (b * 4 // 3, True)
  return min(b, cap)


def generation_batch(prompts: Sequence[Ids], pad_id: int, length: int) -> dict:
  tokens, mask = left_pad(prompts, pad_id, length)
  return {"tokens": tokens, "mask": mask}


def target_index(loss_mask: np.ndarray, mask: np.ndarray, segment_ids: np.ndarray | None = None) -> np.ndarray:
  """[B, M] int32: per row, the positions t whose next token t + 1 is a counted target (in the loss mask,
  real, and in the same packed sequence as t), then -1 padding.

  The output projection is most of an SFT step's cost at a large vocabulary and runs on every position
  of the dense path, though only response positions carry a loss (a quarter of the testbed's tokens,
  far less for long prompts); the loss gathers the hidden states here instead. M is the longest row's
  count rounded up to a power of two (at least 8, at most L - 1), so batches share a few compiled shapes.
  """
  ok = loss_mask[:, 1:] & mask[:, 1:]
  if segment_ids is not None:
    ok &= segment_ids[:, 1:] == segment_ids[:, :-1]
  longest = int(ok.sum(axis=1).max(initial=0))
  width = min(max(8, 1 << max(0, longest - 1).bit_length()), ok.shape[1])
  out = np.full((ok.shape[0], width), -1, np.int32)
  for r, row in enumerate(ok):
    at = np.flatnonzero(row)
    out[r, :at.size] = at
  return out


def sft_batch(prompts: Sequence[Ids], responses: Sequence[Ids], pad_id: int, length: int) -> dict:
  tokens, mask = right_pad([p + r for p, r in zip(prompts, responses)], pad_id, length)
  loss_mask = np.zeros_like(mask)
  for i, (p, r) in enumerate(zip(prompts, responses)):
    loss_mask[i, len(p):len(p) + len(r)] = True
  return {"tokens": tokens, "mask": mask, "loss_mask": loss_mask, "target_index": target_index(loss_mask, mask)}


def pack_rows(prompts: Sequence[Ids], responses: Sequence[Ids], rows: int, length: int) -> list[list[int]]:
  """First-fit in order: which sequences go in which row; stops at the first sequence that fits in no
  row. Returns per-row lists of sequence indices (a prefix of the input is consumed)."""
  fill, out = [0] * rows, [[] for _ in range(rows)]
  for i, (p, r) in enumerate(zip(prompts, responses)):
    n = len(p) + len(r)
    if n > length:
      raise ValueError(f"sequence {i} has {n} tokens, more than the packed row length {length}")
    row = next((j for j in range(rows) if fill[j] + n <= length), None)
    if row is None:
      break
    out[row].append(i)
    fill[row] += n
  return out


def packed_sft_batch(prompts: Sequence[Ids], responses: Sequence[Ids], assignment: list[list[int]], pad_id: int,
                     length: int) -> dict:
  rows = len(assignment)
  tokens = np.full((rows, length), pad_id, np.int32)
  mask, loss_mask = np.zeros((rows, length), bool), np.zeros((rows, length), bool)
  segment_ids, positions = np.zeros((rows, length), np.int32), np.zeros((rows, length), np.int32)
  for r, seq_ids in enumerate(assignment):
    at = 0
    for seg, i in enumerate(seq_ids, start=1):
      p, q = prompts[i], responses[i]
      n = len(p) + len(q)
      tokens[r, at:at + n] = p + q
      mask[r, at:at + n] = True
      loss_mask[r, at + len(p):at + n] = True
      segment_ids[r, at:at + n] = seg
      positions[r, at:at + n] = np.arange(n)
      at += n
  return {"tokens": tokens, "mask": mask, "loss_mask": loss_mask, "segment_ids": segment_ids, "positions": positions,
          "target_index": target_index(loss_mask, mask, segment_ids)}


def pairwise_batch(prompts: Sequence[Ids], chosen: Sequence[Ids], rejected: Sequence[Ids], pad_id: int,
                   length: int) -> dict:
  ct, cm = right_pad([p + c for p, c in zip(prompts, chosen)], pad_id, length)
  rt, rm = right_pad([p + r for p, r in zip(prompts, rejected)], pad_id, length)
  return {"chosen_tokens": ct, "chosen_mask": cm, "rejected_tokens": rt, "rejected_mask": rm}


def pointwise_batch(prompts: Sequence[Ids], outputs: Sequence[Ids], labels: Sequence[bool | int], pad_id: int,
                    length: int) -> dict:
  tokens, mask = right_pad([p + o for p, o in zip(prompts, outputs)], pad_id, length)
  return {"tokens": tokens, "mask": mask, "label": np.asarray(labels, np.int32)}


# -- encoding records ---------------------------------------------------------------------------------

_ROLES = ("system", "user", "assistant")


def check_record(rec: object, fields: Sequence[str], index: int) -> None:
  """A clear error, naming the record and the field, for a record the encoder cannot read: the
  loaders produce well-formed records, so a bad one is a bug upstream, not a row to skip."""
  if not isinstance(rec, dict):
    raise ValueError(f"record #{index} is a {type(rec).__name__}, not a dict with 'prompt' and {list(fields)}")
  rid = rec.get("id", f"#{index}")
  msgs = rec.get("messages")
  if msgs:
    if not isinstance(msgs, list) or not all(isinstance(m, dict) and m.get("role") in _ROLES
                                             and isinstance(m.get("content"), str) for m in msgs):
      raise ValueError(f"record {rid!r}: 'messages' must be a list of {{'role': one of {_ROLES}, 'content': str}}; "
                       f"got {str(msgs)[:80]}")
  elif not isinstance(rec.get("prompt"), str):
    raise ValueError(f"record {rid!r}: 'prompt' must be a string (or give 'messages'); got "
                     f"{type(rec.get('prompt')).__name__}")
  for f in fields:
    if not isinstance(rec.get(f), str):
      raise ValueError(f"record {rid!r}: {f!r} must be a string; got {type(rec.get(f)).__name__}")


def encode_records(tok, records: Sequence[dict], fields: Sequence[str], max_length: int,
                   skips: SkipCounter | None = None) -> list[dict]:
  """Tokenizes `prompt` (chat template) and each response field in `fields` (ending with EOS). A record
  whose prompt plus longest response exceeds `max_length` is skipped and counted as "too_long"; a
  malformed one raises (`check_record`)."""
  _check_pad(tok.pad_token_id, tok.eos_token_id)
  skips = skips or SkipCounter("encode")
  out = []
  for i, rec in enumerate(records):
    check_record(rec, fields, i)
    enc = {"prompt": encode_prompt(tok, rec.get("messages") or rec["prompt"])}
    for f in fields:
      enc[f] = encode_response(tok, rec[f])
    longest = len(enc["prompt"]) + max((len(enc[f]) for f in fields), default=0)
    if longest > max_length:
      skips.skip("too_long", rec.get("id"))
      continue
    for k, v in rec.items():
      enc.setdefault(k if k not in fields and k != "prompt" else f"{k}_text", v)
    out.append(enc)
    skips.keep()
  skips.require_kept()
  return out


# -- resumable, sharded iteration ---------------------------------------------------------------------

class Loader:
  """Endless batches over `size` examples.

  Unpacked: each step takes the next `global_batch` indices of the epoch's order and returns
  `collate(indices)` (the global batch; a short tail is dropped). Packed (`pack_fn` given): each step
  calls `pack_fn(remaining_indices) -> (n_consumed, batch)`; n_consumed == 0 ends the epoch.
  Then every array is cut along axis 0 and this process keeps its share.
  """

  def __init__(self, size: int, global_batch: int, collate: Callable[[list[int]], dict] | None = None, *,
               seed: int = 0, shuffle: bool = True, process_index: int = 0, process_count: int = 1,
               pack_fn: Callable[[list[int]], tuple[int, dict]] | None = None):
    if size <= 0:
      raise ValueError("Loader needs at least one example")
    if global_batch <= 0 or global_batch % process_count:
      raise ValueError(f"global batch {global_batch} must be positive and divisible by process_count {process_count}")
    if pack_fn is None and global_batch > size:
      raise ValueError(f"global batch {global_batch} is larger than the {size} examples")
    if not 0 <= process_index < process_count:
      raise ValueError(f"process_index {process_index} outside [0, {process_count})")
    if (collate is None) == (pack_fn is None):
      raise ValueError("give exactly one of collate (fixed batches) or pack_fn (packed batches)")
    self.size, self.global_batch, self.collate, self.pack_fn = size, global_batch, collate, pack_fn
    self.seed, self.shuffle = seed, shuffle
    self.process_index, self.process_count = process_index, process_count
    self.epoch = self.position = 0
    self._order_cache: tuple[int, list[int]] | None = None

  def state(self) -> dict:
    return {"epoch": self.epoch, "position": self.position}

  def restore(self, state: dict) -> None:
    epoch, position = int(state["epoch"]), int(state["position"])
    if epoch < 0 or not 0 <= position <= self.size:
      raise ValueError(f"invalid loader state {state} for {self.size} examples")
    self.epoch, self.position = epoch, position

  def order(self, epoch: int) -> list[int]:
    if self._order_cache is None or self._order_cache[0] != epoch:
      idx = (np.random.default_rng(stable_key(self.seed, "loader", epoch)).permutation(self.size) if self.shuffle
             else np.arange(self.size))
      self._order_cache = (epoch, idx.tolist())
    return self._order_cache[1]

  def _next_global(self) -> dict:
    for _ in range(2):  # at most one epoch change
      rest = self.order(self.epoch)[self.position:]
      if self.pack_fn is None and len(rest) >= self.global_batch:
        self.position += self.global_batch
        return self.collate(rest[:self.global_batch])
      if self.pack_fn is not None:
        n, batch = self.pack_fn(rest)
        if n > 0:
          self.position += n
          return batch
      self.epoch, self.position = self.epoch + 1, 0
    raise ValueError("one epoch cannot fill a batch: every example is longer than a packed row")

  def __iter__(self):
    return self

  def __next__(self) -> dict:
    batch = self._next_global()
    return {k: shard(v, self.process_index, self.process_count) for k, v in batch.items()}


def shard(x: np.ndarray, process_index: int, process_count: int) -> np.ndarray:
  """This process's contiguous block of rows."""
  if x.shape[0] % process_count:
    raise ValueError(f"batch of {x.shape[0]} rows does not split over {process_count} processes")
  n = x.shape[0] // process_count
  return x[process_index * n:(process_index + 1) * n]


# -- ready-made loaders for encoded records -----------------------------------------------------------

def sft_loader(encoded: list[dict], global_batch: int, pad_id: int, length: int, *, pack: bool = False,
               **kw) -> Loader:
  """SFT batches from `encode_records(..., fields=("response",))` output; `pack` fills `global_batch`
  rows of `length` tokens with several sequences each."""
  prompts = [e["prompt"] for e in encoded]
  responses = [e["response"] for e in encoded]
  if not pack:
    return Loader(len(encoded), global_batch, lambda idx: sft_batch(
        [prompts[i] for i in idx], [responses[i] for i in idx], pad_id, length), **kw)

  def pack_fn(rest: list[int]) -> tuple[int, dict]:
    """The epoch's last batch may have empty rows (no loss there)."""
    window = rest[:global_batch * length]  # more sequences than can possibly fit
    if not window:
      return 0, {}
    ps, rs = [prompts[i] for i in window], [responses[i] for i in window]
    assignment = pack_rows(ps, rs, global_batch, length)
    return sum(len(a) for a in assignment), packed_sft_batch(ps, rs, assignment, pad_id, length)

  return Loader(len(encoded), global_batch, pack_fn=pack_fn, **kw)


def pairwise_loader(encoded: list[dict], global_batch: int, pad_id: int, length: int, **kw) -> Loader:
  return Loader(len(encoded), global_batch, lambda idx: pairwise_batch(
      [encoded[i]["prompt"] for i in idx], [encoded[i]["chosen"] for i in idx],
      [encoded[i]["rejected"] for i in idx], pad_id, length), **kw)


def pointwise_loader(encoded: list[dict], global_batch: int, pad_id: int, length: int, **kw) -> Loader:
  return Loader(len(encoded), global_batch, lambda idx: pointwise_batch(
      [encoded[i]["prompt"] for i in idx], [encoded[i]["output"] for i in idx],
      [encoded[i]["label"] for i in idx], pad_id, length), **kw)
