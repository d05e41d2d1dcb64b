"""The six testbed languages (the Seahorse languages of the paper), one module each."""

from __future__ import annotations

from xlra.data.testbed.langs.base import Language
from xlra.data.testbed.langs.de import German
from xlra.data.testbed.langs.en import English
from xlra.data.testbed.langs.es import Spanish
from xlra.data.testbed.langs.ru import Russian
from xlra.data.testbed.langs.tr import Turkish
from xlra.data.testbed.langs.vi import Vietnamese

LANGUAGES: dict[str, Language] = {cls.code: cls() for cls in (German, English, Spanish, Russian, Turkish, Vietnamese)}
CODES: tuple[str, ...] = tuple(LANGUAGES)


def get(code: str) -> Language:
  if code not in LANGUAGES:
    raise ValueError(f"unknown testbed language {code!r}; known: {', '.join(CODES)}")
  return LANGUAGES[code]
