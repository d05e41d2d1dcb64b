"""`xlra data` end to end on the tiny preset: files, tokenizer, summary table, the workdir cache, byte-identical
regeneration in a fresh workdir, and the real-data path on fixtures."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from xlra.data import batching, job
from xlra.data import testbed as tb


def _load_config_module():
  """configs/data.py by path (configs/ is not a package; `pytest` alone does not put the repo on sys.path)."""
  path = Path(__file__).parents[2] / "configs" / "data.py"
  spec = importlib.util.spec_from_file_location("xlra_data_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


data_config = _load_config_module()


def _digest(root: str) -> str:
  h = hashlib.sha256()
  for p in sorted(Path(root).rglob("*.jsonl")):
    h.update(str(p.relative_to(root)).encode() + p.read_bytes())
  return h.hexdigest()


def _tiny(**over):
  c = data_config.get_config("tiny")
  for k, v in over.items():
    setattr(c, k, v)
  return c


def test_data_job_writes_splits_tokenizer_and_summary(tmp_path, capsys):
  config = _tiny()
  job.run(config, str(tmp_path / "a"))
  out = capsys.readouterr().out
  for lang in tb.LANGUAGES:
    assert f"| {lang} | {2 * config.sizes.sft} | {2 * config.sizes.rm_train} |" in out
  data = tmp_path / "a" / "data"
  tok = AutoTokenizer.from_pretrained(str(data / "tokenizer"))
  assert len(tok) == config.tokenizer.vocab_size and tok.pad_token_id != tok.eos_token_id
  rows = [json.loads(line) for line in open(data / "testbed" / "sft" / "ru.dialog.jsonl", encoding="utf-8")]
  assert len(rows) == config.sizes.sft and tb.Example.from_dict(rows[0]).lang == "ru"
  pairs = [json.loads(line) for line in open(data / "testbed" / "pairs" / "rm_train" / "es.summarize.jsonl",
                                             encoding="utf-8")]
  assert len(pairs) == config.sizes.rm_train and {"prompt", "chosen", "rejected", "q_chosen"} <= set(pairs[0])
  summary = json.load(open(data / "summary.json", encoding="utf-8"))
  assert set(summary["languages"]) == set(tb.LANGUAGES) and summary["tokenizer"]["vocab_size"] == 512

  # prepare() returns the same data from the cache, without rebuilding.
  stamp = os.path.getmtime(data / "testbed" / "sft" / "ru.dialog.jsonl")
  bundle = job.prepare(config, str(tmp_path / "a"))
  assert os.path.getmtime(data / "testbed" / "sft" / "ru.dialog.jsonl") == stamp
  assert [e.to_dict() for e in bundle.testbed.get("sft", "ru", "dialog")] == rows
  assert bundle.testbed.get_pairs("rm_train", "es", "summarize") == pairs

  # Same config in a fresh workdir: byte-identical; another seed: different; a changed config rebuilds.
  job.prepare(config, str(tmp_path / "b"))
  assert _digest(tmp_path / "a" / "data") == _digest(tmp_path / "b" / "data")
  job.prepare(_tiny(seed=1), str(tmp_path / "b"))
  assert _digest(tmp_path / "a" / "data") != _digest(tmp_path / "b" / "data")

  # The bundle feeds the batching code directly.
  recs = [{"id": e.id, "prompt": e.prompt, "response": e.reference} for e in bundle.testbed.get("sft", "de")]
  enc = batching.encode_records(bundle.tokenizer, recs, ("response",), max_length=400)
  batch = next(batching.sft_loader(enc, 4, bundle.tokenizer.pad_token_id, 400))
  assert batch["tokens"].shape == (4, 400) and batch["loss_mask"].any(axis=1).all()


def test_config_validation():
  with pytest.raises(ValueError, match="testbed language"):
    job.validate(_tiny(languages=("de", "fr")))
  with pytest.raises(ValueError, match="needs config.tokenizer.path"):
    job.validate(data_config.get_config("real"))
  with pytest.raises(ValueError, match="unknown data preset"):
    data_config.get_config("huge")
  c = _tiny()
  c.lock()  # as the CLI does: a mistyped override fails
  with pytest.raises(AttributeError):
    c.sizes.sftt = 3


def test_real_source_on_fixtures(tmp_path, capsys):
  from source_fixtures import gem_articles_fixture, oasst_fixture, seahorse_fixture
  tok_dir = str(tmp_path / "tok")
  tb_texts = [e.prompt for e in tb.generate_split("en", "summarize", "sft", 20, 0)]
  from xlra.data.tokenizer import train_bpe
  train_bpe(tb_texts + ["Город Казань. Статья о Казани. ¡Hola! Passwörter"] * 5, 512, tok_dir)
  c = data_config.get_config("real")
  c.tokenizer.path = tok_dir
  c.real.seahorse_tsv = str(seahorse_fixture(tmp_path))
  c.real.seahorse_articles = str(gem_articles_fixture(tmp_path))
  c.real.oasst_jsonl = str(oasst_fixture(tmp_path))
  wl = tmp_path / "german_de"
  wl.mkdir()
  (wl / "val.src.de").write_text("Ein Artikel.\n", encoding="utf-8")
  (wl / "val.tgt.de").write_text("Kurz.\n", encoding="utf-8")
  c.real.summarization = f"de={wl}"
  job.run(c, str(tmp_path / "w"))
  out = capsys.readouterr().out
  assert "| pointwise |" in out and "missing_article" in out
  bundle = job.prepare(c, str(tmp_path / "w"))
  assert len(bundle.real["pointwise"]) == 5 and len(bundle.real["pairs"]) == 5 and len(bundle.real["sft"]) == 4
  assert bundle.testbed is None and bundle.tokenizer.pad_token_id != bundle.tokenizer.eos_token_id


def test_gem_split_is_a_field_and_every_corpus_keeps_its_skip_report(tmp_path):
  """Two German corpora (MLSUM JSONL and a WikiLingua directory read at its test split) each keep their
  counts in summary.json (a report per language used to keep only the last corpus's)."""
  from xlra.data.tokenizer import train_bpe
  tok_dir = str(tmp_path / "tok")
  train_bpe(["Ein Artikel über Passwörter. Kurz und gut."] * 20, 300, tok_dir)
  mlsum = tmp_path / "de_train.jsonl"
  mlsum.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in (
      {"text": "Erster Artikel.", "summary": "Eins."}, {"text": "Zweiter.", "summary": ""},
      {"text": "Dritter Artikel.", "summary": "Drei."})) + "\n", encoding="utf-8")
  wl = tmp_path / "german_de"
  wl.mkdir()
  (wl / "test.src.de").write_text("Ein Artikel.\nNoch einer.\n", encoding="utf-8")
  (wl / "test.tgt.de").write_text("Kurz.\n\n", encoding="utf-8")
  c = data_config.get_config("real")
  c.languages = ("de",)
  c.tokenizer.path = tok_dir
  c.real.summarization = f"de={mlsum},de={wl}"
  with pytest.raises(FileNotFoundError, match="config.real.summarization_split='val'"):
    job.prepare(c, str(tmp_path / "w0"))  # the directory has no val split
  c.real.summarization_split = "test"
  bundle = job.prepare(c, str(tmp_path / "w"))
  skips = bundle.summary["skips"]
  assert skips[f"summarization de={mlsum}"]["kept"] == 2 and skips[f"summarization de={mlsum}"]["skipped"] == {
      "missing_summary": 1}
  assert skips[f"summarization de={wl}"]["kept"] == 1 and skips[f"summarization de={wl}"]["skipped"] == {
      "missing_summary": 1}
  assert any(r["id"] == "wiki_lingua_german_de-test-0" for r in bundle.real["sft"])
  c.real.summarization = f"de={mlsum},de={mlsum}"
  with pytest.raises(ValueError, match="twice"):
    job.prepare(c, str(tmp_path / "w2"))
