"""Deterministic "machine translation" of testbed examples and responses, with an error rate, for the
translate-train and no-target-SFT baselines.

Translation re-writes the example's world in the target language: the same sentence plan, the same
facts, names kept in their original spelling (as MT keeps Latin-script names; a German actor stays
"Anna Weber" in Russian text), dates and numbers in the target language's format. Each sentence of the
prompt, and the response, suffers an error with probability `error_rate`, one of:
  untranslated   the sentence stays in the source language (code-switching),
  omission       a fact is left out of the sentence (or the whole sentence is lost).
The translated example keeps the source's key facts (written in the target language), so q measures
how much the errors cost.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Mapping

from xlra.data.testbed import langs
from xlra.data.testbed.langs.base import OPTIONAL_SLOTS, Language
from xlra.data.testbed.seeding import Stream
from xlra.data.testbed.tasks import Example, write_sentence, make_example, reference_spec, render


def _check(ex: Example, to_lang: str, error_rate: float) -> None:
  langs.get(to_lang)
  if not 0.0 <= error_rate <= 1.0:
    raise ValueError(f"error_rate must be in [0, 1], got {error_rate}")


def translate(ex: Example, to_lang: str, error_rate: float = 0.0, seed: int = 0) -> Example:
  """`ex` written in `to_lang`; same id with "@to_lang" appended. Identity when to_lang == ex.lang."""
  _check(ex, to_lang, error_rate)
  if to_lang == ex.lang:
    return ex
  rng = Stream(seed, "translate", ex.id, to_lang)
  source = langs.get(ex.lang)

  def hook(i: int, plan: list, writer: Language) -> str | None:
    if rng.random() >= error_rate:
      return None
    if rng.random() < 0.5:
      return write_sentence(source, ex.world, plan)
    if plan[0] == "lead" and plan[1]:
      lead = [s for s in plan[1] if s != rng.choice(plan[1])]
      return write_sentence(writer, ex.world, ["lead", lead, plan[2]])
    return ""  # the sentence is lost

  w = copy.deepcopy(ex.world)
  out = make_example(ex.task, w, to_lang, f"{ex.id}@{to_lang}", sentence_hook=hook)
  out = dataclasses.replace(out, prompt=_squeeze(out.prompt))
  reference = translate_response(ex, out, None, rng, error_rate)
  return dataclasses.replace(out, reference=reference)


def translate_response(source_ex: Example, target_ex: Example, spec: dict | None, rng: Stream,
                       error_rate: float) -> str:
  """A response spec (None: the reference) of `source_ex` written for `target_ex` (its translation),
  with a translation error with probability `error_rate`. A wrong-language response stays wrong: if it
  was written in the target language, it is written in the source language instead."""
  spec = copy.deepcopy(spec or reference_spec(source_ex))
  if spec["lang"] == target_ex.lang:
    spec["lang"] = source_ex.lang
  if rng.random() < error_rate:
    if rng.random() < 0.5:
      spec["lang"] = spec["lang"] or source_ex.lang
    else:
      stated = [s for s in spec["include"] if s in OPTIONAL_SLOTS]
      if stated:
        spec["include"].remove(rng.choice(stated))
  return render(target_ex, spec)


def translate_candidate(source_ex: Example, spec: dict, to_lang: str, error_rate: float = 0.0, seed: int = 0,
                        target_ex: Example | None = None) -> str:
  """A candidate response (its spec) of `source_ex`, translated to `to_lang`: translate-train of
  preference data keeps each pair's label and translates both sides."""
  _check(source_ex, to_lang, error_rate)
  target_ex = target_ex or translate(source_ex, to_lang, error_rate, seed)
  return translate_response(source_ex, target_ex, spec, Stream(seed, "translate-response", source_ex.id, to_lang,
                                                               repr(sorted(spec.items()))), error_rate)


def _squeeze(text: str) -> str:
  """Removes the double spaces a lost sentence leaves."""
  return "\n".join(" ".join(line.split()) for line in text.split("\n"))


def translate_pairs(pairs: list[dict], examples: Mapping[str, Example], to_lang: str, error_rate: float = 0.0,
                    seed: int = 0) -> list[dict]:
  """Translate-train of preference data: each pair's prompt and both responses written in `to_lang`
  (with errors), the source annotator's choice kept. `examples` maps example ids to examples
  (`Testbed.index()`). q_chosen / q_rejected are recomputed on the translated texts, so they show how
  often translation flipped the gold order."""
  from xlra.data.testbed.quality import quality
  out, cache = [], {}
  for p in pairs:
    ex = examples[p["example_id"]]
    if ex.id not in cache:
      cache[ex.id] = translate(ex, to_lang, error_rate, seed)
    target = cache[ex.id]
    chosen = translate_candidate(ex, p["chosen_spec"], to_lang, error_rate, seed, target)
    rejected = translate_candidate(ex, p["rejected_spec"], to_lang, error_rate, seed, target)
    out.append({**p, "id": f"{p['id']}@{to_lang}", "example_id": target.id, "lang": to_lang, "prompt": target.prompt,
                "chosen": chosen, "rejected": rejected, "q_chosen": quality(target, chosen),
                "q_rejected": quality(target, rejected), "source_lang": ex.lang})
  return out
