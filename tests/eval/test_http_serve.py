"""Integration: the HTTP judge against a real `transformers serve` on 127.0.0.1, started here.

The served model is a tiny random Llama whose final norm is zeroed, so every logit is 0 and greedy
decoding picks token id 0, which is "1": the judge always prefers the output shown first. That makes
the expected probability of every request known: 1 when A was shown first, 0 otherwise, 0.5 when both
orders are averaged.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from xlra.eval.judges import base
from xlra.eval.judges.http import HttpJudge, HttpJudgeConfig, example_order

pytestmark = pytest.mark.slow

_WORDS = ["1", "2", "<unk>", "<pad>", "<s>", "</s>", "system", "user", "assistant", ":", "Output", "Summary"]
_TEMPLATE = ("{% for m in messages %}<s> {{ m['role'] }} : {{ m['content'] }} </s> {% endfor %}"
             "{% if add_generation_prompt %}<s> assistant : {% endif %}")


def _make_model(path: str) -> None:
  import tokenizers
  import torch
  import transformers
  from tokenizers import decoders, models, pre_tokenizers

  tok = tokenizers.Tokenizer(models.WordLevel({w: i for i, w in enumerate(_WORDS)}, unk_token="<unk>"))
  tok.pre_tokenizer = pre_tokenizers.Whitespace()
  tok.decoder = decoders.WordPiece()
  transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                                       eos_token="</s>", chat_template=_TEMPLATE).save_pretrained(path)
  cfg = transformers.LlamaConfig(vocab_size=len(_WORDS), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                                 bos_token_id=4, eos_token_id=5, pad_token_id=3, tie_word_embeddings=False)
  torch.manual_seed(0)
  model = transformers.LlamaForCausalLM(cfg)
  with torch.no_grad():
    model.model.norm.weight.zero_()
  model.save_pretrained(path)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module")
def served_model(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("served_model"))
  _make_model(path)
  port = _free_port()
  exe = shutil.which("transformers", path=os.path.dirname(sys.executable)) or shutil.which("transformers")
  log = open(os.path.join(path, "serve.log"), "wb")
  proc = subprocess.Popen([exe, "serve", path, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                          stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
  try:
    deadline = time.monotonic() + 180  # a fresh venv compiles torch and transformers bytecode on first start
    while True:
      if proc.poll() is not None:
        raise RuntimeError(f"transformers serve exited with {proc.returncode}: {open(log.name).read()[-2000:]}")
      try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
          if json.loads(r.read()).get("status") == "ok":
            break
      except OSError:
        pass
      if time.monotonic() > deadline:
        raise RuntimeError(f"transformers serve not ready in 180 s: {open(log.name).read()[-2000:]}")
      time.sleep(0.25)
    yield f"http://127.0.0.1:{port}/v1", path
  finally:
    proc.terminate()
    try:
      proc.wait(10)
    except subprocess.TimeoutExpired:
      proc.kill()
      proc.wait()
    log.close()


def _requests() -> list[base.Judgement]:
  return [base.Judgement(prompt=f"Summary please {i}", output_a=f"Output a {i} " * (i + 1), output_b=f"b {i}",
                         lang="en", task="summarization" if i % 2 else "dialog") for i in range(8)]


def test_transformers_serve_judging_and_cached_rerun(served_model, tmp_path):
  url, model = served_model
  cfg = dict(base_url=url, model=model, max_tokens=1, timeout=30.0, max_concurrency=2, backoff=0.1,
             cache_path=str(tmp_path / "cache.jsonl"))
  reqs = _requests()
  judge = HttpJudge(HttpJudgeConfig(**cfg))
  res = judge.judge(reqs)
  assert all(r.ok and not r.cached for r in res), [r.error for r in res]
  assert [r.p_a for r in res] == [1.0 if example_order(q) else 0.0 for q in reqs]
  assert judge.stats["http_attempts"] == len(reqs) and judge.stats["retries"] == 0

  # A rerun (new judge, same cache file) sends no request at all and gives the same answers.
  again = HttpJudge(HttpJudgeConfig(**cfg))
  res2 = again.judge(reqs)
  assert again.stats["http_attempts"] == 0 and again.stats["cache_hits"] == len(reqs)
  assert [r.p_a for r in res2] == [r.p_a for r in res] and all(r.cached for r in res2)

  # Averaging both orders cancels this judge's total position bias; only the new order is sent.
  both = HttpJudge(HttpJudgeConfig(**{**cfg, "order": "both"}))
  res3 = both.judge(reqs)
  assert [r.p_a for r in res3] == [0.5] * len(reqs)
  assert both.stats["http_attempts"] == len(reqs)
