"""Seahorse (Clark et al. 2023): multilingual summaries rated on six yes/no questions. Pointwise RM
examples come from one question (default question6), joined with the source article by gem_id.

The TSV (header gem_id, worker_lang, summary, model, question1..question6) is CSV-quoted, and its text
is JSON-escaped without the outer quotes (non-ASCII as literal \\uXXXX, quotes as \\"); `decode_escapes`
undoes that. When question1 (comprehensible) is "No", questions 2-6 are empty; "Unsure" occurs in every
question column. Both are skip reasons, counted like every other.

Articles are not in Seahorse: they come from the GEM releases (XL-Sum, MLSum, WikiLingua, XSum). Give
a mapping gem_id -> article, from `articles_from_rows` (a GEM dataset from the hub or a JSONL with
gem_id) or `articles_from_dir` (local files in the GEM layouts, as in ../shared/data).
"""

from __future__ import annotations

import csv
import glob
import json
import os
import re
from typing import Iterable, Mapping

from xlra.data.skips import SkipCounter
from xlra.data.sources.common import (MAX_INPUT_TOKENS, MAX_OUTPUT_TOKENS, count_tokens, normalize_lang, rows_of,
                                      summarize_prompt, truncate)
from xlra.data.sources.summarization import ARTICLE_FIELDS, _first, iter_wikilingua, parse_xsum_summary

HEADER = ("gem_id", "worker_lang", "summary", "model", *(f"question{i}" for i in range(1, 7)))
_U_RUN = re.compile(r"(?:\\u[0-9a-fA-F]{4})+")
_LABELS = {"yes": True, "no": False}


def decode_escapes(text: str) -> str:
  """JSON string escapes -> characters. Falls back to decoding only \\uXXXX runs (surrogate pairs
  joined) when the text is not a valid JSON string body (e.g. it holds a bare quote)."""
  if "\\" not in text:
    return text
  try:
    return json.loads(f'"{text}"', strict=False)
  except json.JSONDecodeError:
    def run(m: re.Match) -> str:  # a run of \uXXXX: UTF-16 code units, so surrogate pairs join up
      s = m.group(0)
      return bytes.fromhex("".join(s[i + 2:i + 6] for i in range(0, len(s), 6))).decode("utf-16-be", "replace")
    return _U_RUN.sub(run, text)


def read_ratings(path: str, question: str = "question6", languages: Iterable[str] | None = None,
                 max_output_tokens: int = MAX_OUTPUT_TOKENS, tokenizer=None) -> tuple[list[dict], SkipCounter]:
  """Rows {"gem_id", "lang", "model", "summary", "label", "row"} with a Yes/No answer to `question`."""
  if question not in HEADER[4:]:
    raise ValueError(f"question must be one of {HEADER[4:]}, got {question!r}")
  if not os.path.exists(path):
    raise FileNotFoundError(f"Seahorse TSV {path} does not exist")
  wanted = None if languages is None else {normalize_lang(x) or x for x in languages}
  skips, out = SkipCounter(f"seahorse {os.path.basename(path)} ({question})"), []
  with open(path, encoding="utf-8", newline="") as f:
    reader = csv.reader(f, delimiter="\t", quotechar='"')
    header = next(reader, None)
    if header is None or tuple(header) != HEADER:
      raise ValueError(f"{path}: header {header} is not the Seahorse header {list(HEADER)}")
    col = HEADER.index(question)
    for row_no, row in enumerate(reader, start=2):
      if len(row) != len(HEADER):
        skips.skip("wrong_field_count", row_no)
        continue
      gem_id, worker_lang, summary, model = row[0].strip(), row[1].strip(), decode_escapes(row[2]).strip(), row[3]
      answer = row[col].strip()
      lang = normalize_lang(worker_lang)
      if not gem_id:
        skips.skip("missing_gem_id", row_no)
      elif lang is None:
        skips.skip("unknown_language", row_no)
      elif wanted is not None and lang not in wanted:
        skips.skip("language_filtered", row_no)
      elif not summary:
        skips.skip("empty_summary", row_no)
      elif not answer:
        skips.skip("empty_label" + ("_question1_no" if row[4].strip() == "No" else ""), row_no)
      elif answer == "Unsure":
        skips.skip("unsure_label", row_no)
      elif answer.lower() not in _LABELS:
        skips.skip("unknown_label", row_no)
      elif count_tokens(summary, tokenizer) > max_output_tokens:
        skips.skip("output_too_long", row_no)
      else:
        out.append({"gem_id": gem_id, "lang": lang, "model": model, "summary": summary,
                    "label": _LABELS[answer.lower()], "row": row_no})
        skips.keep()
  skips.require_kept()
  return out, skips


def join_articles(ratings: list[dict], articles: Mapping[str, str], tokenizer=None,
                  max_input_tokens: int = MAX_INPUT_TOKENS, what: str = "seahorse") -> tuple[list[dict], SkipCounter]:
  """Pointwise records {"id", "lang", "prompt", "output", "label", "gem_id", "model"}; ratings whose
  gem_id has no article are counted as "missing_article"."""
  skips, out = SkipCounter(f"{what} joined with articles"), []
  for r in ratings:
    article = articles.get(r["gem_id"])
    if not article or not article.strip():
      skips.skip("missing_article", r["gem_id"])
      continue
    article, cut = truncate(article.strip(), max_input_tokens, tokenizer)
    if cut:
      skips.note("truncated_input")
    out.append({"id": f"seahorse-{r['gem_id']}-{r['model']}-{r['row']}", "lang": r["lang"],
                "prompt": summarize_prompt(article, r["lang"]), "output": r["summary"], "label": r["label"],
                "gem_id": r["gem_id"], "model": r["model"]})
    skips.keep()
  skips.require_kept()
  return out, skips


def load_seahorse(path: str, articles: Mapping[str, str], question: str = "question6",
                  languages: Iterable[str] | None = None, tokenizer=None, max_input_tokens: int = MAX_INPUT_TOKENS,
                  max_output_tokens: int = MAX_OUTPUT_TOKENS) -> tuple[list[dict], SkipCounter]:
  """`read_ratings` then `join_articles`; the returned counter holds both steps' counts."""
  ratings, skips = read_ratings(path, question, languages, max_output_tokens, tokenizer)
  records, join_skips = join_articles(ratings, articles, tokenizer, max_input_tokens)
  skips.kept = 0
  skips.merge(join_skips)
  return records, skips


def pointwise_to_pairs(records: list[dict]) -> list[dict]:
  """Pairwise records from summaries of the same article with different labels (good > bad)."""
  by_article: dict[str, list[dict]] = {}
  for r in records:
    by_article.setdefault(r["gem_id"], []).append(r)
  out = []
  for gem_id, rs in by_article.items():
    for good in (r for r in rs if r["label"]):
      for bad in (r for r in rs if not r["label"]):
        out.append({"id": f"{good['id']}>{bad['id']}", "lang": good["lang"], "prompt": good["prompt"],
                    "chosen": good["output"], "rejected": bad["output"], "gem_id": gem_id})
  return out


# -- articles by gem_id -------------------------------------------------------------------------------

def articles_from_rows(rows: str | Iterable[dict]) -> dict[str, str]:
  """gem_id -> article from rows that carry a gem_id (GEM hub datasets, or a JSONL of {gem_id, text})."""
  out = {}
  for _, row in rows_of(rows):
    if row and row.get("gem_id"):
      article = _first(row, ARTICLE_FIELDS)
      if article:
        out[str(row["gem_id"])] = article
  return out


_SPLIT_NAMES = {"val": "validation", "validation": "validation", "train": "train", "test": "test"}


def articles_from_dir(root: str) -> dict[str, str]:
  """gem_id -> article from local files in the GEM layouts under `root`:
    gem_wiki_lingua/<config>/<split>.src.<lang>   line i -> wiki_lingua_<config>-<split>-i
    mlsum/<l>_<split>.jsonl                        line i (0-based) -> mlsum_<l>-<validation|train|test>-i
    xsum/gem_xsum_confidence*.json + xsum/<bbcid>.summary   GEM list position i -> xsum-<split>-i
    **/*.jsonl rows with a gem_id field            gem_id -> article
  """
  if not os.path.isdir(root):
    raise FileNotFoundError(f"article directory {root} does not exist")
  out: dict[str, str] = {}
  for src in glob.glob(os.path.join(root, "gem_wiki_lingua", "*", "*.src.*")):
    config = os.path.basename(os.path.dirname(src))
    split, _, lang = os.path.basename(src).split(".")
    if config.endswith("_" + lang):
      for key, row in iter_wikilingua(os.path.dirname(src), lang, split):
        out[key] = row["text"]
  for path in glob.glob(os.path.join(root, "mlsum", "*_*.jsonl")):
    lang, split = os.path.basename(path)[:-len(".jsonl")].split("_", 1)
    for i, row in rows_of(path):
      article = row and _first(row, ARTICLE_FIELDS)
      if article:
        out[f"mlsum_{lang}-{_SPLIT_NAMES.get(split, split)}-{i - 1}"] = article
  for path in glob.glob(os.path.join(root, "xsum", "gem_xsum_confidence*.json")):
    with open(path, encoding="utf-8") as f:
      lists = json.load(f)
    for split, bbc_ids in lists.items():
      for i, bbc_id in enumerate(bbc_ids):
        p = os.path.join(os.path.dirname(path), f"{bbc_id}.summary")
        if os.path.exists(p):
          with open(p, encoding="utf-8", errors="replace") as f:
            out[f"xsum-{_SPLIT_NAMES.get(split, split)}-{i}"] = parse_xsum_summary(f.read())["text"]
  for path in glob.glob(os.path.join(root, "**", "*.jsonl"), recursive=True):
    out.update(articles_from_rows(path))
  return out
