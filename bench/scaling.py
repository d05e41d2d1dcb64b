"""SFT step throughput and MFU over batch size and sequence length (a table), float32 or bfloat16.

    python bench/scaling.py                                  # bench32m, batch {2, 8} x seq {128, 512, 1024}
    python bench/scaling.py --batches 1,2,4,8 --seqs 256,512 --dtype bfloat16

Every cell builds and compiles the step of bench/sft_setup.py for its shape, then takes --rounds
rounds of (matmul peak, one timed step, matmul peak), as bench/sft_mfu.py does; a cell's MFU is the median of its
per-round achieved/peak. FLOPs per token grow with the sequence (the 12 L H Q T attention term), so
MFU, not tokens/s, is the comparable column. Last line: `ratio=<median MFU over the table>`.
"""

from __future__ import annotations

import argparse

import jax

import sft_setup
import timing
from xlra.parallel import distributed
from xlra.train.metrics import measure_peak_flops


def ints(text: str) -> list[int]:
  return [int(x) for x in text.split(",") if x]


def main() -> None:
  distributed.split_host_cpu()  # as the xlra CLI runs: one XLA device per core (before any device use)
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--preset", default="bench32m")
  ap.add_argument("--batches", type=ints, default=[2, 8])
  ap.add_argument("--seqs", type=ints, default=[128, 512, 1024])
  ap.add_argument("--dtype", default="float32", choices=sft_setup.DTYPES)
  ap.add_argument("--rounds", type=int, default=3)
  args = ap.parse_args()

  print(f"scaling: {args.preset}, {args.dtype}; {timing.load_line()}; jax {jax.__version__}", flush=True)
  print(f"{'batch':>5} {'seq':>5} {'tokens':>7} {'GFLOP/tok':>9} {'s/step':>7} {'tokens/s':>9} {'peak GF/s':>9} {'MFU':>6}",
        flush=True)
  mfus = []
  for batch in args.batches:
    for seq in args.seqs:
      bench = sft_setup.build(args.preset, batch, seq, args.dtype)
      bench.run()  # compile
      cell, times, peaks = [], [], []
      for _ in range(args.rounds):
        before = measure_peak_flops(args.dtype)
        times.append(timing.seconds(bench.run))
        peaks.append((before + measure_peak_flops(args.dtype)) / 2)
        cell.append(bench.tokens / times[-1] * bench.flops_per_token / peaks[-1])
      dt, mfu = timing.median(times), timing.median(cell)
      mfus.append(mfu)
      print(f"{batch:5d} {seq:5d} {bench.tokens:7d} {bench.flops_per_token / 1e9:9.3f} {dt:7.2f} "
            f"{bench.tokens / dt:9.0f} {timing.median(peaks) / 1e9:9.1f} {mfu:6.3f}", flush=True)
      del bench
  print(f"median MFU {timing.median(mfus):.3f} over {len(mfus)} shapes; {timing.load_line()}")
  timing.print_ratio(timing.median(mfus))


if __name__ == "__main__":
  main()
