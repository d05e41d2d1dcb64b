"""How list fields of a config are read, the same in every job.

ml_collections parses `--config.languages=de,en` into the one-element tuple ("de,en",) when the
field holds a tuple, so a job that iterated it would see a language named "de,en" and filter all its
data away. `list_field` reads any spelling of a list ("de,en", ("de", "en"), ("de,en",)), and
`split_list_fields` rewrites every tuple-of-strings field of a config that way at the command-line
boundary (xlra/main.py), before any job reads it.
"""

from __future__ import annotations

from typing import Iterable

import ml_collections


def list_field(value: str | Iterable[str]) -> tuple[str, ...]:
  """A list field given as "a,b", ("a", "b") or ("a,b",): its items, stripped, empties dropped."""
  items = (value,) if isinstance(value, str) else tuple(value)
  return tuple(v.strip() for item in items for v in str(item).split(",") if v.strip())


def _is_string_list(value: object) -> bool:
  return isinstance(value, (tuple, list)) and bool(value) and all(isinstance(v, str) for v in value)


def split_list_fields(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Every tuple-of-strings field of `config` (nested ones too) as `list_field` reads it, in place.

  Tuples of other things (sharding rules: pairs) and plain strings (LANG=PATH,... specs that their
  own readers split) are left alone. Returns `config` for chaining.
  """
  for key in list(config.keys()):
    value = config[key]
    if isinstance(value, ml_collections.ConfigDict):
      split_list_fields(value)
    elif _is_string_list(value):
      parsed = list_field(value)
      if parsed != tuple(value):
        config[key] = parsed if isinstance(value, tuple) else list(parsed)
  return config
