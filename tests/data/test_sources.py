"""Real-data loaders on fixtures written here in the real schemas (bad rows counted by reason), and on
the real samples in ../shared/data when present (those tests skip without it)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from source_fixtures import gem_articles_fixture, oasst_fixture, seahorse_fixture
from xlra.data import sources
from xlra.data.skips import EmptySplitError

SHARED = Path(__file__).parents[2].parent / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"real data samples not found at {SHARED}")

def test_seahorse_counts_every_skip_reason(tmp_path):
  ratings, skips = sources.read_ratings(str(seahorse_fixture(tmp_path)))
  assert skips.counts == {"empty_label_question1_no": 1, "unsure_label": 1, "unknown_label": 1,
                          "unknown_language": 1, "missing_gem_id": 1, "empty_summary": 1, "wrong_field_count": 1}
  assert skips.kept == len(ratings) == 6
  assert ratings[0]["summary"] == "Город Казань" and ratings[0]["lang"] == "ru" and ratings[0]["label"] is True
  assert ratings[1]["summary"] == 'Ein "Zitat" und Passwörter' and ratings[1]["label"] is False
  assert {r["lang"] for r in ratings} == {"ru", "de", "en", "es"}
  ratings_de, skips_de = sources.read_ratings(str(seahorse_fixture(tmp_path)), languages=["de"])
  assert len(ratings_de) == 2 and skips_de.counts["language_filtered"] == 8  # checked before the labels
  assert "unsure_label 1" in skips.report()
  q4, _ = sources.read_ratings(str(seahorse_fixture(tmp_path)), question="question4")
  assert [r["label"] for r in q4][:2] == [True, False]


def test_seahorse_joins_articles_by_gem_id(tmp_path):
  articles = sources.articles_from_dir(str(gem_articles_fixture(tmp_path)))
  assert articles["wiki_lingua_russian_ru-val-0"] == "Статья о Казани."
  assert articles["mlsum_de-validation-1"] == "Der Artikel über Passwörter."
  assert articles["xsum-validation-0"] == "The court fined a man.\nHe paid."
  assert "xsum-validation-1" not in articles  # 456.summary is missing
  assert articles["xlsum_spanish-validation-7"] == "Un artículo."
  records, skips = sources.load_seahorse(str(seahorse_fixture(tmp_path)), articles)
  assert len(records) == 5 and skips.counts["missing_article"] == 1 and skips.kept == 5
  ru = records[0]
  assert ru["prompt"] == "Summarize the following text in Russian:\nСтатья о Казани." and ru["output"] == "Город Казань"
  assert set(ru) >= {"id", "lang", "prompt", "output", "label"}
  pairs = sources.pointwise_to_pairs(records)
  assert len(pairs) == 0  # the two de summaries of mlsum_de-validation-1 are both "No"
  records[3]["label"] = True
  pairs = sources.pointwise_to_pairs(records)
  assert [(p["chosen"], p["rejected"]) for p in pairs] == [("Zweite Zusammenfassung", 'Ein "Zitat" und Passwörter')]
  with pytest.raises(EmptySplitError, match="missing_article 6"):
    sources.load_seahorse(str(seahorse_fixture(tmp_path)), {})
  bad = tmp_path / "bad.tsv"
  bad.write_text("id\tsummary\n1\tx\n")
  with pytest.raises(ValueError, match="is not the Seahorse header"):
    sources.read_ratings(str(bad))


def test_decode_escapes():
  # One level of JSON escaping comes off: \\/ (an escaped backslash, then /) becomes \/.
  assert sources.decode_escapes(r"Passw\u00f6rter \ud83d\ude00 \"q\" a\\/b") == r'Passwörter 😀 "q" a\/b'
  assert sources.decode_escapes(r'bare " quote \u00e9') == 'bare " quote é'  # not a JSON body: \u only
  assert sources.decode_escapes("plain") == "plain"


def test_oasst_pairs_sft_and_skips(tmp_path):
  pairs, sft, skips = sources.load_oasst(str(oasst_fixture(tmp_path)))
  got = sorted((p["lang"], p["chosen"], p["rejected"]) for p in pairs)
  assert got == sorted([("en", "Sunny.", "Rain."), ("en", "Sunny.", "Snow."), ("en", "Rain.", "Snow."),
                        ("en", "Cloudy, 12 degrees.", "Cloudy."), ("es", "Buenas.", "¡Hola!")])
  nested = next(p for p in pairs if p["chosen"].startswith("Cloudy"))
  assert nested["messages"] == [{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": "Sunny."},
                                {"role": "user", "content": "And in Berlin?"}]
  assert nested["prompt"] == "And in Berlin?"
  assert sorted(s["response"] for s in sft) == ["Buenas.", "Cloudy, 12 degrees.", "Sunny."]
  assert skips.counts == {"deleted": 1, "review_rejected": 1, "unranked_reply": 1, "tree_not_ready": 1,
                          "prompt_review_rejected": 1, "not_a_tree": 1}
  best, _, _ = sources.load_oasst(str(oasst_fixture(tmp_path)), pairs="best_vs_rest", languages=["en"])
  assert sorted((p["chosen"], p["rejected"]) for p in best) == [
      ("Cloudy, 12 degrees.", "Cloudy."), ("Sunny.", "Rain."), ("Sunny.", "Snow.")]
  adjacent, _, _ = sources.load_oasst(str(oasst_fixture(tmp_path)), pairs="adjacent", languages=["en"])
  assert ("Sunny.", "Snow.") not in [(p["chosen"], p["rejected"]) for p in adjacent] and len(adjacent) == 3
  with pytest.raises(EmptySplitError, match="language_filtered"):
    sources.load_oasst(str(oasst_fixture(tmp_path)), languages=["vi"])


def test_summarization_formats_and_bad_rows(tmp_path):
  rows = [{"id": "a", "text": "Ein langer Artikel " * 5, "summary": "Kurz."}, {"text": "Nur Text."},
          {"document": "GEM style.", "target": "Ziel."}, {"text": "", "summary": "x"},
          {"text": "T", "summary": "zu lang " * 20}]
  path = tmp_path / "mlsum_de.jsonl"
  path.write_text("\n".join(json.dumps(r) for r in rows) + "\n[1, 2]\n", encoding="utf-8")
  recs, skips = sources.load_summarization(str(path), "de", max_input_tokens=6, max_output_tokens=10)
  assert [r["response"] for r in recs] == ["Kurz.", "Ziel."]
  assert recs[0]["prompt"] == "Summarize the following text in German:\nEin langer Artikel Ein langer Artikel"
  assert skips.counts == {"missing_summary": 1, "missing_article": 1, "output_too_long": 1, "not_a_json_object": 1}
  assert skips.notes == {"truncated_input": 1}
  wl = tmp_path / "turkish_tr"
  wl.mkdir()
  (wl / "val.src.tr").write_text("Makale bir.\nMakale iki.\n", encoding="utf-8")
  (wl / "val.tgt.tr").write_text("Özet bir.\nÖzet iki.\n", encoding="utf-8")
  recs, _ = sources.load_summarization(str(wl), "tr")
  assert [r["id"] for r in recs] == ["wiki_lingua_turkish_tr-val-0", "wiki_lingua_turkish_tr-val-1"]
  assert recs[1]["prompt"].endswith("Makale iki.") and recs[1]["lang"] == "tr"
  (wl / "val.tgt.tr").write_text("Özet bir.\n", encoding="utf-8")
  with pytest.raises(ValueError, match="line-aligned"):
    sources.load_summarization(str(wl), "tr")
  with pytest.raises(ValueError, match="unknown language code"):
    sources.load_summarization(str(path), "xx")
  with pytest.raises(EmptySplitError, match="missing_summary"):
    sources.load_summarization([{"text": "only"}], "en")
  # Rows from any iterable of dicts (a datasets.Dataset behaves the same).
  recs, _ = sources.load_summarization([{"document": "Doc.", "summary": "Sum."}], "en", name="xsum")
  assert recs[0] == {"id": "xsum-1", "lang": "en", "prompt": "Summarize the following text in English:\nDoc.",
                     "response": "Sum.", "source": "xsum"}


def test_summarization_truncates_by_tokenizer_tokens(tmp_path):
  from xlra.data.tokenizer import train_bpe
  tok = train_bpe(["alpha beta gamma delta"] * 20, 512)
  recs, skips = sources.load_summarization([{"text": "alpha beta gamma delta " * 50, "summary": "alpha"}], "en",
                                           tokenizer=tok, max_input_tokens=10)
  article = recs[0]["prompt"].split("\n", 1)[1]
  assert len(tok.encode(article, add_special_tokens=False)) <= 10 and skips.notes["truncated_input"] == 1


@needs_shared
def test_real_seahorse_sample():
  path = SHARED / "seahorse" / "validation_sample.tsv"
  ratings, skips = sources.read_ratings(str(path))
  n_rows = sum(1 for _ in open(path, encoding="utf-8")) - 1
  assert skips.kept + skips.skipped == n_rows == 322
  assert skips.counts["unsure_label"] == 6 and skips.counts["empty_label_question1_no"] == 28
  assert {r["lang"] for r in ratings} == {"de", "en", "es", "ru", "tr", "vi"}
  text = " ".join(r["summary"] for r in ratings)
  assert "\\u" not in text
  assert all(re.search(r"[А-Яа-я]", r["summary"]) for r in ratings if r["lang"] == "ru")
  assert any(c in text for c in "ğışİ") and any(c in text for c in "ạếữđ")
  # Only the WikiLingua lines 0-1 are in the sample, so the join finds few or no articles.
  articles = sources.articles_from_dir(str(SHARED))
  assert "wiki_lingua_german_de-val-0" in articles and "mlsum_de-validation-0" in articles


@needs_shared
def test_real_oasst_sample():
  path = SHARED / "oasst" / "oasst2_trees_multilingual_sample.jsonl"
  pairs, sft, skips = sources.load_oasst(str(path))
  assert {p["lang"] for p in pairs} == {"ru", "es", "en", "de"}  # no ready vi tree in the sample
  assert skips.counts["tree_not_ready"] == 8 and skips.counts["deleted"] >= 1
  # Independently: ranked, usable sibling replies per prompter message in ready trees, all pairs.
  expected = 0

  def count(node):
    nonlocal expected
    ok = [r for r in node.get("replies") or [] if not r["deleted"] and r["review_result"] and r["text"].strip()
          and len(r["text"].split()) <= 512]
    n = sum(r["rank"] is not None for r in ok)
    expected += n * (n - 1) // 2
    for r in ok:
      for f in r.get("replies") or []:
        if not f["deleted"] and f["review_result"]:
          count(f)
  for line in open(path, encoding="utf-8"):
    tree = json.loads(line)
    if tree["tree_state"] == "ready_for_export" and tree["prompt"]["review_result"]:
      count(tree["prompt"])
  assert len(pairs) == expected and all(p["chosen"] != p["rejected"] for p in pairs)
  assert len(sft) >= 18 and all(s["response"] for s in sft)


@needs_shared
@pytest.mark.parametrize("name,lang", [("mlsum/de_val.jsonl", "de"), ("mlsum/tu_val.jsonl", "tu"),
                                       ("gem_wiki_lingua/vietnamese_vi", "vi"), ("xsum", "en"),
                                       ("xlsum/english_readme_example.jsonl", "en")])
def test_real_summarization_samples(name, lang):
  recs, skips = sources.load_summarization(str(SHARED / name), lang)
  assert recs and skips.skipped == 0
  assert all(r["prompt"].startswith("Summarize the following text in ") and r["response"] for r in recs)
  assert os.path.basename(name) in skips.what or name in skips.what


def test_loaders_take_hugging_face_datasets(tmp_path):
  """`load_hub` (datasets.load_dataset) on local files; the rows feed the loaders unchanged."""
  path = tmp_path / "xlsum.jsonl"
  rows = [{"gem_id": f"xlsum_spanish-validation-{i}", "text": f"Artículo {i}.", "target": f"Resumen {i}."}
          for i in range(3)]
  path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
  ds = sources.load_hub("json", data_files=str(path), split="train")
  recs, skips = sources.load_summarization(ds, "es", name="GEM/xlsum")
  assert [r["id"] for r in recs] == [r["gem_id"] for r in rows] and recs[2]["response"] == "Resumen 2."
  assert sources.articles_from_rows(ds)["xlsum_spanish-validation-1"] == "Artículo 1."
