"""Batching: padding and loss masks against hand-written arrays, packing, and the loader's determinism,
exact resumption from its state, epoch coverage and per-process sharding."""

from __future__ import annotations

import numpy as np
import pytest

from xlra.data import batching as B
from xlra.data.skips import EmptySplitError, SkipCounter

PAD = 0


def test_padding_and_masks_by_hand():
  b = B.generation_batch([[5, 6, 7], [8]], PAD, 4)
  np.testing.assert_array_equal(b["tokens"], [[0, 5, 6, 7], [0, 0, 0, 8]])
  np.testing.assert_array_equal(b["mask"], [[0, 1, 1, 1], [0, 0, 0, 1]])
  s = B.sft_batch([[1, 5], [1]], [[7, 2], [8, 9, 2]], PAD, 5)
  np.testing.assert_array_equal(s["tokens"], [[1, 5, 7, 2, 0], [1, 8, 9, 2, 0]])
  np.testing.assert_array_equal(s["mask"], [[1, 1, 1, 1, 0], [1, 1, 1, 1, 0]])
  np.testing.assert_array_equal(s["loss_mask"], [[0, 0, 1, 1, 0], [0, 1, 1, 1, 0]])
  assert s["tokens"].dtype == np.int32 and s["mask"].dtype == bool and s["loss_mask"].dtype == bool
  # Positions predicting a target (t with t + 1 in the loss), -1 padded to min(8, L - 1) columns.
  np.testing.assert_array_equal(s["target_index"], [[1, 2, -1, -1], [0, 1, 2, -1]])
  p = B.pairwise_batch([[1, 5]], [[7, 2]], [[8, 9, 2]], PAD, 6)
  np.testing.assert_array_equal(p["chosen_tokens"], [[1, 5, 7, 2, 0, 0]])
  np.testing.assert_array_equal(p["rejected_tokens"], [[1, 5, 8, 9, 2, 0]])
  np.testing.assert_array_equal(p["rejected_mask"], [[1, 1, 1, 1, 1, 0]])
  q = B.pointwise_batch([[1], [1, 4]], [[3, 2], [2]], [True, False], PAD, 3)
  np.testing.assert_array_equal(q["tokens"], [[1, 3, 2], [1, 4, 2]])
  np.testing.assert_array_equal(q["label"], [1, 0])
  with pytest.raises(ValueError, match="more than the batch length"):
    B.sft_batch([[1, 2, 3]], [[4, 5]], PAD, 4)


def test_length_bucket_by_hand():
  """32 x {1, 1.5, 2, 3, 4, 6, 8}: the smallest that holds n, capped."""
  got = {n: B.length_bucket(n, 304) for n in (0, 1, 32, 33, 48, 49, 64, 65, 96, 97, 150, 193, 256, 257, 300, 304)}
  assert got == {0: 32, 1: 32, 32: 32, 33: 48, 48: 48, 49: 64, 64: 64, 65: 96, 96: 96, 97: 128, 150: 192,
                 193: 256, 256: 256, 257: 304, 300: 304, 304: 304}
  assert B.length_bucket(20, 24) == 24 and B.length_bucket(5, 1000, minimum=8) == 8
  assert B.length_bucket(13, 1000, minimum=8) == 16


def test_packing_by_hand():
  prompts, responses = [[1, 5], [1], [1, 6, 6], [1]], [[7, 2], [8, 2], [2], [9, 9, 9, 9, 2]]
  assignment = B.pack_rows(prompts, responses, rows=2, length=6)
  # First fit: seq0 (4) -> row0, seq1 (3) -> row1, seq2 (4) -> row1? no (3+4>6) -> none fits: stop.
  assert assignment == [[0], [1]]
  assignment = B.pack_rows(prompts[1:], responses[1:], rows=2, length=7)  # 3, 4, 6
  assert assignment == [[0, 1], [2]]
  b = B.packed_sft_batch(prompts[1:], responses[1:], assignment, PAD, 7)
  np.testing.assert_array_equal(b["tokens"], [[1, 8, 2, 1, 6, 6, 2], [1, 9, 9, 9, 9, 2, 0]])
  np.testing.assert_array_equal(b["segment_ids"], [[1, 1, 1, 2, 2, 2, 2], [1, 1, 1, 1, 1, 1, 0]])
  np.testing.assert_array_equal(b["positions"], [[0, 1, 2, 0, 1, 2, 3], [0, 1, 2, 3, 4, 5, 0]])
  np.testing.assert_array_equal(b["loss_mask"], [[0, 1, 1, 0, 0, 0, 1], [0, 1, 1, 1, 1, 1, 0]])
  np.testing.assert_array_equal(b["mask"], b["segment_ids"] > 0)
  # Row 0: position 2 (EOS of sequence 1) does not predict sequence 2's first token.
  np.testing.assert_array_equal(b["target_index"], [[0, 1, 5, -1, -1, -1], [0, 1, 2, 3, 4, -1]])
  wide = B.target_index(np.ones((2, 40), bool), np.ones((2, 40), bool))
  assert wide.shape == (2, 39) and (wide[0] == np.arange(39)).all()  # capped at L - 1
  assert B.target_index(np.eye(1, 40, 20, dtype=bool), np.ones((1, 40), bool)).shape == (1, 8)
  assert B.target_index(np.arange(40)[None] >= 27, np.ones((1, 40), bool)).shape == (1, 16)  # 13 -> 16


def _loader(n=10, gb=4, **kw):
  return B.Loader(n, gb, lambda idx: {"idx": np.asarray(idx)}, seed=3, **kw)


def test_loader_is_deterministic_covers_each_epoch_and_resumes_exactly():
  a, b = _loader(), _loader()
  seq = [next(a)["idx"].tolist() for _ in range(7)]
  assert seq == [next(b)["idx"].tolist() for _ in range(7)]
  # 10 examples, batches of 4: two batches an epoch (tail of 2 dropped), no repeats inside an epoch.
  for e in range(3):
    epoch = seq[2 * e] + seq[2 * e + 1]
    assert len(set(epoch)) == 8
  assert seq[0] + seq[1] != seq[2] + seq[3]  # reshuffled every epoch
  # Resume from a saved state, across an epoch boundary.
  a = _loader()
  for _ in range(3):
    next(a)
  state = a.state()
  assert state == {"epoch": 1, "position": 4} and all(isinstance(v, int) for v in state.values())
  rest = [next(a)["idx"].tolist() for _ in range(4)]
  c = _loader()
  c.restore(state)
  assert [next(c)["idx"].tolist() for _ in range(4)] == rest == seq[3:7]
  assert _loader(shuffle=False).__next__()["idx"].tolist() == [0, 1, 2, 3]
  with pytest.raises(ValueError, match="invalid loader state"):
    c.restore({"epoch": 0, "position": 99})


def test_loader_shards_the_global_batch_over_processes():
  whole = [next(it)["idx"] for it in [_loader(n=12, gb=6)] for _ in range(4)]
  parts = [_loader(n=12, gb=6, process_index=i, process_count=3) for i in range(3)]
  for step in range(4):
    shards = [next(p)["idx"] for p in parts]
    assert all(len(s) == 2 for s in shards)
    np.testing.assert_array_equal(np.concatenate(shards), whole[step])
  with pytest.raises(ValueError, match="divisible by process_count"):
    _loader(gb=4, process_count=3)


def test_packed_loader_uses_every_example_once_per_epoch():
  rng = np.random.default_rng(0)
  encoded = [{"prompt": [1] * int(rng.integers(1, 5)), "response": [7] * int(rng.integers(1, 6)) + [2]}
             for _ in range(40)]
  loader = B.sft_loader(encoded, global_batch=2, pad_id=PAD, length=16, pack=True, seed=1)
  seen, batches = 0, 0
  while loader.state()["epoch"] == 0:
    b = next(loader)
    batches += 1
    seen += int(sum(len(np.unique(row[row > 0])) for row in b["segment_ids"]))
    assert b["tokens"].shape == (2, 16)
  # The loop stops after the first batch of epoch 1.
  first_of_next = int(sum(len(np.unique(row[row > 0])) for row in b["segment_ids"]))
  assert seen - first_of_next == 40 and batches > 40 * 5 // 32
  state = loader.state()
  again = B.sft_loader(encoded, global_batch=2, pad_id=PAD, length=16, pack=True, seed=1)
  again.restore(state)
  np.testing.assert_array_equal(next(again)["tokens"], next(loader)["tokens"])


class _Tok:
  """A character tokenizer with a chat-template-free prompt, enough for encode_records."""
  pad_token_id, eos_token_id, bos_token_id, chat_template = 0, 2, 1, None

  def encode(self, text, add_special_tokens=False):
    return [3 + (ord(c) % 50) for c in text]


def test_encode_records_counts_too_long_and_rejects_empty_splits():
  recs = [{"id": "a", "prompt": "hi", "chosen": "yes", "rejected": "no"},
          {"id": "b", "prompt": "x" * 50, "chosen": "y", "rejected": "n"}]
  skips = SkipCounter("pairs")
  enc = B.encode_records(_Tok(), recs, ("chosen", "rejected"), max_length=12, skips=skips)
  assert len(enc) == 1 and skips.counts == {"too_long": 1} and skips.kept == 1
  assert enc[0]["prompt"] == [1, 3 + ord("h") % 50, 3 + ord("i") % 50, 3 + ord("\n") % 50]
  assert enc[0]["chosen"][-1] == 2 and enc[0]["id"] == "a"
  batch = next(B.pairwise_loader(enc, 1, PAD, 12))
  assert batch["chosen_mask"].sum() == len(enc[0]["prompt"]) + 4
  with pytest.raises(EmptySplitError, match="too_long 1"):
    B.encode_records(_Tok(), recs[1:], ("chosen",), max_length=12)

  class SamePad(_Tok):
    pad_token_id = 2
  with pytest.raises(ValueError, match="equals the EOS id"):
    B.encode_records(SamePad(), recs, ("chosen",), max_length=99)
