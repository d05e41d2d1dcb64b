"""What the real-data loaders share: language codes, the summarization instruction, token-budget
truncation, and reading JSONL / Hugging Face rows.

Records every loader returns (plain dicts, the same schemas the testbed writes):
  SFT        {"id", "lang", "prompt", "response"} (+ "messages" for multi-turn chats)
  pairwise   {"id", "lang", "prompt", "chosen", "rejected"} (+ "messages")
  pointwise  {"id", "lang", "prompt", "output", "label"}
"""

from __future__ import annotations

import json
import os
from typing import Iterable, Iterator

LANGUAGE_NAMES = {"de": "German", "en": "English", "es": "Spanish", "ru": "Russian", "tr": "Turkish",
                  "vi": "Vietnamese", "fr": "French", "it": "Italian", "pt": "Portuguese", "zh": "Chinese",
                  "ja": "Japanese", "ko": "Korean", "ar": "Arabic", "uk": "Ukrainian", "pl": "Polish",
                  "nl": "Dutch", "ca": "Catalan", "eu": "Basque", "id": "Indonesian", "th": "Thai"}
# Dataset-specific spellings of language codes.
LANGUAGE_ALIASES = {"en-US": "en", "es-ES": "es", "tu": "tr", "english": "en", "german": "de", "spanish": "es",
                    "russian": "ru", "turkish": "tr", "vietnamese": "vi"}
SUMMARIZE_INSTRUCTION = "Summarize the following text in {language}:"
MAX_INPUT_TOKENS, MAX_OUTPUT_TOKENS = 1024, 512


def normalize_lang(code: object) -> str | None:
  """A known ISO code, or None for an unknown one (also for a value that is not a string)."""
  if not isinstance(code, str) or not code:
    return None
  code = LANGUAGE_ALIASES.get(code, LANGUAGE_ALIASES.get(code.lower(), code))
  return code if code in LANGUAGE_NAMES else None


def summarize_prompt(text: str, lang: str) -> str:
  return f"{SUMMARIZE_INSTRUCTION.format(language=LANGUAGE_NAMES[lang])}\n{text}"


def count_tokens(text: str, tokenizer=None) -> int:
  """Tokens under `tokenizer`; without one, whitespace-separated words (a rough stand-in)."""
  if tokenizer is None:
    return len(text.split())
  return len(tokenizer.encode(text, add_special_tokens=False))


def truncate(text: str, max_tokens: int, tokenizer=None) -> tuple[str, bool]:
  """`text` cut to `max_tokens` tokens (words without a tokenizer); True when something was cut."""
  if tokenizer is None:
    words = text.split()
    return (text, False) if len(words) <= max_tokens else (" ".join(words[:max_tokens]), True)
  ids = tokenizer.encode(text, add_special_tokens=False)
  if len(ids) <= max_tokens:
    return text, False
  return tokenizer.decode(ids[:max_tokens], skip_special_tokens=True, clean_up_tokenization_spaces=False), True


def read_jsonl(path: str) -> Iterator[tuple[int, dict | None]]:
  """(line number, row) for each non-blank line; row None where the line is not a JSON object."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} does not exist")
  with open(path, encoding="utf-8") as f:
    for i, line in enumerate(f, start=1):
      if not line.strip():
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError:
        row = None
      yield i, row if isinstance(row, dict) else None


def rows_of(source: str | Iterable[dict]) -> Iterator[tuple[int, dict | None]]:
  """(row number, row) from a JSONL path or any iterable of dicts (e.g. a `datasets.Dataset`)."""
  if isinstance(source, (str, os.PathLike)):
    yield from read_jsonl(str(source))
  else:
    for i, row in enumerate(source, start=1):
      yield i, row if isinstance(row, dict) else None


def load_hub(name: str, config: str | None = None, split: str = "validation", **kw):
  """A Hugging Face hub dataset (or a local dataset directory) through `datasets.load_dataset`."""
  import datasets
  return datasets.load_dataset(name, config, split=split, **kw)
