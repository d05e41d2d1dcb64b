"""Summarization SFT corpora (XL-Sum, MLSum, WikiLingua, XSum) as instruction records
{"id", "lang", "prompt": "Summarize the following text in {language}:\\n<article>", "response": summary}.

Formats (`fmt`):
  jsonl        rows with an article field (text | document | source | article) and a summary field
               (summary | target | tgt): XL-Sum, MLSum, GEM releases, HF XSum; also any iterable of
               dicts such as a `datasets.Dataset` (see common.load_hub)
  wikilingua   a GEM WikiLingua directory: line-aligned {split}.src.{lang} / {split}.tgt.{lang}
  xsum_raw     a directory of BBC `*.summary` files ([SN]FIRST-SENTENCE[SN] is the summary,
               [SN]RESTBODY[SN] the article)
  auto         picks one of the above from the path
Articles longer than `max_input_tokens` are cut (counted as "truncated_input"); summaries longer than
`max_output_tokens` are skipped ("output_too_long"), as are rows with a missing or empty field.
"""

from __future__ import annotations

import glob
import os
from typing import Iterable

from xlra.data.skips import SkipCounter
from xlra.data.sources.common import (MAX_INPUT_TOKENS, MAX_OUTPUT_TOKENS, count_tokens, normalize_lang, rows_of,
                                      summarize_prompt, truncate)

ARTICLE_FIELDS = ("text", "document", "source", "article")
SUMMARY_FIELDS = ("summary", "target", "tgt")
FORMATS = ("auto", "jsonl", "wikilingua", "xsum_raw")


def _first(row: dict, fields: tuple[str, ...]) -> str | None:
  for f in fields:
    v = row.get(f)
    if isinstance(v, list):  # GEM WikiLingua on the hub stores lists of sentences
      v = " ".join(str(x) for x in v)
    if isinstance(v, str) and v.strip():
      return v.strip()
  return None


def iter_wikilingua(root: str, lang: str, split: str = "val") -> Iterable[tuple[str, dict]]:
  src, tgt = (os.path.join(root, f"{split}.{side}.{lang}") for side in ("src", "tgt"))
  for p in (src, tgt):
    if not os.path.exists(p):
      raise FileNotFoundError(f"WikiLingua file {p} not found (expected {split}.src.{lang} and {split}.tgt.{lang}; "
                              f"config.real.summarization_split={split!r} picks the split)")
  with open(src, encoding="utf-8") as fs, open(tgt, encoding="utf-8") as ft:
    sources, targets = fs.read().split("\n"), ft.read().split("\n")
  if sources and sources[-1] == "" and targets and targets[-1] == "":
    sources, targets = sources[:-1], targets[:-1]
  if len(sources) != len(targets):
    raise ValueError(f"{src} has {len(sources)} lines but {tgt} has {len(targets)}; the files must be line-aligned")
  for i, (s, t) in enumerate(zip(sources, targets)):
    # The GEM id: line i of val.src.de in german_de/ is "wiki_lingua_german_de-val-i".
    yield f"wiki_lingua_{os.path.basename(os.path.normpath(root))}-{split}-{i}", {"text": s, "summary": t}


def parse_xsum_summary(text: str) -> dict:
  """The sections of a BBC XSum `.summary` file: url, title, summary (first sentence), text (rest)."""
  sections, key = {}, None
  for line in text.split("\n"):
    if line.startswith("[SN]") and line.endswith("[SN]") and len(line) > 8:
      key = line[4:-4]
      sections[key] = []
    elif key is not None:
      sections[key].append(line)
  get = lambda k: "\n".join(sections.get(k, [])).strip()
  return {"url": get("URL"), "title": get("TITLE"), "summary": get("FIRST-SENTENCE"), "text": get("RESTBODY")}


def iter_xsum_raw(root: str) -> Iterable[tuple[str, dict]]:
  paths = sorted(glob.glob(os.path.join(root, "*.summary")))
  if not paths:
    raise FileNotFoundError(f"no *.summary files in {root}")
  for p in paths:
    with open(p, encoding="utf-8", errors="replace") as f:
      yield os.path.basename(p)[:-len(".summary")], parse_xsum_summary(f.read())


def _detect(source, lang: str) -> str:
  if not isinstance(source, (str, os.PathLike)):
    return "jsonl"
  path = str(source)
  if os.path.isdir(path):
    if glob.glob(os.path.join(path, "*.summary")):
      return "xsum_raw"
    if glob.glob(os.path.join(path, f"*.src.{lang}")):
      return "wikilingua"
    raise ValueError(f"{path}: a directory with neither *.summary (XSum) nor *.src.{lang} (WikiLingua) files")
  return "jsonl"


def _rows(source, fmt: str, lang: str, split: str) -> Iterable[tuple[int, str | None, dict | None]]:
  """(row number, id or None, row) in any format."""
  if fmt in ("wikilingua", "xsum_raw"):
    it = iter_wikilingua(str(source), lang, split) if fmt == "wikilingua" else iter_xsum_raw(str(source))
    for i, (key, row) in enumerate(it, start=1):
      yield i, key, row
  else:
    for i, row in rows_of(source):
      yield i, None, row


def load_summarization(source: str | Iterable[dict], lang: str, fmt: str = "auto", *, name: str | None = None,
                       tokenizer=None, max_input_tokens: int = MAX_INPUT_TOKENS,
                       max_output_tokens: int = MAX_OUTPUT_TOKENS, split: str = "val", limit: int | None = None
                       ) -> tuple[list[dict], SkipCounter]:
  """SFT records from one corpus in one language, and what was skipped (error if nothing is left)."""
  code = normalize_lang(lang)
  if code is None:
    raise ValueError(f"unknown language code {lang!r} for summarization corpus {name or source!r}")
  if fmt not in FORMATS:
    raise ValueError(f"unknown summarization format {fmt!r}; known: {', '.join(FORMATS)}")
  fmt = _detect(source, lang) if fmt == "auto" else fmt
  name = name or (os.path.basename(os.path.normpath(str(source))) if isinstance(source, (str, os.PathLike))
                  else "rows")
  skips, out = SkipCounter(f"{name} ({code})"), []
  for i, row_id, row in _rows(source, fmt, lang, split):
    if limit is not None and len(out) >= limit:
      break
    if row is None:
      skips.skip("not_a_json_object", i)
      continue
    article, summary = _first(row, ARTICLE_FIELDS), _first(row, SUMMARY_FIELDS)
    if article is None:
      skips.skip("missing_article", i)
      continue
    if summary is None:
      skips.skip("missing_summary", i)
      continue
    if count_tokens(summary, tokenizer) > max_output_tokens:
      skips.skip("output_too_long", i)
      continue
    article, cut = truncate(article, max_input_tokens, tokenizer)
    if cut:
      skips.note("truncated_input")
    rid = row_id or row.get("gem_id") or row.get("id") or f"{name}-{i}"
    out.append({"id": str(rid), "lang": code, "prompt": summarize_prompt(article, code), "response": summary,
                "source": name})
    skips.keep()
  skips.require_kept()
  return out, skips
