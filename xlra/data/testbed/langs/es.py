"""Spanish: dates as "12 de marzo de 2021", thousands grouped with a dot, inverted exclamation marks."""

from __future__ import annotations

from xlra.data.testbed.langs.base import Event, Language, Place, Slots, opt


class Spanish(Language):
  code = "es"
  english_name = "Spanish"
  first_names = (("María", "f"), ("Lucía", "f"), ("Carmen", "f"), ("Elena", "f"), ("Paula", "f"), ("Isabel", "f"),
                 ("Marta", "f"), ("Sofía", "f"), ("Javier", "m"), ("Carlos", "m"), ("Pablo", "m"), ("Miguel", "m"),
                 ("Sergio", "m"), ("Diego", "m"), ("Andrés", "m"), ("Jorge", "m"))
  last_names = tuple((n, n) for n in (
      "García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez", "Pérez", "Gómez", "Ruiz",
      "Díaz", "Moreno"))
  cities = tuple((c, c) for c in (
      "Madrid", "Sevilla", "Valencia", "Bilbao", "Málaga", "Zaragoza", "Granada", "Córdoba", "Salamanca",
      "Toledo", "Alicante", "Murcia"))
  orgs = ("Solmar", "Iberluz", "Aguaviva", "Montecampo", "Costaverde", "Tierranova", "Vientosur", "Riomar")
  months = ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
            "noviembre", "diciembre")
  events = (Event("plantó", "{n} árboles", "árboles"), Event("donó", "{n} libros", "libros"),
            Event("construyó", "{n} viviendas", "viviendas"),
            Event("creó", "{n} puestos de trabajo", "puestos de trabajo"),
            Event("repartió", "{n} comidas", "comidas"), Event("vendió", "{n} entradas", "entradas"))
  topics = ("escuelas", "parques", "carreteras", "bibliotecas", "hospitales", "puentes", "deporte", "cultura",
            "energía", "agua", "transporte", "guarderías")
  count_words = ("uno", "dos", "tres")
  slot_names = {"place": "el lugar", "date": "la fecha", "qty": "el número", "org": "la organización"}
  polite = ("¡Con mucho gusto!", "¡Claro que sí!", "¡Por supuesto!")
  filler = ("Es realmente una noticia muy interesante.", "Se podría decir mucho más sobre esto.",
            "En resumen, es un tema importante.")
  background = ("Los vecinos celebraron la noticia.", "La planificación duró dos años.", "Se planean más pasos.",
                "El ayuntamiento apoyó la idea.", "Ese día hizo buen tiempo.", "Muchos voluntarios ayudaron.")
  and_word = "y"
  follow_templates = {"org": "{actor} trabaja para {org}.", "date": "Esto ocurrió el {date}.",
                      "place": "El proyecto está {loc}.", "qty": "En total fueron {noun}."}
  distractor_templates = ("El {date}, {actor}, de {org}, había anunciado un proyecto similar {loc}.",
                          "Un proyecto similar de {actor} {loc} tuvo {noun}.", "{actor}, de {org}, criticó el plan.")
  instruction_text = "Resume el siguiente texto en español:"
  request_template = "Sobre {actor}: indica {a}, {b} y {k} de los planes. Responde en español."
  polite_request = "Por favor, responde con cortesía."
  plans_template = "Planes: {items}."
  alt_plans_template = "{actor} propone otros temas: {items}."

  def date(self, day: int, month: int, year: int) -> str:
    return f"{day} de {self.months[month - 1]} de {year}"

  def loc(self, place: Place) -> str:
    return f"en {place.nominative}"

  def lead(self, s: Slots, variant: int) -> str:
    v, place, obj = self.verb(s.kind, s.gender), opt(" ", s.place and self.loc(s.place)), self.noun(s.kind, s.qty)
    if variant == 1 and s.date is not None:
      return f"El {s.date}, {s.actor}{opt(', de ', s.org, ',')} {v} {obj}{place}."
    return f"{s.actor}{opt(', de ', s.org, ',')} {v} {obj}{place}{opt(' el ', s.date)}."
