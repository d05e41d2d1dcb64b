"""Russian: Cyrillic, past-tense verbs and surnames agree with the actor's gender, cities take the
prepositional case after "в", counted nouns take the genitive plural (every quantity is a multiple of ten,
so "1 200 деревьев" is always right), dates as "12 марта 2021 года", thousands grouped with a space."""

from __future__ import annotations

from xlra.data.testbed.langs.base import Event, Language, Place, Slots, opt


class Russian(Language):
  code = "ru"
  english_name = "Russian"
  first_names = (("Анна", "f"), ("Мария", "f"), ("Елена", "f"), ("Ольга", "f"), ("Наталья", "f"), ("Ирина", "f"),
                 ("Татьяна", "f"), ("Юлия", "f"), ("Алексей", "m"), ("Дмитрий", "m"), ("Сергей", "m"),
                 ("Андрей", "m"), ("Иван", "m"), ("Михаил", "m"), ("Павел", "m"), ("Олег", "m"))
  last_names = tuple((m, m + "а") for m in (
      "Иванов", "Смирнов", "Кузнецов", "Попов", "Соколов", "Лебедев", "Козлов", "Новиков", "Морозов", "Петров",
      "Волков", "Павлов"))
  cities = (("Москва", "Москве"), ("Казань", "Казани"), ("Новосибирск", "Новосибирске"),
            ("Екатеринбург", "Екатеринбурге"), ("Самара", "Самаре"), ("Омск", "Омске"), ("Пермь", "Перми"),
            ("Воронеж", "Воронеже"), ("Томск", "Томске"), ("Тула", "Туле"), ("Сочи", "Сочи"), ("Курск", "Курске"))
  orgs = ("Вектор", "Восход", "Гранит", "Радуга", "Заря", "Орбита", "Кристалл", "Маяк")
  months = ("января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября", "октября",
            "ноября", "декабря")
  events = (Event(("посадил", "посадила"), "{n} деревьев", "деревья"),
            Event(("подарил", "подарила"), "{n} книг", "книги"),
            Event(("построил", "построила"), "{n} квартир", "квартиры"),
            Event(("создал", "создала"), "{n} рабочих мест", "рабочие места"),
            Event(("раздал", "раздала"), "{n} обедов", "обеды"),
            Event(("продал", "продала"), "{n} билетов", "билеты"))
  topics = ("школы", "парки", "дороги", "библиотеки", "больницы", "мосты", "спорт", "культура", "энергетика",
            "вода", "транспорт", "детские сады")
  count_words = ("один", "два", "три")
  slot_names = {"place": "место", "date": "дату", "qty": "количество", "org": "организацию"}
  polite = ("Конечно!", "С удовольствием!", "Разумеется!")
  filler = ("Это действительно очень интересная новость.", "Об этом можно было бы сказать гораздо больше.",
            "В целом это важная тема.")
  background = ("Жители приветствовали эту новость.", "Подготовка заняла два года.", "Запланированы новые шаги.",
                "Городской совет поддержал идею.", "В тот день была хорошая погода.", "Помогали многие волонтёры.")
  and_word = "и"
  follow_templates = {"org": "{actor} работает в компании «{org}».", "date": "Это произошло {date} года.",
                      "place": "Проект находится {loc}.", "qty": "Всего было {noun}."}
  distractor_templates = ("{date} года {actor} из компании «{org}» объявил{g} о похожем проекте {loc}.",
                          "В похожем проекте {loc} участвовал{g} {actor}, там было {noun}.",
                          "{actor} из компании «{org}» раскритиковал{g} этот план.")
  instruction_text = "Кратко изложи следующий текст на русском языке:"
  request_template = "Речь о проекте: {actor}. Назови {a}, {b} и {k} из планов. Ответь по-русски."
  polite_request = "Пожалуйста, ответь вежливо."
  plans_template = "Планы: {items}."
  alt_plans_template = "{actor} предлагает другие темы: {items}."

  def number(self, n: int) -> str:
    return f"{n:,}".replace(",", " ")

  def date(self, day: int, month: int, year: int) -> str:
    return f"{day} {self.months[month - 1]} {year}"

  def loc(self, place: Place) -> str:
    return f"в {place.native or place.nominative}"

  @staticmethod
  def _org(org: str | None) -> str:
    return opt(" из компании «", org, "»")

  def lead(self, s: Slots, variant: int) -> str:
    v, place, obj = self.verb(s.kind, s.gender), opt(" ", s.place and self.loc(s.place)), self.noun(s.kind, s.qty)
    if variant == 1 and s.date is not None:
      return f"{s.date} года {s.actor}{self._org(s.org)} {v}{place} {obj}."
    return f"{s.actor}{self._org(s.org)} {v} {obj}{place}{opt(' ', s.date, ' года')}."
