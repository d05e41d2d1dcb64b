"""The model and its tokenizer travel together: `xlra sft` from a user's Hugging Face checkpoint (its own
BPE with a chat template) exports the tokenizer beside the model; `xlra convert xlra_to_hf` takes the
training workdir; transformers then reads the same tokens and generates the same greedy output as xlra's
sampler on the exported checkpoint."""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import torch
import transformers as tf
from flax import nnx
from models.hf_testing import chat_checkpoint

from train.conftest import load_config  # tests/ is on sys.path (rootdir conftest)
from xlra.data.sources import summarize_prompt
from xlra.data.tokenizer import encode_prompt, load_tokenizer
from xlra.models import convert
from xlra.models.checkpoint_io import load_model
from xlra.parallel.mesh import make_mesh
from xlra.sampling.sampler import Sampler, SamplingConfig
from xlra.train import jobs

ARTICLES = ["The city council met on Monday and approved the new budget for schools.",
            "A storm closed the harbour for two days; ferries resumed on Friday.",
            "The museum opened a new wing with paintings from the north.",
            "Farmers reported a good harvest after a warm and wet summer.",
            "The team won the final after a late goal in extra time.",
            "A new bridge links the two halves of the old town."]
SUMMARIES = ["Council approves school budget.", "Storm closed harbour.", "Museum opens wing.",
             "Good harvest.", "Team wins final.", "New bridge opens."]


def _real_sft_config(hf_dir: str, corpus: str):
  c = load_config("sft", "qwen2.5_1.5b_summarize")
  c.init_hf = hf_dir
  c.languages = ("en",)
  c.data.languages = ("en",)
  c.data.tokenizer.path = hf_dir
  c.data.real.summarization = f"en={corpus}"
  c.model.update(dict(dtype="float32", param_dtype="float32"))
  c.update(dict(max_len=128, batch_size=8, eval_batch_size=8, num_steps=2, num_epochs=0.0, val_examples=2,
                log_every=1, eval_every=0, checkpoint_every=0, progress_every_s=0.0, peak_flops=1e9))
  c.optimizer.update(dict(lr=1e-3, warmup_steps=0))
  return c


def test_sft_export_carries_its_tokenizer_through_convert_to_transformers(tmp_path):
  hf_dir = tmp_path / "user_ckpt"
  texts = [summarize_prompt(a, "en") + " " + s for a, s in zip(ARTICLES, SUMMARIES)] * 4
  user_tok = chat_checkpoint(hf_dir, texts)
  corpus = tmp_path / "en.jsonl"
  corpus.write_text("".join(json.dumps({"text": a, "summary": s}) + "\n" for a, s in list(zip(ARTICLES, SUMMARIES)) * 2))
  work = tmp_path / "sft"
  result = jobs.train_sft(_real_sft_config(str(hf_dir), str(corpus)), str(work))

  # The export holds the run's tokenizer: the user's vocabulary, special ids and chat template.
  exported_tok = tf.AutoTokenizer.from_pretrained(result.model_dir)
  assert len(exported_tok) == len(user_tok) > 1 and exported_tok.chat_template == user_tok.chat_template
  assert exported_tok.get_vocab() == user_tok.get_vocab()
  assert (exported_tok.eos_token_id, exported_tok.pad_token_id) == (user_tok.eos_token_id, user_tok.pad_token_id)

  # `xlra convert xlra_to_hf` takes the training workdir and writes a checkpoint transformers reads.
  cc = load_config("convert", "xlra_to_hf")
  cc.src = str(work)
  convert.run(cc, str(tmp_path / "conv"))
  hf_out = str(tmp_path / "conv" / "hf")
  hf_tok = tf.AutoTokenizer.from_pretrained(hf_out)
  meta = json.loads(open(os.path.join(hf_out, "config.json")).read())
  assert (meta["bos_token_id"], meta["eos_token_id"], meta["pad_token_id"]) == (
      user_tok.bos_token_id, user_tok.eos_token_id, user_tok.pad_token_id)
  ref = tf.AutoModelForCausalLM.from_pretrained(hf_out, attn_implementation="eager").eval()

  # Same tokens: xlra's encoding (with the tokenizer it loads from the export) and transformers' chat template.
  ours_tok = load_tokenizer(result.model_dir)
  prompts = [summarize_prompt(a, "en") for a in ARTICLES[:3]]
  ids = [encode_prompt(ours_tok, p) for p in prompts]
  for p, i in zip(prompts, ids):
    theirs = hf_tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                        tokenize=True, return_dict=False)
    assert list(theirs) == i

  # Same greedy output: xlra's sampler on the exported model against transformers' generate, prompt by prompt.
  steps = 8
  model = load_model(result.model_dir)
  graphdef, params = nnx.split(model)
  sampler = Sampler(graphdef, SamplingConfig(max_new_tokens=steps, eos_id=ours_tok.eos_token_id,
                                             pad_id=ours_tok.pad_token_id, temperature=0.0),
                    make_mesh({"data": 1}, jax.devices()[:1]))
  got = sampler(params, ids, jax.random.key(0))
  for r, i in enumerate(ids):
    with torch.no_grad():
      out = ref.generate(torch.tensor([i]), attention_mask=torch.ones(1, len(i), dtype=torch.long),
                         max_new_tokens=steps, do_sample=False, eos_token_id=hf_tok.eos_token_id,
                         pad_token_id=hf_tok.pad_token_id)[0, len(i):].tolist()
    assert got.response(r) == out, r
    assert hf_tok.decode(out, skip_special_tokens=True) == ours_tok.decode(got.response(r), skip_special_tokens=True)
  assert np.isfinite(result.val.get("loss", 0.0))
