"""`xlra data`: builds the data of a run (testbed splits or real datasets) and its tokenizer, writes
them under WORKDIR/data, and prints a per-language summary. Other stages call `prepare(config, workdir)`
and get the same data back, from the workdir's cache when the data config has not changed.

WORKDIR/data/
  fingerprint.json            the data config the cache was built from
  tokenizer/                  AutoTokenizer directory (trained BPE, or a copy of the checkpoint's)
  testbed/{split}/{lang}.{task}.jsonl            Example.to_dict() rows (sft, rm_train, rm_val, rl, eval)
  testbed/pairs/{split}/{lang}.{task}.jsonl      preference pairs;  testbed/pointwise/...  labelled outputs
  testbed/base/{lang}.jsonl                      {"text"} documents
  real/{kind}.jsonl                              sft | pairs | pointwise records (source == "real")
  summary.json                                   the table below, plus skip reports
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil

import numpy as np
from absl import logging

from xlra import files
from xlra.data import tokenizer as tok_lib
from xlra.data.testbed import langs
from xlra.data.testbed.annotators import Annotator
from xlra.data.testbed.splits import PREFERENCE_SPLITS, SPLITS, Testbed, build
from xlra.data.testbed.tasks import TASKS, Example

_TOKEN_SAMPLE = 100  # examples per language and task used for the token-length columns


@dataclasses.dataclass
class DataBundle:
  """What `prepare` returns: the tokenizer and either the testbed (source == "testbed") or the real
  records {"sft": [...], "pairs": [...], "pointwise": [...]} (source == "real")."""
  data_dir: str
  tokenizer: object
  tokenizer_dir: str
  testbed: Testbed | None
  real: dict | None
  summary: dict


def validate(config) -> None:
  if config.source not in ("testbed", "real"):
    raise ValueError(f"config.source must be 'testbed' or 'real', got {config.source!r}")
  for lang in config.languages:
    if config.source == "testbed" and lang not in langs.CODES:
      raise ValueError(f"config.languages has {lang!r}, which is not a testbed language; known: "
                       f"{', '.join(langs.CODES)}")
  for task in config.tasks:
    if task not in TASKS:
      raise ValueError(f"config.tasks has {task!r}; known: {', '.join(TASKS)}")
  for split in SPLITS:
    if getattr(config.sizes, split) < 0:
      raise ValueError(f"config.sizes.{split} must be >= 0, got {getattr(config.sizes, split)}")
  if config.source == "testbed" and config.sizes.base < 1 and not config.tokenizer.path:
    raise ValueError("config.sizes.base must be >= 1 to train the tokenizer (or set config.tokenizer.path)")
  if config.source == "real" and not config.tokenizer.path:
    raise ValueError("config.source='real' needs config.tokenizer.path (the checkpoint's tokenizer directory)")


def _fingerprint(config) -> str:
  return hashlib.sha256(config.to_json_best_effort(sort_keys=True).encode()).hexdigest()[:16]


def _write_jsonl(path: str, rows) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    for r in rows:
      f.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n")


def _read_json(path: str) -> dict:
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _read_jsonl(path: str) -> list[dict]:
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]


# -- testbed ------------------------------------------------------------------------------------------

def _testbed_paths(data_dir: str, config):
  for lang in config.languages:
    for task in config.tasks:
      for split in SPLITS[1:]:
        yield "examples", (split, lang, task), os.path.join(data_dir, "testbed", split, f"{lang}.{task}.jsonl")
      for split in PREFERENCE_SPLITS:
        for kind in ("pairs", "pointwise"):
          yield kind, (split, lang, task), os.path.join(data_dir, "testbed", kind, split, f"{lang}.{task}.jsonl")


def write_testbed(tb: Testbed, data_dir: str, config) -> None:
  for kind, key, path in _testbed_paths(data_dir, config):
    table = {"examples": tb.examples, "pairs": tb.pairs, "pointwise": tb.pointwise}[kind]
    _write_jsonl(path, [e.to_dict() if isinstance(e, Example) else e for e in table[key]])
  for lang, docs in tb.base.items():
    _write_jsonl(os.path.join(data_dir, "testbed", "base", f"{lang}.jsonl"), [{"text": d} for d in docs])


def read_testbed(data_dir: str, config) -> Testbed:
  tables = {"examples": {}, "pairs": {}, "pointwise": {}}
  for kind, key, path in _testbed_paths(data_dir, config):
    rows = _read_jsonl(path)
    tables[kind][key] = [Example.from_dict(r) for r in rows] if kind == "examples" else rows
  base = {lang: [r["text"] for r in _read_jsonl(os.path.join(data_dir, "testbed", "base", f"{lang}.jsonl"))]
          for lang in config.languages}
  return Testbed(tables["examples"], tables["pairs"], tables["pointwise"], base, tuple(config.languages),
                 tuple(config.tasks))


def tokenizer_corpus(tb: Testbed) -> list[str]:
  """What the BPE is trained on: the base documents and the SFT prompts and references (so instruction
  words and response phrasing get merges), every language."""
  texts = [d for docs in tb.base.values() for d in docs]
  for (split, _, _), exs in tb.examples.items():
    if split == "sft":
      texts += [t for ex in exs for t in (ex.prompt, ex.reference)]
  return texts


def _sigmoid(x: float) -> float:
  return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, x))))


def testbed_summary(tb: Testbed, tokenizer, annotator: Annotator) -> dict:
  """Per language: counts, token lengths, and how the simulated annotators relate to q."""
  index = tb.index()
  rows = {}
  for lang in tb.languages:
    pairs = tb.get_pairs("rm_train", lang)
    decided = [p for p in pairs if p["q_chosen"] != p["q_rejected"]]
    agree = float(np.mean([p["q_chosen"] > p["q_rejected"] for p in decided])) if decided else float("nan")
    inter = []
    for p in decided:
      ex = index[p["example_id"]]
      d = (annotator.utility(ex, p["chosen"], p["q_chosen"]) - annotator.utility(ex, p["rejected"], p["q_rejected"]))
      prob = _sigmoid(d / annotator.temperature)
      inter.append(prob * prob + (1 - prob) * (1 - prob))
    points = tb.get_pointwise("rm_train", lang)
    point_agree = float(np.mean([r["label"] == (r["q"] >= annotator.threshold) for r in points])) if points else float("nan")
    sample = [ex for task in tb.tasks for ex in tb.get("sft", lang, task)[:_TOKEN_SAMPLE]]
    p_len = [len(tok_lib.encode_prompt(tokenizer, ex.prompt)) for ex in sample] or [0]
    r_len = [len(tok_lib.encode_response(tokenizer, ex.reference)) for ex in sample] or [0]
    rows[lang] = {
        "sft": len(tb.get("sft", lang)), "rm_pairs": len(pairs), "rm_val_pairs": len(tb.get_pairs("rm_val", lang)),
        "rl": len(tb.get("rl", lang)), "eval": len(tb.get("eval", lang)), "base_docs": len(tb.base[lang]),
        "prompt_tokens_mean": float(np.mean(p_len)), "prompt_tokens_max": int(np.max(p_len)),
        "response_tokens_mean": float(np.mean(r_len)), "response_tokens_max": int(np.max(r_len)),
        "agreement_with_q": agree, "inter_annotator": float(np.mean(inter)) if inter else float("nan"),
        "pointwise_agreement": point_agree, "pointwise_good": float(np.mean([r["label"] for r in points]))
        if points else float("nan")}
  return rows


def format_table(rows: dict) -> str:
  head = ("lang", "sft", "rm pairs", "rl", "eval", "base", "prompt tok", "resp tok", "agree q", "inter-ann",
          "point agree", "good")
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for lang, r in rows.items():
    lines.append(
        f"| {lang} | {r['sft']} | {r['rm_pairs']} | {r['rl']} | {r['eval']} | {r['base_docs']} | "
        f"{r['prompt_tokens_mean']:.0f} (max {r['prompt_tokens_max']}) | {r['response_tokens_mean']:.0f} "
        f"(max {r['response_tokens_max']}) | {r['agreement_with_q']:.3f} | {r['inter_annotator']:.3f} | "
        f"{r['pointwise_agreement']:.3f} | {r['pointwise_good']:.2f} |")
  return "\n".join(lines)


# -- real datasets ------------------------------------------------------------------------------------

def load_real(config, tokenizer) -> tuple[dict, dict]:
  """({"sft", "pairs", "pointwise"} records, {source: skip report}) from the paths in `config.real`."""
  from xlra.data import sources

  r = config.real
  kw = dict(tokenizer=tokenizer, max_input_tokens=r.max_input_tokens, max_output_tokens=r.max_output_tokens)
  records, reports = {"sft": [], "pairs": [], "pointwise": []}, {}
  if r.seahorse_tsv:
    if not r.seahorse_articles:
      raise ValueError("config.real.seahorse_tsv needs config.real.seahorse_articles (a GEM directory or a JSONL "
                       "of {gem_id, text}) to join summaries with their articles")
    articles = (sources.articles_from_dir(r.seahorse_articles) if os.path.isdir(r.seahorse_articles)
                else sources.articles_from_rows(r.seahorse_articles))
    recs, skips = sources.load_seahorse(r.seahorse_tsv, articles, languages=config.languages, **kw)
    records["pointwise"] += recs
    reports["seahorse"] = skips.as_dict()
  if r.oasst_jsonl:
    pairs, sft, skips = sources.load_oasst(r.oasst_jsonl, languages=config.languages, **kw)
    records["pairs"] += pairs
    records["sft"] += sft
    reports["oasst"] = skips.as_dict()
  for entry in filter(None, (e.strip() for e in r.summarization.split(","))):
    lang, sep, path = entry.partition("=")
    if not sep:
      raise ValueError(f"config.real.summarization entry {entry!r} must be LANG=PATH (comma-separated)")
    # Keyed by corpus and language: two corpora of one language (MLSUM and WikiLingua in de) each keep
    # their own counts.
    key = f"summarization {lang}={path}"
    if key in reports:
      raise ValueError(f"config.real.summarization names {lang}={path} twice; its records would be read twice")
    recs, skips = sources.load_summarization(path, lang, r.summarization_format, split=r.summarization_split, **kw)
    records["sft"] += recs
    reports[key] = skips.as_dict()
  if not any(records.values()):
    raise ValueError("config.source='real' but no dataset path is set in config.real")
  return records, reports


# -- entry points -------------------------------------------------------------------------------------

def prepare(config, workdir: str) -> DataBundle:
  """The run's data and tokenizer, built once and then read back from WORKDIR/data."""
  validate(config)
  data_dir = os.path.join(workdir, "data")
  stamp = os.path.join(data_dir, "fingerprint.json")
  fingerprint = _fingerprint(config)
  cached = os.path.exists(stamp) and _read_json(stamp).get("fingerprint") == fingerprint
  if not cached and os.path.isdir(data_dir):
    shutil.rmtree(data_dir)  # a different data config: rebuild everything
  os.makedirs(data_dir, exist_ok=True)
  tok_dir = os.path.join(data_dir, "tokenizer")
  testbed = real = None
  if config.source == "testbed":
    if cached:
      testbed = read_testbed(data_dir, config)
    else:
      testbed = build(config)
      write_testbed(testbed, data_dir, config)
      if config.tokenizer.path:
        shutil.copytree(config.tokenizer.path, tok_dir)
      else:
        tok_lib.train_bpe(tokenizer_corpus(testbed), config.tokenizer.vocab_size, tok_dir,
                          config.tokenizer.min_frequency)
    tokenizer = tok_lib.load_tokenizer(tok_dir)
    summary = {"languages": testbed_summary(testbed, tokenizer, Annotator.from_config(config.annotator))}
  else:
    if not cached:
      shutil.copytree(config.tokenizer.path, tok_dir)
    tokenizer = tok_lib.load_tokenizer(tok_dir)
    if cached:
      real = {k: _read_jsonl(os.path.join(data_dir, "real", f"{k}.jsonl")) for k in ("sft", "pairs", "pointwise")}
      summary = _read_json(os.path.join(data_dir, "summary.json"))
    else:
      real, reports = load_real(config, tokenizer)
      for k, rows in real.items():
        _write_jsonl(os.path.join(data_dir, "real", f"{k}.jsonl"), rows)
      counts = {k: {lang: sum(r["lang"] == lang for r in rows) for lang in config.languages} for k, rows in real.items()}
      summary = {"counts": counts, "skips": reports}
  summary["tokenizer"] = {"vocab_size": len(tokenizer), "pad_id": tokenizer.pad_token_id,
                          "bos_id": tokenizer.bos_token_id, "eos_id": tokenizer.eos_token_id}
  if not cached:  # the stamp last and atomically: a run killed before it rebuilds the data
    files.write_json(os.path.join(data_dir, "summary.json"), summary)
    files.write_json(stamp, {"fingerprint": fingerprint, "config": json.loads(config.to_json_best_effort())})
  return DataBundle(data_dir, tokenizer, tok_dir, testbed, real, summary)


def run(config, workdir: str) -> None:
  """The `xlra data` job."""
  bundle = prepare(config, workdir)
  if bundle.testbed is not None:
    table = format_table(bundle.summary["languages"])
  else:
    langs_ = config.languages
    head = "| source | " + " | ".join(langs_) + " |\n|" + "---|" * (len(langs_) + 1)
    table = head + "".join(f"\n| {k} | " + " | ".join(str(c[l]) for l in langs_) + " |"
                           for k, c in bundle.summary["counts"].items())
    for name, rep in bundle.summary["skips"].items():
      table += f"\n{name}: kept {rep['kept']}, skipped {rep['skipped']}, notes {rep['notes']}"
  print(f"data in {bundle.data_dir} (tokenizer: {bundle.tokenizer_dir}, vocab {len(bundle.tokenizer)})\n{table}")
  logging.info("data summary written to %s", os.path.join(bundle.data_dir, "summary.json"))
