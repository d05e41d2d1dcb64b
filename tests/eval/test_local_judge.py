"""Local LM judge: antisymmetric after order averaging, and equal to an unpadded full-vocabulary forward."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from xlra.eval.judges import base, prompts
from xlra.eval.judges.local import LocalJudge, LocalJudgeConfig
from xlra.models.presets import get_preset
from xlra.models.transformer import Transformer

_CORPUS = [prompts.plain_text("dialog", "How do I boil an egg?", "Put it in water. 1 2", "Boil it. 2 1", "en"),
           prompts.plain_text("summarization", "The cat sat on the mat all day.", "A cat sat.", "Mat.", "de"),
           "Answer: 1 Answer: 2 Output 1 Output 2 1 2 12 21"] * 4


def _tokenizer(chat: bool):
  import tokenizers
  import transformers
  from tokenizers import decoders, models, pre_tokenizers, trainers

  tok = tokenizers.Tokenizer(models.BPE(unk_token=None))
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  tok.train_from_iterator(_CORPUS, trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "<s>", "</s>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
  template = ("{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}"
              "{% if add_generation_prompt %}<s>assistant\n{% endif %}") if chat else None
  return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>",
                                              eos_token="</s>", chat_template=template)


def _model(vocab: int, seed: int = 0) -> Transformer:
  cfg = get_preset("tiny", vocab_size=vocab, max_seq_len=1024, n_layers=1)
  model = Transformer(cfg, rngs=nnx.Rngs(seed))
  # The 0.02 init gives near-uniform next-token distributions; larger weights give real preferences.
  graphdef, state = nnx.split(model)
  return nnx.merge(graphdef, jax.tree.map(lambda x: x * 20 if x.ndim >= 2 else x, state))


def _requests() -> list[base.Judgement]:
  return [base.Judgement("How do I boil an egg?", "Put it in boiling water for eight minutes.", "Boil it.", "en"),
          base.Judgement("Wie koche ich ein Ei?", "Kochen.", "In kochendes Wasser legen, acht Minuten.", "de"),
          base.Judgement("The cat sat on the mat all day and slept.", "A cat slept on a mat.", "Mat.", "fr",
                         task="summarization"),
          base.Judgement("Same?", "identical", "identical", "en")]


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "chat"])
def judge(request):
  tok = _tokenizer(chat=request.param)
  return LocalJudge(_model(len(tok)), tok, LocalJudgeConfig(batch_size=4, min_bucket=64))


def test_antisymmetric_after_order_averaging(judge):
  reqs = _requests()
  p_ab = np.array([r.p_a for r in judge.judge(reqs)])
  # The swapped requests go through in another order, so they land in other rows and batches.
  swapped = [r.swapped() for r in reqs][::-1]
  p_ba = np.array([r.p_a for r in judge.judge(swapped)])[::-1]
  np.testing.assert_allclose(p_ab + p_ba, 1.0, atol=1e-6)
  assert p_ab[3] == pytest.approx(0.5, abs=1e-6)  # identical outputs tie
  assert np.abs(p_ab[:3] - 0.5).max() > 1e-4  # a random model still has preferences


def test_matches_a_full_vocabulary_reference_without_masks(judge):
  tok = judge.tokenizer
  graphdef = judge.graphdef
  # Independent path: text rendered here, no attention mask (the model is causal, so trailing filler
  # cannot change position len-1), softmax over the full vocabulary, answer tokens looked up by name.
  forward = jax.jit(lambda state, tokens: nnx.merge(graphdef, state)(tokens))

  def encode(req, first, second):
    if judge.use_chat:
      text = tok.apply_chat_template(prompts.chat_messages(req.task, req.prompt, first, second, req.lang),
                                     add_generation_prompt=True, tokenize=False)
      return tok(text, add_special_tokens=False)["input_ids"]
    return tok(prompts.plain_text(req.task, req.prompt, first, second, req.lang))["input_ids"]

  # Byte-level BPE spells " 1" as "Ġ1": the plain prompt's answer follows "Answer:" with a space.
  answers = [tok.convert_tokens_to_ids(t) for t in (("1", "2") if judge.use_chat else ("Ġ1", "Ġ2"))]
  assert None not in answers and tok.unk_token_id not in answers
  reqs = _requests()
  rows = [encode(r, r.output_a, r.output_b) for r in reqs] + [encode(r, r.output_b, r.output_a) for r in reqs]
  tokens = np.full((len(rows), 512), tok.eos_token_id, np.int32)
  for i, ids in enumerate(rows):
    tokens[i, :len(ids)] = ids
  logits = np.asarray(forward(judge.state, tokens)).astype(np.float64)
  last = np.stack([logits[i, len(ids) - 1] for i, ids in enumerate(rows)])
  probs = np.exp(last - last.max(axis=1, keepdims=True))
  probs /= probs.sum(axis=1, keepdims=True)
  p1 = probs[:, answers[0]] / probs[:, answers].sum(axis=1)
  n = len(reqs)
  want = 0.5 * (p1[:n] + (1 - p1[n:]))  # P("1" | A first) and P("2" | B first)
  got = [r.p_a for r in judge.judge(reqs)]
  np.testing.assert_allclose(got, want, atol=1e-5)


def test_too_long_is_a_counted_failure():
  tok = _tokenizer(chat=False)
  j = LocalJudge(_model(len(tok)), tok, LocalJudgeConfig(batch_size=2, max_len=215))
  reqs = _requests()[:2] + [base.Judgement("x " * 400, "a", "b")]
  res = j.judge(reqs)
  assert [r.error_kind for r in res] == [None, None, base.TOO_LONG] and j.stats["failed_too_long"] == 1


def test_eval_job_with_a_local_judge_from_an_xlra_model_dir(judge, tmp_path):
  import json
  import os
  import sys

  from xlra.eval import job
  from xlra.models.checkpoint_io import save_model

  sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
  from configs import eval as eval_config

  if judge.use_chat:
    pytest.skip("one tokenizer is enough for the job's plumbing")
  tok, model = judge.tokenizer, nnx.merge(judge.graphdef, judge.state)
  save_model(model, str(tmp_path / "judge"))
  tok.save_pretrained(str(tmp_path / "judge"))
  reqs = _requests()[:3]
  rows = lambda outs: "".join(json.dumps({"id": f"r{i}", "lang": r.lang, "task": r.task, "prompt": r.prompt,
                                          "output": o}) + "\n" for i, (r, o) in enumerate(zip(reqs, outs)))
  (tmp_path / "sys.jsonl").write_text(rows([r.output_a for r in reqs]))
  (tmp_path / "sft.jsonl").write_text(rows([r.output_b for r in reqs]))
  c = eval_config.get_config("local")
  c.judge.local.path, c.judge.local.batch_size = str(tmp_path / "judge"), 4
  c.baseline.outputs, c.system_outputs = str(tmp_path / "sft.jsonl"), f"sys={tmp_path / 'sys.jsonl'}"
  c.winrate.n_boot = 100
  job.run(c, str(tmp_path / "work"))
  got = [json.loads(l) for l in open(tmp_path / "work" / "judgements" / "sys.jsonl")]
  # The system is A and the baseline B: the same numbers as judging (output_a, output_b) directly.
  direct = judge.judge(reqs)
  np.testing.assert_allclose([g["p_a"] for g in got], [r.p_a for r in direct], atol=1e-6)
