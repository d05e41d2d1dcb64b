"""The interface every testbed language implements, plus the text folding that q and the lexicons share.

A language is a lexicon (names, places, organisations, months, topics, stock phrases) and a handful of
sentence renderers. Renderers take structured slots, so one world event can be written in any language
(that is how translation and the wrong-language corruption work) and any slot can be left out (that is how
the "drop a fact" corruption and the dialog answers that mention only the requested facts are written).

Entities keep the spelling of the language they come from: a German person in a Russian sentence is still
"Anna Weber" (translationese, as machine translation leaves Latin-script names), and the renderer only
adds the grammatical frame around it (a preposition, a Turkish case suffix).
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata

SLOTS = ("actor", "org", "place", "date", "qty")
OPTIONAL_SLOTS = ("org", "place", "date", "qty")  # the actor is the subject of every sentence

# One token: a grouped number ("1.200", "1,200", "1 200"), a plain number, or a run of letters.
TOKEN_RE = re.compile(r"\d{1,3}(?:[.,\u00a0 ]\d{3})+(?!\d)|\d+|[^\W\d_]+")


def fold(text: str) -> str:
  """Case-folds for matching: NFC (so a model's bytes compare equal to the lexicon) and Turkish dotted I."""
  return unicodedata.normalize("NFC", text).replace("İ", "i").replace("I", "i").lower()


def tokens(text: str) -> list[str]:
  return TOKEN_RE.findall(fold(text))


def joined(text: str) -> str:
  """Space-delimited token string: `f" {joined(fact)} " in joined(output)` is a whole-word match."""
  return " " + " ".join(tokens(text)) + " "


@dataclasses.dataclass(frozen=True)
class Place:
  """A city as a renderer needs it: its nominative, and the stored form after "in" when the city belongs
  to the writing language (Russian "Казани", Turkish "İzmir'de"); None for a foreign city."""
  nominative: str
  native: str | None


@dataclasses.dataclass(frozen=True)
class Slots:
  """What one event sentence says, already rendered except for the place (see `Place`).
  A slot set to None is left out of the sentence."""
  actor: str
  gender: str  # 'm' | 'f', of the actor (Russian verbs agree with it)
  kind: int  # event type index, aligned across languages
  org: str | None = None
  place: Place | None = None
  date: str | None = None
  qty: str | None = None


@dataclasses.dataclass(frozen=True)
class Event:
  """One event type in one language: the past-tense verb (Russian: masculine, feminine), the noun with a
  `{n}` placeholder for the number, and the noun phrase used without a number."""
  verb: str | tuple[str, str]
  counted: str
  bare: str


class Language:
  """Base class: subclasses fill the lexicon and templates and implement date, loc and lead."""

  code: str
  english_name: str
  first_names: tuple[tuple[str, str], ...]  # (name, gender)
  last_names: tuple[tuple[str, str], ...]  # (masculine, feminine); identical where the language does not inflect
  cities: tuple[tuple[str, str], ...]  # (nominative, form after this language's "in")
  orgs: tuple[str, ...]
  months: tuple[str, ...]
  events: tuple[Event, ...]
  topics: tuple[str, ...]  # 12 topics, aligned across languages
  count_words: tuple[str, str, str]  # one, two, three (as used in the dialog request)
  slot_names: dict[str, str]  # place/date/qty/org as the dialog request names them
  polite: tuple[str, ...]
  filler: tuple[str, ...]
  background: tuple[str, ...]
  and_word: str

  # -- entities -------------------------------------------------------------------------------------
  def person(self, first: int, last: int) -> tuple[str, str]:
    name, gender = self.first_names[first]
    surname = self.last_names[last][0 if gender == "m" else 1]
    return f"{name} {surname}", gender

  def number(self, n: int) -> str:
    """Thousands grouped with '.', the default for de, es, tr, vi."""
    return f"{n:,}".replace(",", ".")

  def date(self, day: int, month: int, year: int) -> str:
    raise NotImplementedError

  def loc(self, place: Place) -> str:
    """The phrase "in <place>"."""
    raise NotImplementedError

  def verb(self, kind: int, gender: str) -> str:
    v = self.events[kind].verb
    return v if isinstance(v, str) else v[0 if gender == "m" else 1]

  def noun(self, kind: int, qty: str | None) -> str:
    e = self.events[kind]
    return e.counted.format(n=qty) if qty is not None else e.bare

  def join(self, items: list[str]) -> str:
    if len(items) == 1:
      return items[0]
    return ", ".join(items[:-1]) + f" {self.and_word} " + items[-1]

  # -- sentences ------------------------------------------------------------------------------------
  def lead(self, s: Slots, variant: int) -> str:
    """One sentence stating the event with whatever slots are set. Variant 1 fronts the date."""
    raise NotImplementedError

  # Fixed-shape sentences are str.format templates with the fields of `_fields`: {actor} {org}
  # {loc} ("in <place>") {date} {noun} (the noun phrase, with the number when there is one) {g} (the
  # Russian feminine past-tense ending, "" or "а"); requests also have {a} {A} {b} (the two requested
  # facts, {A} capitalised) and {k}; plan lists {items}.
  follow_templates: dict[str, str]  # org / date / place / qty: an article sentence for a fact the lead left out
  distractor_templates: tuple[str, str, str]  # another, similar event: 0 date/actor/org/place, 1 actor/place/qty,
                                              # 2 actor/org; its names and numbers must not reach a good output
  instruction_text: str  # the summarization instruction
  request_template: str  # the dialog request
  polite_request: str  # appended to the request when politeness is asked for
  plans_template: str
  alt_plans_template: str  # another person's topics (distractors)

  def _fields(self, s: Slots) -> dict:
    return {"actor": s.actor, "org": s.org, "loc": self.loc(s.place) if s.place else None, "date": s.date,
            "noun": self.noun(s.kind, s.qty), "g": "" if s.gender == "m" else "а"}

  def follow(self, slot: str, s: Slots) -> str:
    return self.follow_templates[slot].format(**self._fields(s))

  def distractor(self, template: int, d: Slots) -> str:
    return self.distractor_templates[template].format(**self._fields(d))

  def instruction(self) -> str:
    return self.instruction_text

  def request(self, actor: str, ask: list[str], k: int, polite: bool) -> str:
    a, b = (self.slot_names[x] for x in ask)
    text = self.request_template.format(actor=actor, a=a, A=a[:1].upper() + a[1:], b=b, k=self.count_words[k - 1])
    return text + (" " + self.polite_request if polite else "")

  def plans(self, items: list[str]) -> str:
    return self.plans_template.format(items=self.join(items))

  def alt_plans(self, actor: str, items: list[str]) -> str:
    return self.alt_plans_template.format(actor=actor, items=self.join(items))


def opt(prefix: str, value: str | None, suffix: str = "") -> str:
  """`prefix + value + suffix` when the slot is set, else nothing: keeps the templates readable."""
  return f"{prefix}{value}{suffix}" if value is not None else ""
