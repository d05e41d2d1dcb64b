"""SFT step with logits at the target positions only (`target_index`) against the same step computing
every position's logits, on packed prompt + response rows like the testbed's.

    python bench/sft_targets.py                          # the demo's model: tiny, 2048-token vocabulary
    python bench/sft_targets.py --preset small --vocab 8192

Rows: `xlra.data.batching` packs sequences of an 80-120-token prompt and a 20-40-token response into
16 rows of 256 tokens (about two sequences a row, a quarter of the tokens are targets), as `xlra sft`
does with `pack=True`. Both sides are the project's jitted step (bench/sft_setup.py) on the same batch;
the reference drops `target_index` from it, so the loss computes logits at all L positions. The
losses agree (tests/train/test_losses.py); this measures what skipping the prompt positions' output
projection and softmax buys. Last line: `ratio=<gathered tokens/s / dense tokens/s>`.
"""

from __future__ import annotations

import argparse

import numpy as np

import sft_setup
import timing
from xlra.data import batching
from xlra.parallel import distributed


def packed_rows(rows: int, length: int, vocab: int, seed: int = 0) -> dict:
  rng = np.random.default_rng(seed)
  n = rows * length // 100  # more sequences than fit; pack_rows takes a prefix
  prompts = [rng.integers(3, vocab, size=rng.integers(80, 121)).tolist() for _ in range(n)]
  responses = [rng.integers(3, vocab, size=rng.integers(20, 41)).tolist() for _ in range(n)]
  return batching.packed_sft_batch(prompts, responses, batching.pack_rows(prompts, responses, rows, length), 0, length)


def main() -> None:
  distributed.split_host_cpu()  # as the xlra CLI runs: one XLA device per core (before any device use)
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--preset", default="tiny")
  ap.add_argument("--vocab", type=int, default=2048)
  ap.add_argument("--batch", type=int, default=16)
  ap.add_argument("--seq", type=int, default=256)
  ap.add_argument("--rounds", type=int, default=10)
  args = ap.parse_args()
  print(f"sft_targets: {timing.load_line()}", flush=True)
  host = packed_rows(args.batch, args.seq, args.vocab)
  dense_host = {k: v for k, v in host.items() if k != "target_index"}
  targets = int((host["target_index"] >= 0).sum())
  gathered = sft_setup.build(args.preset, args.batch, args.seq, host=host, vocab_size=args.vocab)
  dense = sft_setup.build(args.preset, args.batch, args.seq, host=dense_host, vocab_size=args.vocab)
  print(f"{args.preset} vocab {args.vocab}: {args.batch} x {args.seq} tokens, {int(host['mask'].sum())} real, "
        f"{targets} targets; target_index {host['target_index'].shape}", flush=True)
  times = timing.interleaved({"gathered": gathered.run, "dense": dense.run}, args.rounds)
  for name, ts in times.items():
    print(f"{name}: median step {1000 * timing.median(ts):.1f} ms (best {1000 * min(ts):.1f})", flush=True)
  print(f"end: {timing.load_line()}", flush=True)
  timing.print_ratio(timing.median(timing.paired_ratios(times["dense"], times["gathered"])))


if __name__ == "__main__":
  main()
