"""One PPO iteration (xlra.train.ppo_loop.PPOTrainer) timed and split into rollout and learning.

    python bench/ppo_iteration.py                    # bench32m policy, critic and RM; 8 prompts x 2 samples
    python bench/ppo_iteration.py --preset small --iterations 3

Random-weight models of the preset play every role (policy and frozen reference: a Transformer;
critic and RM: a ScalarModel), so no checkpoint is needed; EOS is a token the random policy
practically never draws, so every response has --max-new tokens and the work per iteration is fixed.
  rollout  = sampling (jitted KV-cache sampler) + the experience pass (policy, reference, critic and
             RM forward passes, rewards, GAE), the iteration's `time/rollout_s`;
  learning = --epochs x --minibatches PPO updates of policy and critic, `time/learn_s`.
The same-run reference is the float32 matmul peak (`jnp.dot`, measured before and after each
iteration):
each phase's model FLOPs (forward: 2 N + attention per column of every row, the vocabulary matmul
on response columns only; training 3x forward; see bench/sft_setup.py) over its time and that
peak. Decoding one token at a time is memory-bound on a CPU, so rollout MFU is expected far below
learning MFU. Last line: `ratio=<iteration FLOP/s / peak>`.
"""

from __future__ import annotations

import argparse
import os
import runpy
import time

import jax
import numpy as np
from flax import nnx

import timing
from xlra.models.heads import ScalarModel
from xlra.models.presets import get_preset
from xlra.models.transformer import Transformer
from xlra.parallel import distributed
from xlra.parallel.mesh import make_mesh
from xlra.train import ppo_loop
from xlra.train.metrics import flops_per_token, measure_peak_flops
from xlra.train.state import split_params

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs")


def ppo_config(args):
  c = runpy.run_path(os.path.join(CONFIGS, "ppo.py"))["get_config"]("tiny")
  c.update(dict(prompts_per_iteration=args.prompts, samples_per_prompt=args.samples, max_new_tokens=args.max_new,
                epochs=args.epochs, minibatches=args.minibatches, min_prompt_bucket=args.prompt_len,
                max_prompt_len=args.prompt_len, value_warmup_iterations=0, normalize_reward=False,
                iterations=args.iterations + 1, temperature=1.0))
  return c


def main() -> None:
  distributed.split_host_cpu()  # as the xlra CLI runs: one XLA device per core (before any device use)
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--preset", default="bench32m")
  ap.add_argument("--prompts", type=int, default=8)
  ap.add_argument("--samples", type=int, default=2, help="samples per prompt")
  ap.add_argument("--prompt-len", type=int, default=64, help="prompts have lengths up to this (one bucket)")
  ap.add_argument("--max-new", type=int, default=64)
  ap.add_argument("--epochs", type=int, default=4)
  ap.add_argument("--minibatches", type=int, default=2)
  ap.add_argument("--iterations", type=int, default=2, help="timed iterations (after one that compiles)")
  args = ap.parse_args()

  print(f"ppo_iteration: {timing.load_line()}; jax {jax.__version__}", flush=True)
  cfg = get_preset(args.preset)
  cfg = cfg.replace(max_seq_len=max(cfg.max_seq_len, args.prompt_len + args.max_new))
  config = ppo_config(args)
  mesh = make_mesh({"data": -1})
  policy_def, policy = split_params(Transformer(cfg, rngs=nnx.Rngs(0)))
  rm_def, rm = split_params(ScalarModel(cfg, rngs=nnx.Rngs(1)))
  eos = cfg.vocab_size - 1
  trainer = ppo_loop.PPOTrainer(config, mesh, policy_def=policy_def, policy_params=policy, critic_def=rm_def,
                                critic_params=rm, rm_def=rm_def, rm_params=rm, eos_id=eos, pad_id=0)
  rng = np.random.default_rng(0)
  lengths = np.linspace(args.prompt_len // 2, args.prompt_len, args.prompts).astype(int)
  prompts = [rng.integers(2, eos, int(n)).tolist() for n in lengths]

  rows, width = args.prompts * args.samples, args.prompt_len + args.max_new
  # Forward FLOPs of one row: every column passes the blocks; only the response columns (and, when
  # sampling, the prompt's last one instead of the response's last) meet the vocabulary matmul.
  scalar = width * flops_per_token(cfg, width, lm_head=False) / 3
  lm = scalar + args.max_new * 2 * cfg.d_model * cfg.vocab_size
  rollout_flops = rows * (3 * lm + 2 * scalar)  # sampling, then policy, reference, critic and RM passes
  learn_flops = args.epochs * rows * 3 * (lm + scalar)  # policy and critic updates (forward + backward)
  t0 = time.perf_counter()
  trainer.iteration(prompts, 0)  # compiles sampler, experience and learn step
  print(f"{args.preset} (d={cfg.d_model}, {cfg.n_layers} layers) in all four roles; {rows} rows of "
        f"{args.prompt_len} prompt + {args.max_new} new tokens; {args.epochs} epochs x {args.minibatches} "
        f"minibatches; first iteration (compiles) {time.perf_counter() - t0:.0f} s", flush=True)

  mfus, split = [], []
  for i in range(args.iterations):
    before = measure_peak_flops("float32")
    m, host = trainer.iteration(prompts, i + 1)
    peak = (before + measure_peak_flops("float32")) / 2
    assert host["lengths"].min() == args.max_new, "a response stopped early: the workload would shrink"
    ro, le = m["time/rollout_s"], m["time/learn_s"]
    mfus.append((rollout_flops + learn_flops) / (ro + le) / peak)
    split.append(ro / (ro + le))
    print(f"iteration {i + 1}: {ro + le:.2f} s = rollout {ro:.2f} s ({100 * ro / (ro + le):.0f}%; "
          f"{rows * args.max_new / ro:.0f} new tokens/s, MFU {rollout_flops / ro / peak:.3f}) + learning {le:.2f} s "
          f"(MFU {learn_flops / le / peak:.3f}); peak {peak / 1e9:.1f} GFLOP/s; iteration MFU {mfus[-1]:.3f}",
          flush=True)
  print(f"median: rollout share {timing.median(split):.2f}, iteration MFU {timing.median(mfus):.3f}; "
        f"{timing.load_line()}")
  timing.print_ratio(timing.median(mfus))


if __name__ == "__main__":
  main()
