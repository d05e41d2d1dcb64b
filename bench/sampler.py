"""Sampling throughput: our jitted KV-cache sampler vs transformers' PyTorch `generate`, same run.

    python bench/sampler.py                    # n=16 samples of 8 prompts, 64 new tokens, d=128 Llama
    python bench/sampler.py --workload demo    # the demo's best-of-n call: its model, prompt and response sizes
    python bench/sampler.py --n 64 --max-new 128

Both sides sample the same random LlamaForCausalLM (ours reads the saved checkpoint through load_hf) at
temperature 1 with top-k/top-p off, from the same prompts, n samples per prompt
(`generate(num_return_sequences=n)` on the reference side). EOS is off on both sides so every row
generates --max-new tokens; tokens/s counts generated tokens only. Compilation and a warm-up call are
excluded; the best of --repeats interleaved timed calls counts for each side. The last line is
`ratio=<ours/reference>` (higher is better).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import jax
import numpy as np
import torch
import transformers as tf
from flax import nnx

from xlra.models.hf import load_hf
from xlra.parallel import distributed
from xlra.parallel.mesh import make_mesh
from xlra.sampling.sampler import Sampler, SamplingConfig


# "demo": one best-of-n batch of the demo pipeline (configs/pipeline.py:demo, bon.rows_per_batch=64): the
# tiny preset with its 2048-token BPE, prompts near 100 tokens, 16 samples of up to 48 tokens each.
WORKLOADS = {"small": {}, "demo": dict(hidden=64, layers=2, vocab=2048, prompts=4, min_len=80, max_len=120, max_new=48)}


def _best_times(fns, repeats: int) -> list[float]:
  """Best wall time of each function over `repeats` interleaved rounds, after one warm-up call each
  (compilation on our side): interleaving exposes both sides to the same load on a shared machine."""
  for fn in fns:
    fn()
  best = [float("inf")] * len(fns)
  for _ in range(repeats):
    for i, fn in enumerate(fns):
      t0 = time.perf_counter()
      fn()
      best[i] = min(best[i], time.perf_counter() - t0)
  return best


def main() -> None:
  distributed.split_host_cpu()  # as the xlra CLI runs: one XLA device per core (before any device use)
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--n", type=int, default=16, help="samples per prompt")
  ap.add_argument("--prompts", type=int, default=8)
  ap.add_argument("--min-len", type=int, default=12, help="prompt lengths are spread over [min-len, max-len]")
  ap.add_argument("--max-len", type=int, default=40)
  ap.add_argument("--max-new", type=int, default=64)
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--hidden", type=int, default=128)
  ap.add_argument("--layers", type=int, default=4)
  ap.add_argument("--vocab", type=int, default=1024)
  ap.add_argument("--workload", choices=sorted(WORKLOADS), default="small",
                  help="named defaults; flags given explicitly override them")
  args = ap.parse_args()
  for key, value in WORKLOADS[args.workload].items():
    if ap.get_default(key) == getattr(args, key):
      setattr(args, key, value)

  torch.manual_seed(0)
  hf_cfg = tf.LlamaConfig(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=3 * args.hidden,
                          num_hidden_layers=args.layers, num_attention_heads=4, num_key_value_heads=2,
                          max_position_embeddings=1024, tie_word_embeddings=False, bos_token_id=1,
                          eos_token_id=None, pad_token_id=0)
  ref = tf.LlamaForCausalLM(hf_cfg).eval()
  ref.generation_config.eos_token_id = None
  rng = np.random.default_rng(0)
  lengths = np.linspace(args.min_len, args.max_len, args.prompts).astype(int)
  prompts = [rng.integers(2, args.vocab, int(n)).tolist() for n in lengths]

  with tempfile.TemporaryDirectory() as path:
    ref.save_pretrained(path)
    model = load_hf(path)
  graphdef, params = nnx.split(model)
  mesh = make_mesh({"data": -1})
  # eos_id = vocab_size: a token the model never draws, so no row stops early (as on the reference side).
  cfg = SamplingConfig(max_new_tokens=args.max_new, eos_id=args.vocab, pad_id=0, temperature=1.0)
  sampler = Sampler(graphdef, cfg, mesh)
  calls = iter(range(1 << 30))

  def ours():
    out = sampler(params, prompts, jax.random.key(next(calls)), num_samples=args.n)
    assert out.lengths.sum() == len(prompts) * args.n * args.max_new
    return out

  width = max(lengths)
  ids = torch.zeros((len(prompts), width), dtype=torch.long)
  mask = torch.zeros((len(prompts), width), dtype=torch.long)
  for i, p in enumerate(prompts):  # left padding, as decoder-only generation wants
    ids[i, width - len(p):] = torch.tensor(p)
    mask[i, width - len(p):] = 1

  def reference():
    with torch.no_grad():
      out = ref.generate(ids, attention_mask=mask, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                         num_return_sequences=args.n, max_new_tokens=args.max_new, min_new_tokens=args.max_new,
                         pad_token_id=0)
    assert out.shape == (len(prompts) * args.n, width + args.max_new)
    return out

  tokens = len(prompts) * args.n * args.max_new
  t_ours, t_ref = _best_times([ours, reference], args.repeats)
  print(f"config ({args.workload}): llama d={args.hidden} layers={args.layers} vocab={args.vocab}; "
        f"{len(prompts)} prompts of {args.min_len}-{args.max_len} tokens, n={args.n}, {args.max_new} new tokens; "
        f"jax {jax.__version__} on {jax.devices()[0].platform} x{jax.device_count()}, torch {torch.__version__} "
        f"threads={torch.get_num_threads()}, cpus={os.cpu_count()}")
  print(f"ours:      {tokens / t_ours:10.0f} tokens/s ({t_ours:.3f} s, compilations {sampler.trace_count})")
  print(f"reference: {tokens / t_ref:10.0f} tokens/s ({t_ref:.3f} s, transformers {tf.__version__} generate)")
  print(f"ratio={t_ref / t_ours:.2f}")


if __name__ == "__main__":
  main()
