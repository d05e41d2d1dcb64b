"""Testbed: regeneration, language realism, gold quality q against hand-computed values, corruption
ranking, robustness of q on arbitrary strings, translation."""

from __future__ import annotations

import collections
import math
import json
import os
import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xlra.data import testbed as tb
from xlra.data.testbed import corruptions, langs, tasks
from xlra.data.testbed.quality import content
from xlra.data.testbed.langs.tr import locative
from xlra.data.testbed.seeding import Stream

LANGS = tb.LANGUAGES


def _dump(examples) -> str:
  return json.dumps([e.to_dict() for e in examples], ensure_ascii=False)


# -- regeneration -------------------------------------------------------------------------------------

def test_regeneration_is_byte_identical_and_seed_dependent():
  for lang in LANGS:
    for task in tb.TASKS:
      a = _dump(tb.generate_split(lang, task, "sft", 20, seed=3))
      assert a == _dump(tb.generate_split(lang, task, "sft", 20, seed=3))
      assert a != _dump(tb.generate_split(lang, task, "sft", 20, seed=4))
      # A split of n examples is a prefix of the same split with more.
      assert _dump(tb.generate_split(lang, task, "sft", 5, seed=3)) == _dump(
          tb.generate_split(lang, task, "sft", 20, seed=3)[:5])
  # Splits use different streams.
  assert _dump(tb.generate_split("de", "dialog", "sft", 5, 0)) != _dump(tb.generate_split("de", "dialog", "eval", 5, 0))


def test_regeneration_does_not_depend_on_python_hash_seed():
  """Python's str hash is salted per process; a stream keyed with hash() would differ here."""
  code = ("import json; from xlra.data import testbed as tb; "
          "print(json.dumps([e.to_dict() for e in tb.generate_split('ru', 'dialog', 'rm_train', 8, 1)]"
          " + tb.preference_pairs(tb.generate_split('ru', 'dialog', 'rm_train', 8, 1), tb.Annotator(), 1),"
          " ensure_ascii=False))")
  outs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")]
  assert outs[0] == outs[1] and len(outs[0]) > 1000


def test_eval_prompts_do_not_occur_in_training_splits():
  for lang in ("de", "vi"):
    for task in tb.TASKS:
      train = {e.prompt for split in ("sft", "rm_train", "rl") for e in tb.generate_split(lang, task, split, 200, 0)}
      assert not train & {e.prompt for e in tb.generate_split(lang, task, "eval", 100, 0)}


def test_base_corpus_mix_appends_restatements_and_translations():
  """Default: bare documents. restatements=1: every document ends with its reference (summary, reply).
  parallel=1: every document is followed by its translation, which keeps the names' spelling."""
  plain = tb.base_corpus("en", ("summarize",), 20, 0)
  exs = tb.generate_split("en", "summarize", "base", 20, 0)
  assert plain == [e.prompt.split("\n", 1)[1] for e in exs]
  summed = tb.base_corpus("en", ("summarize",), 20, 0, restatements=1.0)
  assert summed == [p + "\n" + e.reference for p, e in zip(plain, exs)]
  dialogs = tb.generate_split("en", "dialog", "base", 20, 0)
  replied = tb.base_corpus("en", ("dialog",), 20, 0, restatements=1.0)
  assert replied == [e.prompt.rsplit("\n", 1)[0] + "\n" + e.reference for e in dialogs]  # no request line
  both = tb.base_corpus("en", ("summarize", "dialog"), 20, 0, parallel=1.0, languages=("en", "ru"))
  assert len(both) == 40
  for doc, ex in zip(both, exs):
    first, second = doc.split("\n")
    assert first == ex.prompt.split("\n", 1)[1] and re.search("[а-яА-Я]", second), doc
    assert ex.facts["actor"][0] in second  # a name keeps its spelling across the translation
  assert tb.base_corpus("en", ("summarize",), 20, 0, parallel=1.0, languages=("en",)) == plain  # no other language
  # answers=1: the whole prompt (request included) and an answer from the flaw mixture, as on a Q&A page.
  flaws = {"no_end": 1.0}
  answered = tb.base_corpus("en", ("dialog",), 20, 0, answers=1.0, flaws=flaws)
  assert answered == [e.prompt + "\n" + e.reference.rstrip(".") for e in dialogs]


# -- each language is written as that language ---------------------------------------------------------

DATE_RE = {"de": r"\d{1,2}\. (Januar|Februar|März|April|Mai|Juni|Juli|August|September|Oktober|November|Dezember) \d{4}",
           "en": r"\d{1,2} (January|February|March|April|May|June|July|August|September|October|November|December) \d{4}",
           "es": r"\d{1,2} de (enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|octubre|noviembre|diciembre) de \d{4}",
           "ru": r"\d{1,2} (января|февраля|марта|апреля|мая|июня|июля|августа|сентября|октября|ноября|декабря) \d{4} года",
           "tr": r"\d{1,2} (Ocak|Şubat|Mart|Nisan|Mayıs|Haziran|Temmuz|Ağustos|Eylül|Ekim|Kasım|Aralık) \d{4} tarihinde",
           "vi": r"\d{1,2} tháng \d{1,2} năm \d{4}"}
THOUSANDS_RE = {"de": r"\b\d\.\d{3}\b", "en": r"\b\d,\d{3}\b", "es": r"\b\d\.\d{3}\b", "ru": r"\b\d \d{3}\b",
                "tr": r"\b\d\.\d{3}\b", "vi": r"\b\d\.\d{3}\b"}
SCRIPT_CHARS = {"de": "äöüßÄÖÜ", "es": "áéíóúñÁÉÍÓÚÑ¡", "tr": "ıİşŞğĞçÇöÖüÜ", "vi": "ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệ"
                "ỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹàáèéìíòóùúýĐ"}


@pytest.mark.parametrize("lang", LANGS)
def test_language_surface(lang):
  exs = tb.generate_split(lang, "summarize", "eval", 60, 0) + tb.generate_split(lang, "dialog", "eval", 60, 0)
  summaries = [e for e in exs if e.task == "summarize"]
  assert all(re.search(DATE_RE[lang], e.reference) for e in summaries)
  qty = [e for e in summaries if e.world["event"]["qty"] >= 1000]
  assert qty and all(re.search(THOUSANDS_RE[lang], e.reference) for e in qty)
  text = " ".join(e.prompt + " " + e.reference for e in exs)
  if lang == "ru":  # native Russian text is Cyrillic throughout
    assert not re.search(r"[A-Za-z]", text) and len(re.findall(r"[А-Яа-яЁё]", text)) > 0.7 * len(re.findall(r"\w", text))
  elif lang != "en":
    share = sum(any(c in SCRIPT_CHARS[lang] for c in e.prompt) for e in exs) / len(exs)
    assert share > 0.9, f"{lang}: only {share:.0%} of prompts use the language's letters"
  else:
    assert text.isascii()
  # Sentences per article: 3-8 (instruction line excluded).
  for e in summaries:
    n = len(re.findall(r"[.!?](?:\s|$)", e.prompt.split("\n", 1)[1]))
    assert 3 <= n <= 8, e.prompt


def test_russian_verbs_agree_with_the_actor():
  ru = langs.get("ru")
  for e in tb.generate_split("ru", "summarize", "eval", 80, 0):
    first = ru.first_names[e.world["event"]["actor"]["first"]]
    verb = ru.events[e.world["event"]["kind"]].verb[0 if first[1] == "m" else 1]
    assert f" {verb} " in f" {e.reference} " and first[0] in e.reference


def test_turkish_locative_follows_vowel_harmony():
  assert [locative(w) for w in ("İzmir", "Ankara", "Gaziantep", "İstanbul", "Eskişehir", "Leipzig", "Bordeaux")] == [
      "İzmir'de", "Ankara'da", "Gaziantep'te", "İstanbul'da", "Eskişehir'de", "Leipzig'de", "Bordeaux'da"]


# -- the gold quality q --------------------------------------------------------------------------------

def _en_summary() -> tb.Example:
  ex = tb.generate_split("en", "summarize", "eval", 1, 0)[0]
  assert ex.reference.count(" of ") == 1 and ex.constraints["budget"] == len(ex.reference.split()) + 6
  return ex


def test_q_hand_computed_summarization():
  ex = _en_summary()
  org = ex.facts["org"][0]
  assert tb.quality(ex, ex.reference) == 1.0
  assert tb.quality(ex, "") == 0.0
  # One of five facts missing: coverage 4/5, nothing else wrong.
  assert tb.quality(ex, ex.reference.replace(f" of {org}", "")) == pytest.approx(math.exp(-0.7 * 0.2))
  # The actor replaced by a distractor name: coverage 4/5, distractor penalty 0.25.
  spec = {**tb.reference_spec(ex), "overrides": {"actor": ex.world["distractors"][0]["actor"]}}
  swapped = tb.render(ex, spec)
  assert swapped != ex.reference
  assert tb.quality(ex, swapped) == pytest.approx(math.exp(-0.7 * (1 - (0.8 - 0.25))))
  # An extra filler sentence (6 words, inside the 6-word slack): a factor 0.5.
  assert tb.quality(ex, ex.reference + " This is really very interesting news.") == pytest.approx(0.5)
  # A 7-word filler is one word over the budget: another factor 0.95.
  assert tb.quality(ex, ex.reference + " Much more could be said about this.") == pytest.approx(0.5 * 0.95)
  # Missing final full stop: a factor 0.5; the no_end flaw renders exactly that.
  assert tb.quality(ex, ex.reference.rstrip(".")) == pytest.approx(0.5)
  assert tb.render(ex, {**tb.reference_spec(ex), "no_end": True}) == ex.reference.rstrip(".")
  # A German sentence left in (fragment): its German words lower the language share.
  frag = tb.render(ex, {**tb.reference_spec(ex), "fragment": ["de", 0]})
  assert frag == ex.reference + " Die Anwohner begrüßten die Nachricht."
  parts = tb.quality_parts(ex, frag)
  assert 0 < parts["language"] < 1.0 and parts["q"] == pytest.approx(0.1 + 0.9 * parts["language"])
  # The same sentence twice: trigram repetition r = 1 - unique/total, and 2 * n words over budget.
  n = len(ex.reference.split())
  toks = re.findall(r"\d{1,3}(?:,\d{3})+|\d+|[^\W\d_]+", ex.reference.lower())
  tri = list(zip(toks * 2, (toks * 2)[1:], (toks * 2)[2:]))
  rep = 1 - len(set(tri)) / len(tri)
  over = max(0, 2 * n - ex.constraints["budget"])
  assert tb.quality(ex, ex.reference + " " + ex.reference) == pytest.approx((1 - min(0.5, 0.05 * over)) * (1 - rep))
  # Written in German: no English word, language factor 0.1.
  german = tb.render(ex, {**tb.reference_spec(ex), "lang": "de"})
  parts = tb.quality_parts(ex, german)
  assert parts["language"] == 0.0
  assert parts["q"] == pytest.approx(0.1 * content(parts["coverage"] - parts["penalty"]) * parts["form"])


def test_q_hand_computed_dialog():
  ex = next(e for e in tb.generate_split("en", "dialog", "eval", 50, 0) if e.constraints["polite"]
            and e.constraints["k"] >= 2)
  n_facts, k = len(ex.facts), ex.constraints["k"]
  assert tb.quality(ex, ex.reference) == 1.0
  opener = next(p for p in langs.get("en").polite if ex.reference.startswith(p))
  assert tb.quality(ex, ex.reference[len(opener):].strip()) == pytest.approx(0.5)  # asked to be polite
  plans = ex.reference[ex.reference.index("Plans: "):]
  items = plans[len("Plans: "):-1].replace(" and ", ", ").split(", ")
  fewer = ex.reference.replace(plans, "Plans: " + items[0] + ".")
  assert tb.quality(ex, fewer) == pytest.approx(content((n_facts + 1) / (n_facts + k)))


@pytest.mark.parametrize("lang", LANGS)
def test_q_ranks_the_reference_above_every_corruption(lang):
  worse, total = collections.Counter(), collections.Counter()
  for task in tb.TASKS:
    for i, ex in enumerate(tb.generate_split(lang, task, "rm_val", 100, 7)):
      q_ref = tb.quality(ex, ex.reference)
      assert q_ref == 1.0, ex.reference
      for kind in corruptions.kinds_for(ex):
        spec = tb.corrupt(ex, kind, Stream("rank", ex.id, kind))
        if spec is None:
          continue
        total[kind] += 1
        worse[kind] += tb.quality(ex, tb.render(ex, spec)) < q_ref
  print(f"\n{lang}: reference > corruption: " + ", ".join(f"{k} {worse[k]}/{total[k]}" for k in total))
  for kind in corruptions.KINDS + corruptions.DIALOG_KINDS:
    assert total[kind] >= 30, kind
    assert worse[kind] / total[kind] >= 0.99, (kind, worse[kind], total[kind])


@pytest.mark.parametrize("lang", ["de", "tr"])
def test_probe_pairs_hold_one_error_of_the_named_kind(lang):
  """Each probe: a correct answer and the same answer with one error of its kind, checked through q's
  parts (an independent reading of the text), in gold order; per_kind caps each kind; regenerates
  identically."""
  exs = tb.generate_split(lang, "dialog", "rm_val", 40, 3)
  probes = tb.probe_pairs(exs, seed=0, per_kind=25)
  counts = collections.Counter(p["kind"] for p in probes)
  assert set(counts) == set(corruptions.KINDS + corruptions.DIALOG_KINDS), counts
  assert max(counts.values()) == 25 and min(counts.values()) >= 10, counts
  by_id = {ex.id: ex for ex in exs}
  for p in probes:
    ex = by_id[p["example_id"]]
    good, bad = tb.quality_parts(ex, p["chosen"]), tb.quality_parts(ex, p["rejected"])
    assert p["chosen"] != p["rejected"] and p["prompt"] == ex.prompt
    assert bad["q"] == p["q_rejected"] < p["q_chosen"] == good["q"] and good["q"] >= 0.9, p
    assert good["language"] == 1.0 and good["repetition"] == 0.0, p
    if p["kind"] == "wrong_language":
      assert bad["language"] < 0.5, p
    if p["kind"] == "repetition":
      assert bad["repetition"] > 0, p
    if p["kind"] in ("hallucinate", "swap", "drop", "filler", "extra_item"):
      assert bad["language"] == 1.0 and bad["repetition"] == 0.0, p  # the error is elsewhere
    new = set(re.findall(r"\w+", p["rejected"].lower())) - set(re.findall(r"\w+", p["chosen"].lower()))
    if p["kind"] == "hallucinate":  # a value the prompt does not have (a number, a name, a topic)
      assert new and not new <= set(re.findall(r"\w+", ex.prompt.lower())), p
    if p["kind"] == "swap":  # another event's value, which the prompt states too
      assert new and new <= set(re.findall(r"\w+", ex.prompt.lower())), p
      assert bad["penalty"] > good["penalty"], p
  assert tb.probe_pairs(exs, seed=0, per_kind=25) == probes
  assert tb.probe_pairs(exs, seed=1, per_kind=25) != probes


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400))
def test_q_is_total_on_arbitrary_strings(s):
  for ex in _examples_for_fuzz():
    assert 0.0 <= tb.quality(ex, s) <= 1.0


def _examples_for_fuzz():
  if not hasattr(_examples_for_fuzz, "cache"):
    _examples_for_fuzz.cache = [tb.generate_split(lang, task, "eval", 1, 0)[0] for lang in LANGS for task in tb.TASKS]
  return _examples_for_fuzz.cache


def test_q_punishes_degenerate_outputs():
  for ex in _examples_for_fuzz():
    assert tb.quality(ex, ex.prompt) < 0.6  # copying the whole input: distractors, far over budget
    assert tb.quality(ex, ex.reference * 50) < 0.2
    assert tb.quality(ex, "1234 5678 ...") < 0.05  # invented numbers, no words: language factor 0.1
    assert tb.quality(ex, "\x00\ufffd" * 1000) == 0.0


# -- translation ---------------------------------------------------------------------------------------

def test_translation_without_errors_is_a_native_quality_example():
  for task in tb.TASKS:
    src = tb.generate_split("de", task, "sft", 30, 0)
    for to in ("ru", "vi", "en"):
      for ex in src:
        t = tb.translate(ex, to)
        assert t.lang == to and t.id == f"{ex.id}@{to}" and t.world["event"] == ex.world["event"]
        assert tb.quality(t, t.reference) == 1.0
        assert tb.quality_parts(t, t.prompt)["language"] > 0.95  # the prompt is in the target language
        assert tb.quality(ex, t.reference) < 0.2  # and is the wrong language for the source
        assert t == tb.translate(ex, to)  # deterministic
  ex = src[0]
  assert tb.translate(ex, "de") is ex


def test_translation_errors_follow_the_error_rate():
  src = tb.generate_split("es", "summarize", "sft", 150, 0)
  clean = [tb.translate(ex, "tr") for ex in src]
  noisy = [tb.translate(ex, "tr", error_rate=0.3, seed=5) for ex in src]
  changed_ref = sum(c.reference != n.reference for c, n in zip(clean, noisy)) / len(src)
  assert 0.15 < changed_ref < 0.45  # about 30% of references have an error
  assert sum(c.prompt != n.prompt for c, n in zip(clean, noisy)) / len(src) > 0.5  # 3-8 sentences at 30% each
  assert sum(tb.quality(n, n.reference) for n in noisy) < sum(tb.quality(c, c.reference) for c in clean)
  with pytest.raises(ValueError, match="error_rate"):
    tb.translate(src[0], "tr", error_rate=1.5)
  with pytest.raises(ValueError, match="unknown testbed language"):
    tb.translate(src[0], "fr")


def test_translated_candidates_keep_their_corruption():
  for ex in tb.generate_split("en", "dialog", "rm_train", 40, 0):
    for kind in ("drop", "swap", "wrong_language"):
      spec = tb.corrupt(ex, kind, Stream(ex.id, kind))
      if spec is None:
        continue
      target = tb.translate(ex, "es")
      text = tb.translate_candidate(ex, spec, "es", target_ex=target)
      assert tb.quality(target, text) < tb.quality(target, target.reference)


def test_translate_pairs_keeps_the_annotators_choice():
  exs = tb.generate_split("de", "summarize", "rm_train", 60, 0)
  pairs = tb.preference_pairs(exs, tb.Annotator(), 0)
  index = {e.id: e for e in exs}
  clean = tb.translate_pairs(pairs, index, "vi")
  same = []
  for p, t in zip(pairs, clean):
    assert t["lang"] == "vi" and t["source_lang"] == "de" and t["id"] == p["id"] + "@vi"
    assert t["prompt"] == tb.translate(index[p["example_id"]], "vi").prompt
    if p["q_chosen"] != p["q_rejected"]:
      same.append((t["q_chosen"] > t["q_rejected"]) == (p["q_chosen"] > p["q_rejected"]))
  # Without errors the gold order mostly survives (lengths, and so length penalties, change with the language).
  assert sum(same) / len(same) > 0.9, sum(same) / len(same)
  noisy = tb.translate_pairs(pairs, index, "vi", error_rate=0.5, seed=2)
  assert sum(a["chosen"] != b["chosen"] for a, b in zip(clean, noisy)) > 10


def test_q_keeps_ranking_below_zero_content():
  # 1 for a faithful answer, positive and increasing below: a sample with more errors still loses.
  assert content(1.3) == content(1.0) == 1.0 and content(0.0) == pytest.approx(math.exp(-0.7))
  assert 0 < content(-3.0) < content(-1.0) < content(-0.2) < content(0.0) < content(0.5) < 1.0
  ex = tb.generate_split("en", "dialog", "eval", 1, 0)[0]
  name = ex.world["distractors"][0]["actor"]
  one_wrong = tb.quality(ex, f"{name} did it. Plans: nothing.")
  two_wrong = tb.quality(ex, f"{name} did it 9999 times. Plans: nothing.")
  assert 0 < two_wrong < one_wrong
