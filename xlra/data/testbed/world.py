"""The seeded world: events (who did what, for which organisation, where, when, how many) as plain,
JSON-ready values, and how each value is written in a given language.

Values (what examples store):
  person {"lang", "first", "last"}, place {"lang", "idx"}, org {"lang", "idx"}, date [day, month, year],
  qty int (a multiple of ten, so every language's number agreement is regular), kind int (event type).
An event is {"actor", "org", "place", "date", "qty", "kind"}. Indices point into the lexicon of the value's
own language, so a value renders in any language (names keep their spelling; see langs/base.py).
"""

from __future__ import annotations

from xlra.data.testbed import langs
from xlra.data.testbed.langs.base import OPTIONAL_SLOTS, Language, Place, Slots
from xlra.data.testbed.seeding import Stream

YEARS = (2015, 2025)  # [low, high)
QTY = (2, 500)  # qty = 10 * uniform integer in [low, high): 20 .. 4,990


def _pick(rng: Stream, n: int, avoid: set) -> int:
  """Uniform over range(n) minus `avoid` (a few values), by rejection."""
  if len(avoid) >= n:
    raise ValueError(f"cannot pick a value outside {sorted(avoid)} from range({n})")
  while True:
    i = rng.integers(n)
    if i not in avoid:
      return i


def sample_value(rng: Stream, slot: str, lang: str, avoid: list) -> object:
  """A value for `slot` that differs from every value in `avoid` (for people: in both first and last name,
  so no name is a substring of another fact; for dates: in day and year)."""
  lx = langs.get(lang)
  same = [v for v in avoid if not isinstance(v, dict) or v.get("lang") == lang]
  if slot == "actor":
    return {"lang": lang, "first": _pick(rng, len(lx.first_names), {v["first"] for v in same}),
            "last": _pick(rng, len(lx.last_names), {v["last"] for v in same})}
  if slot == "place":
    return {"lang": lang, "idx": _pick(rng, len(lx.cities), {v["idx"] for v in same})}
  if slot == "org":
    return {"lang": lang, "idx": _pick(rng, len(lx.orgs), {v["idx"] for v in same})}
  if slot == "date":
    day = 1 + _pick(rng, 28, {v[0] - 1 for v in avoid})
    year = YEARS[0] + _pick(rng, YEARS[1] - YEARS[0], {v[2] - YEARS[0] for v in avoid})
    return [day, rng.integers(1, 13), year]
  if slot == "qty":
    return 10 * (QTY[0] + _pick(rng, QTY[1] - QTY[0], {v // 10 - QTY[0] for v in avoid}))
  raise ValueError(f"unknown slot {slot!r}")


def sample_event(rng: Stream, lang: str, avoid: list[dict], kind: int | None = None) -> dict:
  """An event whose every value differs from the corresponding value of each event in `avoid`."""
  event = {slot: sample_value(rng, slot, lang, [e[slot] for e in avoid]) for slot in ("actor", "org", "place",
                                                                                        "date", "qty")}
  event["kind"] = rng.integers(len(langs.get(lang).events)) if kind is None else kind
  return event


# -- rendering values in a language -------------------------------------------------------------------

def person(value: dict) -> tuple[str, str]:
  return langs.get(value["lang"]).person(value["first"], value["last"])


def place(value: dict, writer: Language) -> Place:
  nominative, native = langs.get(value["lang"]).cities[value["idx"]]
  return Place(nominative, native if value["lang"] == writer.code else None)


def render(slot: str, value, writer: Language) -> str:
  """The surface string of a value (the place as its nominative)."""
  if slot == "actor":
    return person(value)[0]
  if slot == "org":
    return langs.get(value["lang"]).orgs[value["idx"]]
  if slot == "place":
    return langs.get(value["lang"]).cities[value["idx"]][0]
  if slot == "date":
    return writer.date(*value)
  if slot == "qty":
    return writer.number(value)
  raise ValueError(f"unknown slot {slot!r}")


def forms(slot: str, value, writer: Language) -> list[str]:
  """Every surface form a correct mention may take in `writer`'s text (Russian cities: also the
  prepositional case; Turkish suffixes follow an apostrophe, so the nominative token already matches)."""
  out = [render(slot, value, writer)]
  if slot == "place" and value["lang"] == writer.code:
    native = langs.get(value["lang"]).cities[value["idx"]][1]
    if native != out[0] and "'" not in native:
      out.append(native)
  return out


def slots(event: dict, writer: Language, include=OPTIONAL_SLOTS, overrides: dict | None = None) -> Slots:
  """The `Slots` of `event` as `writer` renders them, keeping only the optional slots in `include`.
  `overrides` replaces values (a swapped or hallucinated fact); an override of None drops the slot."""
  values = {**event, **(overrides or {})}
  name, gender = person(values["actor"])
  kw = {}
  for slot in OPTIONAL_SLOTS:
    value = values.get(slot)
    if slot not in include or value is None:
      continue
    kw[slot] = place(value, writer) if slot == "place" else render(slot, value, writer)
  return Slots(actor=name, gender=gender, kind=values["kind"], **kw)
