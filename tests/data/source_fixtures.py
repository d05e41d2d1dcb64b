"""Small files in the real datasets' schemas (Seahorse TSV, GEM article layouts, OASST trees), written
by the tests so they pass without ../shared/data."""

from __future__ import annotations

import json
from pathlib import Path

HEADER = "gem_id\tworker_lang\tsummary\tmodel\tquestion1\tquestion2\tquestion3\tquestion4\tquestion5\tquestion6\n"
# "Город Казань" written the way Seahorse stores non-ASCII text.
KAZAN = r"\u0413\u043e\u0440\u043e\u0434 \u041a\u0430\u0437\u0430\u043d\u044c"


def seahorse_fixture(tmp_path: Path) -> Path:
  rows = [
      f"wiki_lingua_russian_ru-val-0\tru\t{KAZAN}\tmt5_xxl\tYes\tYes\tYes\tYes\tYes\tYes",
      'mlsum_de-validation-1\tde\t"Ein \\""Zitat\\"" und Passw\\u00f6rter"\tt5_base\tYes\tYes\tYes\tNo\tNo\tNo',
      "xsum-validation-0\ten-US\tA man was fined.\treference\tYes\tYes\tYes\tYes\tYes\tYes",
      "mlsum_de-validation-1\tde\tZweite Zusammenfassung\tmt5_small\tYes\tNo\tNo\tNo\tNo\tNo",
      "xlsum_spanish-validation-7\tes-ES\tUn resumen.\tmt5_small\tYes\tYes\tYes\tYes\tYes\tYes",
      "wiki_lingua_english_en-val-9\ten-US\tGarbled\tmt5_small\tNo\t\t\t\t\t",  # q1 No: the rest is empty
      "wiki_lingua_english_en-val-9\ten-US\tMaybe ok\tt5_xxl\tYes\tYes\tYes\tUnsure\tYes\tUnsure",
      "wiki_lingua_english_en-val-9\ten-US\tOdd label\tt5_xxl\tYes\tYes\tYes\tYes\tYes\tMaybe",
      "xsum-validation-0\tfr-FR\tUn homme.\tt5_xxl\tYes\tYes\tYes\tYes\tYes\tYes",  # unknown language
      "\ten-US\tNo id\tt5_xxl\tYes\tYes\tYes\tYes\tYes\tYes",
      "xsum-validation-0\ten-US\t\tt5_xxl\tYes\tYes\tYes\tYes\tYes\tNo",  # empty summary
      "xsum-validation-0\ten-US\ttoo few fields",
      "xsum-validation-5\ten-US\tNo article for this one.\tt5_xxl\tYes\tYes\tYes\tYes\tYes\tNo",
  ]
  path = tmp_path / "validation.tsv"
  path.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
  return path


def gem_articles_fixture(tmp_path: Path) -> Path:
  root = tmp_path / "gem"
  (root / "gem_wiki_lingua" / "russian_ru").mkdir(parents=True)
  (root / "gem_wiki_lingua" / "russian_ru" / "val.src.ru").write_text("Статья о Казани.\nВторая.\n", encoding="utf-8")
  (root / "gem_wiki_lingua" / "russian_ru" / "val.tgt.ru").write_text("Казань.\nВторая.\n", encoding="utf-8")
  (root / "gem_wiki_lingua" / "russian_ru" / "val.src.en").write_text("An article.\nSecond.\n", encoding="utf-8")
  (root / "gem_wiki_lingua" / "russian_ru" / "val.tgt.en").write_text("Kazan.\nSecond.\n", encoding="utf-8")
  (root / "mlsum").mkdir()
  (root / "mlsum" / "de_val.jsonl").write_text("\n".join(json.dumps(
      {"text": t, "summary": "s", "url": "u", "title": "t", "topic": "x", "date": "d"}, ensure_ascii=False)
      for t in ("Erster Artikel.", "Der Artikel über Passwörter.")) + "\n", encoding="utf-8")
  (root / "xsum").mkdir()
  (root / "xsum" / "gem_xsum_confidence_0.8.json").write_text(json.dumps({"validation": ["123", "456"]}))
  (root / "xsum" / "123.summary").write_text(
      "[SN]URL[SN]\nhttp://x\n\n[SN]TITLE[SN]\nT\n\n[SN]FIRST-SENTENCE[SN]\nA man was fined.\n\n"
      "[SN]RESTBODY[SN]\nThe court fined a man.\nHe paid.\n", encoding="utf-8")
  (root / "xlsum.jsonl").write_text(json.dumps({"gem_id": "xlsum_spanish-validation-7", "text": "Un artículo."},
                                               ensure_ascii=False) + "\n", encoding="utf-8")
  return root


def _msg(mid, role, text, lang="en", rank=None, replies=(), deleted=False, review=True):
  return {"message_id": mid, "role": role, "text": text, "lang": lang, "rank": rank, "deleted": deleted,
          "review_result": review, "replies": list(replies)}


def oasst_fixture(tmp_path: Path) -> Path:
  follow_up = _msg("p2", "prompter", "And in Berlin?", replies=[
      _msg("a5", "assistant", "Cloudy.", rank=1), _msg("a6", "assistant", "Cloudy, 12 degrees.", rank=0)])
  tree1 = {"message_tree_id": "t1", "tree_state": "ready_for_export", "prompt": _msg("p1", "prompter", "Weather?", replies=[
      _msg("a1", "assistant", "Sunny.", rank=0, replies=[follow_up]),
      _msg("a2", "assistant", "Rain.", rank=1),
      _msg("a3", "assistant", "Snow.", rank=2),
      _msg("a4", "assistant", "Deleted.", rank=3, deleted=True),
      _msg("a7", "assistant", "Rejected.", rank=None, review=False),
      _msg("a8", "assistant", "Unranked.", rank=None)])}
  tree2 = {"message_tree_id": "t2", "tree_state": "ready_for_export", "prompt": _msg("q1", "prompter", "Hola?", "es", replies=[
      _msg("b1", "assistant", "¡Hola!", "es", rank=1), _msg("b2", "assistant", "Buenas.", "es", rank=0)])}
  tree3 = {"message_tree_id": "t3", "tree_state": "growing", "prompt": _msg("r1", "prompter", "x", replies=[])}
  tree4 = {"message_tree_id": "t4", "tree_state": "ready_for_export",
           "prompt": _msg("s1", "prompter", "Spam", review=False)}
  path = tmp_path / "trees.jsonl"
  path.write_text("\n".join(json.dumps(t, ensure_ascii=False) for t in (tree1, tree2, tree3, tree4)) + "\nnot json\n",
                  encoding="utf-8")
  return path
