"""English (British conventions): dates as "12 March 2021", thousands grouped with a comma."""

from __future__ import annotations

from xlra.data.testbed.langs.base import Event, Language, Place, Slots, opt


class English(Language):
  code = "en"
  english_name = "English"
  first_names = (("Emma", "f"), ("Olivia", "f"), ("Sophie", "f"), ("Grace", "f"), ("Emily", "f"), ("Hannah", "f"),
                 ("Lucy", "f"), ("Alice", "f"), ("James", "m"), ("Oliver", "m"), ("Harry", "m"), ("George", "m"),
                 ("Jack", "m"), ("Daniel", "m"), ("Henry", "m"), ("Adam", "m"))
  last_names = tuple((n, n) for n in (
      "Smith", "Jones", "Taylor", "Brown", "Wilson", "Evans", "Walker", "Wright", "Roberts", "Hughes", "Green",
      "Turner"))
  cities = tuple((c, c) for c in (
      "Leeds", "York", "Bristol", "Manchester", "Liverpool", "Glasgow", "Cardiff", "Oxford", "Cambridge",
      "Norwich", "Brighton", "Exeter"))
  orgs = ("Northgate", "Brightwell", "Ashford", "Redstone", "Kingsway", "Oakfield", "Bluewater", "Greenleaf")
  months = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
            "November", "December")
  events = (Event("planted", "{n} trees", "trees"), Event("donated", "{n} books", "books"),
            Event("built", "{n} homes", "homes"), Event("created", "{n} jobs", "jobs"),
            Event("handed out", "{n} meals", "meals"), Event("sold", "{n} tickets", "tickets"))
  topics = ("schools", "parks", "roads", "libraries", "hospitals", "bridges", "sport", "culture", "energy",
            "water", "transport", "nurseries")
  count_words = ("one", "two", "three")
  slot_names = {"place": "the place", "date": "the date", "qty": "the number", "org": "the organisation"}
  polite = ("Of course!", "Certainly!", "With pleasure!")
  filler = ("This is really very interesting news.", "Much more could be said about this.",
            "All in all, this is an important topic.")
  background = ("Local residents welcomed the news.", "The planning took two years.", "Further steps are planned.",
                "The city council supported the idea.", "The weather was fine that day.",
                "Many volunteers helped out.")
  and_word = "and"
  follow_templates = {"org": "{actor} works for {org}.", "date": "This happened on {date}.",
                      "place": "The project is {loc}.", "qty": "In total, there were {noun}."}
  distractor_templates = ("On {date}, {actor} of {org} had announced a similar project {loc}.",
                          "A similar project by {actor} {loc} had {noun}.", "{actor} of {org} criticised the plan.")
  instruction_text = "Summarize the following text in English:"
  request_template = "About {actor}: give {a}, {b} and {k} of the plans. Answer in English."
  polite_request = "Please answer politely."
  plans_template = "Plans: {items}."
  alt_plans_template = "{actor} suggests other topics: {items}."

  def number(self, n: int) -> str:
    return f"{n:,}"

  def date(self, day: int, month: int, year: int) -> str:
    return f"{day} {self.months[month - 1]} {year}"

  def loc(self, place: Place) -> str:
    return f"in {place.nominative}"

  def lead(self, s: Slots, variant: int) -> str:
    v, place, obj = self.verb(s.kind, s.gender), opt(" ", s.place and self.loc(s.place)), self.noun(s.kind, s.qty)
    if variant == 1 and s.date is not None:
      return f"On {s.date}, {s.actor}{opt(' of ', s.org)} {v} {obj}{place}."
    return f"{s.actor}{opt(' of ', s.org)} {v} {obj}{place}{opt(' on ', s.date)}."
