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
  """Base class: subclasses fill the lexicon attributes and implement the renderers below."""

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

  def follow(self, slot: str, s: Slots) -> str:
    """An article sentence giving one fact the lead left out."""
    raise NotImplementedError

  def distractor(self, template: int, d: Slots) -> str:
    """A sentence about another, similar event (template 0: date/actor/org/place; 1: actor/place/qty;
    2: actor/org). Its names and numbers must not appear in a good output."""
    raise NotImplementedError

  def instruction(self) -> str:
    raise NotImplementedError

  def request(self, actor: str, ask: list[str], k: int, polite: bool) -> str:
    raise NotImplementedError

  def plans(self, items: list[str]) -> str:
    raise NotImplementedError

  def alt_plans(self, actor: str, items: list[str]) -> str:
    raise NotImplementedError


def opt(prefix: str, value: str | None, suffix: str = "") -> str:
  """`prefix + value + suffix` when the slot is set, else nothing: keeps the templates readable."""
  return f"{prefix}{value}{suffix}" if value is not None else ""
