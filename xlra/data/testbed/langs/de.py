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
  follow_templates = {"org": "{actor} arbeitet für {org}.", "date": "Das geschah am {date}.",
                      "place": "Das Projekt liegt {loc}.", "qty": "Insgesamt waren es {noun}."}
  distractor_templates = ("Am {date} hatte {actor} von {org} ein ähnliches Projekt {loc} angekündigt.",
                          "Ein ähnliches Projekt von {actor} {loc} umfasste {noun}.",
                          "{actor} von {org} kritisierte den Plan.")
  instruction_text = "Fasse den folgenden Text auf Deutsch zusammen:"
  request_template = "Zu {actor}: Nenne {a}, {b} und {k} der Pläne. Antworte auf Deutsch."
  polite_request = "Bitte antworte höflich."
  plans_template = "Pläne: {items}."
  alt_plans_template = "{actor} schlägt andere Themen vor: {items}."

  def date(self, day: int, month: int, year: int) -> str:
    return f"{day}. {self.months[month - 1]} {year}"

  def loc(self, place: Place) -> str:
    return f"in {place.nominative}"

  def lead(self, s: Slots, variant: int) -> str:
    v, place, obj = self.verb(s.kind, s.gender), opt(" ", s.place and self.loc(s.place)), self.noun(s.kind, s.qty)
    if variant == 1 and s.date is not None:
      return f"Am {s.date} {v} {s.actor}{opt(' von ', s.org)}{place} {obj}."
    return f"{s.actor}{opt(' von ', s.org)} {v}{opt(' am ', s.date)}{place} {obj}."
