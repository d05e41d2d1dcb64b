"""Outputs of a policy checkpoint (a Hugging Face or xlra model directory) on the evaluation prompts, for
systems the eval job gets as checkpoints.

Prompts are encoded exactly as for training and sampling (xlra.data.tokenizer.encode_prompt: the chat
template when the tokenizer has one), generated with the jitted KV-cache sampler, cut at EOS and
decoded. Each prompt's randomness is named by its row index (xlra.sampling.sampler), so the outputs do
not depend on the batch size.
"""

from __future__ import annotations

import jax
import ml_collections
from absl import logging
from flax import nnx

from xlra import files
from xlra.data.sources.prompts import read_prompts

def generate_outputs(system: ml_collections.ConfigDict, config: ml_collections.ConfigDict, path: str) -> None:
  """Write `path` (JSONL id, prompt, output, lang, task) with the checkpoint's outputs on config.prompts."""
  from xlra.data.tokenizer import decode_response, encode_prompt
  from xlra.eval.checkpoints import load_lm_and_tokenizer
  from xlra.sampling.sampler import Sampler, SamplingConfig

  gc = config.generation
  rows = read_prompts(config.prompts, config.task)
  model, tok = load_lm_and_tokenizer(system.checkpoint, system.tokenizer, system.checkpoint_format,
                                     field="system checkpoint")
  graphdef, params = nnx.split(model)
  sampler = Sampler(graphdef, SamplingConfig(max_new_tokens=gc.max_new_tokens, eos_id=tok.eos_token_id,
                                             pad_id=tok.pad_token_id, temperature=gc.temperature,
                                             max_prompt_len=gc.max_prompt_len))
  rng = jax.random.key(gc.seed)
  out = []
  for start in range(0, len(rows), gc.batch_size):
    batch = rows[start:start + gc.batch_size]
    ids = [encode_prompt(tok, r["prompt"]) for r in batch]
    sample = sampler(params, ids, rng, prompt_ids=list(range(start, start + len(batch))))
    for k, r in enumerate(batch):
      out.append({**r, "output": decode_response(tok, sample.response(k))})
    logging.info("eval: generated %d/%d outputs of %s", len(out), len(rows), system.checkpoint)
  files.write_jsonl(path, out)
