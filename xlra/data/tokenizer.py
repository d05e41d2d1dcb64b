"""Tokenizers: a byte-level BPE trained on the testbed's text, saved as a Hugging Face tokenizer directory
(so `transformers.AutoTokenizer.from_pretrained(dir)` loads it, and `transformers serve` can use its chat
template), or a real checkpoint's own tokenizer.

Special tokens of the trained tokenizer: <pad> (id 0), <s> (bos, 1), </s> (eos, 2), and the chat role
markers <|system|>, <|user|>, <|assistant|>. The chat template writes
    <s><|user|>PROMPT<|assistant|>RESPONSE</s>
with no extra whitespace (tiny models pay for every token). Pad is always distinct from EOS: the reward
model scores the last real token, which must be the EOS that ends the response.

Encoding for training and sampling goes through `encode_prompt` and `encode_response`, the same for
both kinds of tokenizer: the prompt ends with the assistant marker, the response ends with EOS.
"""

from __future__ import annotations

import os
from typing import Iterable

from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}"
    "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}")
# Tokens real checkpoints reserve that can serve as a pad distinct from EOS, in order of preference.
_PAD_CANDIDATES = ("<pad>", "<|pad|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_0|>", "<|endoftext|>")


def train_bpe(texts: Iterable[str], vocab_size: int, out_dir: str | None = None, min_frequency: int = 2
              ) -> PreTrainedTokenizerFast:
  """Trains a byte-level BPE (every byte is in the base alphabet, so any text round-trips exactly) and
  saves it to `out_dir` when given."""
  from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

  specials = [PAD, BOS, EOS, *ROLE_TOKENS]
  alphabet = pre_tokenizers.ByteLevel.alphabet()
  if vocab_size < len(alphabet) + len(specials):
    raise ValueError(f"tokenizer.vocab_size={vocab_size} is below the {len(alphabet) + len(specials)} byte and "
                     "special tokens of a byte-level BPE; use at least 512")
  tok = Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials,
                                initial_alphabet=alphabet, show_progress=False)
  tok.train_from_iterator(texts, trainer)
  fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                 additional_special_tokens=list(ROLE_TOKENS), clean_up_tokenization_spaces=False,
                                 model_max_length=1 << 20)
  fast.chat_template = CHAT_TEMPLATE
  if out_dir:
    fast.save_pretrained(out_dir)
  return fast


def load_tokenizer(path: str) -> PreTrainedTokenizerBase:
  """A tokenizer directory (ours or a checkpoint's), with a pad token distinct from EOS."""
  if not os.path.isdir(path):
    raise FileNotFoundError(f"tokenizer directory {path!r} does not exist (config.tokenizer.path)")
  tok = AutoTokenizer.from_pretrained(path)
  if tok.eos_token_id is None:
    raise ValueError(f"tokenizer at {path!r} has no EOS token; responses must end with one")
  if tok.pad_token_id is None or tok.pad_token_id == tok.eos_token_id:
    vocab = tok.get_vocab()
    pad = next((t for t in _PAD_CANDIDATES if t in vocab and vocab[t] != tok.eos_token_id), None)
    if pad is None:
      raise ValueError(f"tokenizer at {path!r} has no pad token distinct from EOS ({tok.eos_token!r}) and none of "
                       f"{_PAD_CANDIDATES} in its vocabulary; add a pad token to the checkpoint")
    tok.pad_token = pad
  return tok


# Files that mark a directory as holding a Hugging Face tokenizer (a model directory may hold one beside
# its weights: xlra.models.checkpoint_io documents the layout).
_TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "tokenizer.model")


def has_tokenizer(directory: str) -> bool:
  return any(os.path.isfile(os.path.join(directory, f)) for f in _TOKENIZER_FILES)


def saved_tokenizer_dir(path: str) -> str | None:
  """The tokenizer saved with a model: in `path` itself (a model or HF directory), or in the model/
  export of a training workdir; None when neither holds one."""
  for candidate in (path, os.path.join(path, "model")):
    if has_tokenizer(candidate):
      return candidate
  return None


def find_tokenizer(explicit: str, model_path: str, fallback: str | None, field: str) -> str:
  """The tokenizer directory of a model: `explicit` when set, else the one saved with the model at
  `model_path`, else `fallback` (the data's, for exports older than saved tokenizers)."""
  found = explicit or saved_tokenizer_dir(model_path) or fallback
  if not found:
    raise ValueError(f"{field}={model_path!r} holds no tokenizer files and none was given: set config.tokenizer "
                     "to the tokenizer the model was trained with")
  return found


def check_same_tokenizer(tok: PreTrainedTokenizerBase, tok_dir: str, other_model: str, field: str) -> None:
  """Two models that exchange token ids (a policy and its RM) must share a tokenizer: refuse a model saved
  with another one, naming both."""
  other = saved_tokenizer_dir(other_model)
  if other is None or os.path.abspath(other) == os.path.abspath(tok_dir):
    return
  other_tok = load_tokenizer(other)
  if not same_tokenizer(tok, other_tok):
    raise ValueError(f"{field}={other_model!r} was trained with another tokenizer ({len(other_tok)} tokens, {other}) "
                     f"than the policy's ({len(tok)} tokens, {tok_dir}): token ids would mean different things to "
                     "the two models; train both from the same base checkpoint and tokenizer")


def save_tokenizer(tok: PreTrainedTokenizerBase, directory: str) -> None:
  """Write `tok` (vocabulary, special tokens, chat template) beside a model in `directory`, so that the
  model and its tokenizer travel together (`AutoTokenizer.from_pretrained(directory)` reads it back).
  Process 0 writes; the others return."""
  import jax

  if jax.process_index() == 0:
    tok.save_pretrained(directory)


def check_fits(tok: PreTrainedTokenizerBase, vocab_size: int, what: str, tokenizer_dir: str = "") -> None:
  """Refuses a tokenizer that cannot drive a model with `vocab_size` embedding rows (more tokens than
  rows, or a pad/EOS id past them), before anything compiles. Fewer tokens than rows is normal (rows are
  rounded up for sharding, and real checkpoints reserve some)."""
  where = f" at {tokenizer_dir}" if tokenizer_dir else ""
  if len(tok) > vocab_size:
    raise ValueError(f"the tokenizer{where} has {len(tok)} tokens but {what} has {vocab_size} embedding rows: "
                     f"use the tokenizer the model was trained with (the one saved beside it)")
  for name in ("pad_token_id", "eos_token_id", "bos_token_id"):
    i = getattr(tok, name)
    if i is not None and not 0 <= i < vocab_size:
      raise ValueError(f"the tokenizer{where} has {name}={i}, outside the {vocab_size} embedding rows of {what}")


def same_tokenizer(a: PreTrainedTokenizerBase, b: PreTrainedTokenizerBase) -> bool:
  """The same vocabulary and special ids: token ids mean the same thing under both."""
  return (len(a) == len(b) and (a.eos_token_id, a.pad_token_id, a.bos_token_id) ==
          (b.eos_token_id, b.pad_token_id, b.bos_token_id) and a.get_vocab() == b.get_vocab())


def encode_prompt(tok: PreTrainedTokenizerBase, prompt: str | list[dict]) -> list[int]:
  """Token ids of a prompt (a user message, or a message list for multi-turn), ending where the
  assistant's response starts. Without a chat template: BOS + the text + a newline."""
  messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
  if tok.chat_template:
    return list(tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False))
  text = "\n".join(m["content"] for m in messages) + "\n"
  bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
  return bos + tok.encode(text, add_special_tokens=False)


def encode_response(tok: PreTrainedTokenizerBase, response: str) -> list[int]:
  """Token ids of a response, ending with EOS."""
  return tok.encode(response, add_special_tokens=False) + [tok.eos_token_id]


def decode_response(tok: PreTrainedTokenizerBase, ids: Iterable[int]) -> str:
  """Text of generated ids, cut at the first EOS, without special tokens."""
  ids = list(ids)
  if tok.eos_token_id in ids:
    ids = ids[:ids.index(tok.eos_token_id)]
  return tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
