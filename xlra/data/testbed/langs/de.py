"""German: verb-second order (a fronted date inverts subject and verb), dates as "12. März 2021",
thousands grouped with a dot."""

from __future__ import annotations

from xlra.data.testbed.langs.base import Event, Language, Place, Slots, opt


class German(Language):
  code = "de"
  english_name = "German"
  first_names = (("Anna", "f"), ("Julia", "f"), ("Lena", "f"), ("Sarah", "f"), ("Katrin", "f"), ("Sabine", "f"),
                 ("Petra", "f"), ("Monika", "f"), ("Michael", "m"), ("Stefan", "m"), ("Andreas", "m"), ("Jan", "m"),
                 ("Lukas", "m"), ("Tobias", "m"), ("Markus", "m"), ("Jürgen", "m"))
  last_names = tuple((n, n) for n in (
      "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann",
      "Koch", "Richter"))
  cities = tuple((c, c) for c in (
      "Berlin", "Hamburg", "München", "Köln", "Leipzig", "Dresden", "Bremen", "Hannover", "Nürnberg", "Stuttgart",
      "Kiel", "Bonn"))
  orgs = ("Nordwerk", "Rheinbau", "Lindmann", "Bergstahl", "Elbtec", "Sonnhaus", "Grünfeld", "Ostwind")
  months = ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober",
            "November", "Dezember")
  events = (Event("pflanzte", "{n} Bäume", "Bäume"), Event("spendete", "{n} Bücher", "Bücher"),
            Event("baute", "{n} Wohnungen", "Wohnungen"), Event("schuf", "{n} Arbeitsplätze", "Arbeitsplätze"),
            Event("verteilte", "{n} Mahlzeiten", "Mahlzeiten"),
            Event("verkaufte", "{n} Eintrittskarten", "Eintrittskarten"))
  topics = ("Schulen", "Parks", "Straßen", "Bibliotheken", "Krankenhäuser", "Brücken", "Sport", "Kultur",
            "Energie", "Wasser", "Verkehr", "Kindergärten")
  count_words = ("einen", "zwei", "drei")
  slot_names = {"place": "den Ort", "date": "das Datum", "qty": "die Anzahl", "org": "die Organisation"}
  polite = ("Gerne!", "Sehr gerne!", "Aber gerne!")
  filler = ("Das ist wirklich eine sehr interessante Nachricht.", "Dazu könnte man noch viel mehr sagen.",
            "Alles in allem ist das ein wichtiges Thema.")
  background = ("Die Anwohner begrüßten die Nachricht.", "Die Planung dauerte zwei Jahre.",
                "Weitere Schritte sind geplant.", "Der Stadtrat unterstützte die Idee.",
                "Das Wetter war an diesem Tag gut.", "Viele Freiwillige halfen mit.")
  and_word = "und"

  def date(self, day: int, month: int, year: int) -> str:
    return f"{day}. {self.months[month - 1]} {year}"

  def loc(self, place: Place) -> str:
    return f"in {place.nominative}"

  def lead(self, s: Slots, variant: int) -> str:
    v, place, obj = self.verb(s.kind, s.gender), opt(" ", s.place and self.loc(s.place)), self.noun(s.kind, s.qty)
    if variant == 1 and s.date is not None:
      return f"Am {s.date} {v} {s.actor}{opt(' von ', s.org)}{place} {obj}."
    return f"{s.actor}{opt(' von ', s.org)} {v}{opt(' am ', s.date)}{place} {obj}."

  def follow(self, slot: str, s: Slots) -> str:
    if slot == "org":
      return f"{s.actor} arbeitet für {s.org}."
    if slot == "date":
      return f"Das geschah am {s.date}."
    if slot == "place":
      return f"Das Projekt liegt {self.loc(s.place)}."
    return f"Insgesamt waren es {self.noun(s.kind, s.qty)}."

  def distractor(self, template: int, d: Slots) -> str:
    if template == 0:
      return f"Am {d.date} hatte {d.actor} von {d.org} ein ähnliches Projekt {self.loc(d.place)} angekündigt."
    if template == 1:
      return f"Ein ähnliches Projekt von {d.actor} {self.loc(d.place)} umfasste {self.noun(d.kind, d.qty)}."
    return f"{d.actor} von {d.org} kritisierte den Plan."

  def instruction(self) -> str:
    return "Fasse den folgenden Text auf Deutsch zusammen:"

  def request(self, actor: str, ask: list[str], k: int, polite: bool) -> str:
    a, b = (self.slot_names[x] for x in ask)
    text = f"Zu {actor}: Nenne {a}, {b} und {self.count_words[k - 1]} der Pläne. Antworte auf Deutsch."
    return text + (" Bitte antworte höflich." if polite else "")

  def plans(self, items: list[str]) -> str:
    return f"Pläne: {self.join(items)}."

  def alt_plans(self, actor: str, items: list[str]) -> str:
    return f"{actor} schlägt andere Themen vor: {self.join(items)}."
