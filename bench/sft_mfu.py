"""SFT train-step throughput and model FLOPs utilisation against a matmul peak measured in the same run.

    python bench/sft_mfu.py                       # bench32m (d=512, 8 layers, GQA), batch 8 x seq 512, float32
    python bench/sft_mfu.py --dtype bfloat16      # bf16 compute, f32 master weights and accumulation

The reference is `xlra.train.metrics.measure_peak_flops`: the best of jitted 1024^3 and 2048^3
`jnp.dot`s in the same dtype (bfloat16 inputs with float32 accumulation for --dtype bfloat16; on a
CPU without bf16 matmul units that dot runs slower than float32's, and the ratio can exceed 1), each
run for --peak-s seconds right before and right after the --steps timed steps of each round, so peak and step see the same machine
load; the reported MFU is the median over rounds of achieved FLOP/s / (mean of the two peaks).
FLOPs are counted as in bench/sft_setup.py (6 N per token plus 12 L H Q T attention). The last
line is `ratio=<achieved/peak>`.
"""

from __future__ import annotations

import time

import jax

import sft_setup
import timing
from xlra.parallel import distributed
from xlra.train.metrics import measure_peak_flops


def main() -> None:
  distributed.split_host_cpu()  # as the xlra CLI runs: one XLA device per core (before any device use)
  ap = sft_setup.argument_parser(__doc__)
  ap.add_argument("--steps", type=int, default=1, help="timed steps per round")
  ap.add_argument("--peak-s", type=float, default=1.0, help="seconds of each peak measurement")
  args = ap.parse_args()

  print(f"sft_mfu: {timing.load_line()}; jax {jax.__version__} on {jax.devices()[0].platform}", flush=True)
  t0 = time.perf_counter()
  bench = sft_setup.build(args.preset, args.batch, args.seq, args.dtype)
  bench.run()  # compile + first step
  cfg, fpt = bench.cfg, bench.flops_per_token
  attention = 12 * cfg.n_layers * cfg.n_heads * cfg.head_dim * args.seq
  print(f"{args.preset}: {bench.params / 1e6:.1f}M params, d={cfg.d_model} layers={cfg.n_layers} heads={cfg.n_heads}"
        f"/{cfg.n_kv_heads} kv, vocab {cfg.vocab_size}; batch {args.batch} x seq {args.seq} = {bench.tokens} "
        f"tokens/step; {args.dtype}; compiled in {time.perf_counter() - t0:.0f} s")
  print(f"FLOPs/token = 6 N + 12 L H Q T = {(fpt - attention) / 1e6:.1f}M + {attention / 1e6:.1f}M = {fpt / 1e6:.1f}M"
        f"; {fpt * bench.tokens / 1e9:.0f} GFLOP per step", flush=True)

  mfus, rates, peaks = [], [], []
  for r in range(args.rounds):
    before = measure_peak_flops(args.dtype, seconds=args.peak_s)
    dt = sum(timing.seconds(bench.run) for _ in range(args.steps)) / args.steps
    peak = (before + measure_peak_flops(args.dtype, seconds=args.peak_s)) / 2
    rate = bench.tokens / dt
    mfus.append(rate * fpt / peak)
    rates.append(rate)
    peaks.append(peak)
    print(f"round {r + 1}: peak {peak / 1e9:.1f} GFLOP/s ({args.dtype} jnp.dot)  step {dt:.2f} s  "
          f"{rate:.0f} tokens/s  {rate * fpt / 1e9:.1f} GFLOP/s  MFU {mfus[-1]:.3f}", flush=True)
  print(f"median: {timing.median(rates):.0f} tokens/s, peak {timing.median(peaks) / 1e9:.1f} GFLOP/s, "
        f"MFU {timing.median(mfus):.3f} (best round: {max(rates):.0f} tokens/s, best peak "
        f"{max(peaks) / 1e9:.1f} GFLOP/s); {timing.load_line()}")
  timing.print_ratio(timing.median(mfus))


if __name__ == "__main__":
  main()
