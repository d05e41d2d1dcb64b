"""Systems given as checkpoints: the eval job generates their outputs, equal to transformers' greedy decode;
both checkpoint formats load."""

from __future__ import annotations

import json
import os
import sys

import pytest

from xlra.eval import job

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from configs import eval as eval_config  # noqa: E402

PROMPTS = [("p0", "en", "Summarize: the bank opened in Berlin."), ("p1", "de", "Fasse zusammen: die Bank in Bonn."),
           ("p2", "en", "Tell me two topics.")]


def _checkpoint(path: str):
  import torch
  import transformers

  from xlra.data.tokenizer import train_bpe

  tok = train_bpe([p for _, _, p in PROMPTS] * 20 + ["the bank opened in a city. die Bank."] * 20, 512, path)
  cfg = transformers.LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                 initializer_range=0.3, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                 pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
  torch.manual_seed(0)
  model = transformers.LlamaForCausalLM(cfg).eval()
  model.save_pretrained(path)
  return tok, model


@pytest.mark.slow
def test_checkpoint_system_is_generated_then_judged(tmp_path, monkeypatch):
  import torch

  from xlra.data.tokenizer import decode_response, encode_prompt

  ckpt = str(tmp_path / "ckpt")
  tok, hf_model = _checkpoint(ckpt)
  rows = [{"id": i, "lang": l, "prompt": p} for i, l, p in PROMPTS]
  (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  (tmp_path / "sft.jsonl").write_text("".join(json.dumps({**r, "output": "x"}) + "\n" for r in rows))
  (tmp_path / "qmod_gen.py").write_text("def q(ex, out):\n  return min(1.0, len(out) / 100)\n")
  monkeypatch.syspath_prepend(str(tmp_path))

  c = eval_config.get_config("oracle")
  c.prompts = str(tmp_path / "prompts.jsonl")
  c.baseline.outputs = str(tmp_path / "sft.jsonl")
  c.systems.policy = eval_config.system(checkpoint=ckpt)
  c.generation.max_new_tokens, c.generation.batch_size = 6, 2
  c.judge.oracle.quality_fn = "qmod_gen:q"
  c.winrate.n_boot = 100
  workdir = str(tmp_path / "work")
  # The oracle needs an example per row; this quality function ignores it.
  (tmp_path / "examples.jsonl").write_text("".join(json.dumps({"id": r["id"], "lang": r["lang"]}) + "\n"
                                                   for r in rows))
  c.examples = str(tmp_path / "examples.jsonl")
  job.run(c, workdir)

  got = [json.loads(l) for l in open(os.path.join(workdir, "outputs", "policy.jsonl"))]
  assert [(g["id"], g["lang"], g["prompt"]) for g in got] == [(i, l, p) for i, l, p in PROMPTS]
  for g in got:  # reference: transformers' own greedy decoding, one unpadded prompt at a time
    ids = encode_prompt(tok, g["prompt"])
    with torch.no_grad():
      out = hf_model.generate(torch.tensor([ids]), max_new_tokens=6, do_sample=False,
                              eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    assert g["output"] == decode_response(tok, out[0, len(ids):].tolist())
  assert any(g["output"] for g in got)
  summary = json.load(open(os.path.join(workdir, "summary.json")))
  assert summary["systems"]["policy"]["overall"]["n"] == 3


def test_load_lm_reads_both_formats(tmp_path):
  import numpy as np
  from flax import nnx

  from xlra.eval.checkpoints import detect_format, load_lm
  from xlra.models.checkpoint_io import save_model
  from xlra.models.heads import ScalarModel
  from xlra.models.presets import get_preset
  from xlra.models.transformer import Transformer

  cfg = get_preset("tiny", n_layers=1)
  model = Transformer(cfg, rngs=nnx.Rngs(1))
  save_model(model, str(tmp_path / "lm"))
  assert detect_format(str(tmp_path / "lm")) == "xlra"
  back = load_lm(str(tmp_path / "lm"))
  np.testing.assert_array_equal(np.asarray(back.embedding[...]), np.asarray(model.embedding[...]))
  save_model(ScalarModel(cfg, rngs=nnx.Rngs(1)), str(tmp_path / "rm"))
  with pytest.raises(ValueError, match="scalar"):
    load_lm(str(tmp_path / "rm"))
  with pytest.raises(FileNotFoundError, match="neither"):
    load_lm(str(tmp_path))
