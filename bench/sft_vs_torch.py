"""Our SFT train step against the same model's PyTorch eager train step, on the same machine.

    python bench/sft_vs_torch.py                     # bench32m, batch 8 x seq 512, float32 on both sides
    python bench/sft_vs_torch.py --dtype bfloat16    # bf16 compute with f32 master weights on both sides

Reference: a transformers `LlamaForCausalLM` with the preset's shape (same vocabulary, widths, heads,
GQA, head tied or not; its default SDPA attention), `loss = model(tokens, labels=tokens).loss`,
`backward()`, `clip_grad_norm_(1.0)` and `torch.optim.AdamW`: what a plain PyTorch training loop
does. Ours: bench/sft_setup.py (the project's jitted step: AdamW with global-norm clipping 1.0).
Both sides take the same full rows; bfloat16 means `torch.autocast("cpu", bfloat16)` there and
`dtype="bfloat16"` (float32 params, logits and losses) here.

Rounds alternate the two sides (after a warm-up/compile step each). Within a round each side runs
two steps back to back and the second is timed: a step right after the other side's ran up to 15%
slower for us and 4% for torch (the other runtime's worker threads still spin and its data leaves the
caches), so timing the first would measure the hand-over. The ratio is the median over rounds of
ours_tokens_per_s / torch_tokens_per_s; the line before the last puts
both sides' best steps against the same-dtype `jnp.dot` peak of bench/sft_mfu.py, measured then, to
show what a ratio is possible. Last line: `ratio=<ours/torch>`.
Read it only at a load average below the core count (printed at start and end): PyTorch's OpenMP
threads wait on each other at every op, so on an oversubscribed machine its step slows far more
than ours (up to 50x for tiny models), which flatters the ratio.
"""

from __future__ import annotations

import contextlib
import time

import jax
import numpy as np
import torch
import transformers as tf

import sft_setup
import timing
from xlra.models.config import ModelConfig
from xlra.parallel import distributed
from xlra.train.metrics import measure_peak_flops


def torch_step(cfg: ModelConfig, batch: int, seq: int, dtype: str):
  """One PyTorch eager train step of the same architecture; returns a function that runs it."""
  if cfg.family != "llama" or cfg.qkv_bias or cfg.qk_norm or cfg.rope_scaling is not None:
    raise ValueError(f"the PyTorch reference builds a plain Llama model; --preset is a {cfg.family} preset "
                     f"(use bench32m, small or tiny)")
  torch.manual_seed(0)
  hf = tf.LlamaConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.d_ff,
                      num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
                      num_key_value_heads=cfg.n_kv_heads, head_dim=cfg.head_dim, rms_norm_eps=cfg.norm_eps,
                      max_position_embeddings=max(cfg.max_seq_len, seq), tie_word_embeddings=cfg.tie_embeddings,
                      rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta})
  model = tf.LlamaForCausalLM(hf).train()
  opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
  ids = torch.from_numpy(sft_setup.tokens(cfg, batch, seq)).long()
  cast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if dtype == "bfloat16" else contextlib.nullcontext

  def step() -> float:
    opt.zero_grad(set_to_none=True)
    with cast():
      loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss.item()

  return step, sum(p.numel() for p in model.parameters())


def main() -> None:
  distributed.split_host_cpu()  # as the xlra CLI runs: one XLA device per core (before any device use)
  ap = sft_setup.argument_parser(__doc__)
  args = ap.parse_args()

  print(f"sft_vs_torch: {timing.load_line()}; jax {jax.__version__}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()})", flush=True)
  t0 = time.perf_counter()
  ours = sft_setup.build(args.preset, args.batch, args.seq, args.dtype)
  ref, ref_params = torch_step(ours.cfg, args.batch, args.seq, args.dtype)
  if ref_params != ours.params:
    raise AssertionError(f"parameter counts differ: torch {ref_params} vs ours {ours.params}")
  l_ref, l_ours = ref(), ours.run()  # warm-up (and compile)
  print(f"{args.preset}: {ours.params / 1e6:.1f}M params on both sides; batch {args.batch} x seq {args.seq}; "
        f"{args.dtype}; first-step loss torch {l_ref:.3f} ours {l_ours:.3f} (ln V = {np.log(ours.cfg.vocab_size):.3f}); "
        f"setup {time.perf_counter() - t0:.0f} s", flush=True)

  times = {"torch": [], "ours": []}
  for r in range(args.rounds):
    for name, fn in (("torch", ref), ("ours", ours.run)):
      fn()  # takes the hand-over from the other side; the next step is the one timed
      times[name].append(timing.seconds(fn))
    t, o = times["torch"][-1], times["ours"][-1]
    print(f"round {r + 1}: torch {t:.2f} s/step ({ours.tokens / t:.0f} tokens/s)  ours {o:.2f} s/step "
          f"({ours.tokens / o:.0f} tokens/s)  ratio {t / o:.3f}", flush=True)
  ratios = timing.paired_ratios(times["torch"], times["ours"])  # time ratio = tokens/s ratio inverted
  best_t, best_o = min(times["torch"]), min(times["ours"])
  print(f"median ratio {timing.median(ratios):.3f}; best steps: torch {ours.tokens / best_t:.0f} tokens/s, ours "
        f"{ours.tokens / best_o:.0f} tokens/s ({best_t / best_o:.3f}); {timing.load_line()}")
  # What the ratio can reach: both sides' best steps as shares of this machine's matmul peak (the sft_mfu
  # reference, measured now), and the share a 1.2x step would need.
  peak, fpt = measure_peak_flops(args.dtype, seconds=1.0), ours.flops_per_token
  share = lambda t: ours.tokens / t * fpt / peak
  print(f"{args.dtype} jnp.dot peak {peak / 1e9:.1f} GFLOP/s: torch's best step reaches {share(best_t):.2f} of it, "
        f"ours {share(best_o):.2f}; 1.2x torch would need {1.2 * share(best_t):.2f}", flush=True)
  timing.print_ratio(timing.median(ratios))


if __name__ == "__main__":
  main()
