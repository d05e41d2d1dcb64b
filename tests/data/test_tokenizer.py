"""Tokenizer: a byte-level BPE trained on the testbed loads through AutoTokenizer, round-trips text in all
six languages exactly, and frames prompts/responses with the chat template."""

from __future__ import annotations

import json
import os

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from xlra.data import testbed as tb
from xlra.data import tokenizer as T


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
  texts = []
  for lang in tb.LANGUAGES:
    texts += tb.base_corpus(lang, tb.TASKS, 30, 0)
    texts += [t for task in tb.TASKS for e in tb.generate_split(lang, task, "sft", 30, 0) for t in (e.prompt, e.reference)]
  out = str(tmp_path_factory.mktemp("tok"))
  T.train_bpe(texts, 600, out)
  return out


def test_autotokenizer_loads_it_with_distinct_special_tokens(tok_dir):
  tok = AutoTokenizer.from_pretrained(tok_dir)
  assert isinstance(tok, PreTrainedTokenizerFast) and len(tok) == 600
  assert (tok.pad_token, tok.bos_token, tok.eos_token) == ("<pad>", "<s>", "</s>")
  assert len({tok.pad_token_id, tok.bos_token_id, tok.eos_token_id}) == 3
  assert all(tok.convert_tokens_to_ids(t) != tok.unk_token_id for t in T.ROLE_TOKENS)
  # What `transformers serve` reads: a chat template in the directory.
  assert os.path.exists(os.path.join(tok_dir, "chat_template.jinja")) or "chat_template" in json.load(
      open(os.path.join(tok_dir, "tokenizer_config.json")))


@pytest.mark.parametrize("lang", tb.LANGUAGES)
def test_round_trip_is_exact_in_every_language(tok_dir, lang):
  tok = AutoTokenizer.from_pretrained(tok_dir)
  texts = [t for task in tb.TASKS for e in tb.generate_split(lang, task, "eval", 10, 0) for t in (e.prompt, e.reference)]
  for text in texts:
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids, clean_up_tokenization_spaces=False) == text
  # Trained on this language (600 merges shared by six): fewer tokens than bytes.
  assert sum(len(tok.encode(t, add_special_tokens=False)) for t in texts) < 0.7 * sum(len(t.encode()) for t in texts)


@pytest.mark.parametrize("text", ["  double  spaces\tand\ttabs\n\nnewlines ", "😀 emoji, 中文, العربية",
                                  "e\u0301 (not NFC) and \u00e9", "İstanbul'da ıİ ẞ", "</s> <pad> as plain text"])
def test_round_trip_of_unseen_text(tok_dir, text):
  tok = AutoTokenizer.from_pretrained(tok_dir)
  ids = tok.encode(text, add_special_tokens=False)
  if "</s>" in text:  # special-token strings in raw text become the special tokens; they still decode back
    assert tok.eos_token_id in ids
  assert tok.decode(ids, clean_up_tokenization_spaces=False) == text


def test_chat_template_and_encoding(tok_dir):
  tok = T.load_tokenizer(tok_dir)
  msgs = [{"role": "user", "content": "Hallo"}, {"role": "assistant", "content": "Gerne!"}]
  assert tok.apply_chat_template(msgs, tokenize=False) == "<s><|user|>Hallo<|assistant|>Gerne!</s>"
  assert tok.apply_chat_template(msgs[:1], tokenize=False, add_generation_prompt=True) == "<s><|user|>Hallo<|assistant|>"
  p = T.encode_prompt(tok, "Hallo")
  assert p[0] == tok.bos_token_id and p[-1] == tok.convert_tokens_to_ids("<|assistant|>")
  r = T.encode_response(tok, "Gerne!")
  assert r[-1] == tok.eos_token_id and tok.eos_token_id not in r[:-1]
  assert tok.decode(p + r, skip_special_tokens=False) == "<s><|user|>Hallo<|assistant|>Gerne!</s>"
  assert T.decode_response(tok, r + [tok.pad_token_id, 17]) == "Gerne!"
  assert T.encode_prompt(tok, msgs + [{"role": "user", "content": "Und?"}])[-1] == p[-1]


def test_pad_must_differ_from_eos(tmp_path, tok_dir):
  base = AutoTokenizer.from_pretrained(tok_dir)
  # A checkpoint whose pad is its EOS: load_tokenizer switches to a reserved pad token in the vocabulary.
  same = PreTrainedTokenizerFast(tokenizer_object=base.backend_tokenizer, eos_token="</s>", pad_token="</s>")
  same.save_pretrained(tmp_path / "same")
  fixed = T.load_tokenizer(str(tmp_path / "same"))
  assert fixed.pad_token == "<pad>" and fixed.pad_token_id != fixed.eos_token_id
  # Without any candidate in the vocabulary it refuses.
  from tokenizers import Tokenizer, models, pre_tokenizers
  bare = Tokenizer(models.BPE(vocab={"a": 0, "</s>": 1}, merges=[]))
  bare.pre_tokenizer = pre_tokenizers.ByteLevel()
  PreTrainedTokenizerFast(tokenizer_object=bare, eos_token="</s>").save_pretrained(tmp_path / "bare")
  with pytest.raises(ValueError, match="no pad token distinct from EOS"):
    T.load_tokenizer(str(tmp_path / "bare"))
  with pytest.raises(FileNotFoundError, match="does not exist"):
    T.load_tokenizer(str(tmp_path / "missing"))
  with pytest.raises(ValueError, match="at least 512"):
    T.train_bpe(["abc"], 100)


def test_check_fits_names_both_sizes_and_the_special_ids(tok_dir):
  tok = T.load_tokenizer(tok_dir)
  T.check_fits(tok, len(tok), "the model")  # exactly as many rows as tokens
  T.check_fits(tok, len(tok) + 100, "the model")  # spare rows (rounded for sharding, reserved) are normal
  with pytest.raises(ValueError, match=rf"has {len(tok)} tokens but the policy has {len(tok) - 1} embedding rows"):
    T.check_fits(tok, len(tok) - 1, "the policy", tok_dir)


  class Odd(list):  # a tokenizer whose pad id lies past its own vocabulary (a hand-edited config)
    pad_token_id, eos_token_id, bos_token_id = 700, 2, 1

  with pytest.raises(ValueError, match=r"pad_token_id=700, outside the 650 embedding rows of the policy"):
    T.check_fits(Odd([0] * 600), 650, "the policy")


def test_saved_tokenizer_is_found_in_a_model_dir_or_a_workdir(tok_dir, tmp_path):
  tok = T.load_tokenizer(tok_dir)
  T.save_tokenizer(tok, str(tmp_path / "work" / "model"))
  assert T.saved_tokenizer_dir(str(tmp_path / "work")) == str(tmp_path / "work" / "model")
  assert T.find_tokenizer("", str(tmp_path / "work"), None, "f") == str(tmp_path / "work" / "model")
  assert T.find_tokenizer("/explicit", str(tmp_path / "work"), None, "f") == "/explicit"
  with pytest.raises(ValueError, match="config.policy_checkpoint='/nowhere' holds no tokenizer"):
    T.find_tokenizer("", "/nowhere", None, "config.policy_checkpoint")
  assert T.same_tokenizer(T.load_tokenizer(str(tmp_path / "work" / "model")), tok)
