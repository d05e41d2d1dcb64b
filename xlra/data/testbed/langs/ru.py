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

  def number(self, n: int) -> str:
    return f"{n:,}".replace(",", " ")

  def date(self, day: int, month: int, year: int) -> str:
    return f"{day} {self.months[month - 1]} {year}"

  def loc(self, place: Place) -> str:
    return f"в {place.native or place.nominative}"

  @staticmethod
  def _org(org: str | None) -> str:
    return opt(" из компании «", org, "»")

  @staticmethod
  def _g(gender: str, m: str, f: str) -> str:
    return m if gender == "m" else f

  def lead(self, s: Slots, variant: int) -> str:
    v, place, obj = self.verb(s.kind, s.gender), opt(" ", s.place and self.loc(s.place)), self.noun(s.kind, s.qty)
    if variant == 1 and s.date is not None:
      return f"{s.date} года {s.actor}{self._org(s.org)} {v}{place} {obj}."
    return f"{s.actor}{self._org(s.org)} {v} {obj}{place}{opt(' ', s.date, ' года')}."

  def follow(self, slot: str, s: Slots) -> str:
    if slot == "org":
      return f"{s.actor} работает в компании «{s.org}»."
    if slot == "date":
      return f"Это произошло {s.date} года."
    if slot == "place":
      return f"Проект находится {self.loc(s.place)}."
    return f"Всего было {self.noun(s.kind, s.qty)}."

  def distractor(self, template: int, d: Slots) -> str:
    if template == 0:
      return (f"{d.date} года {d.actor}{self._org(d.org)} {self._g(d.gender, 'объявил', 'объявила')} "
              f"о похожем проекте {self.loc(d.place)}.")
    if template == 1:
      return (f"В похожем проекте {self.loc(d.place)} {self._g(d.gender, 'участвовал', 'участвовала')} "
              f"{d.actor}, там было {self.noun(d.kind, d.qty)}.")
    return f"{d.actor}{self._org(d.org)} {self._g(d.gender, 'раскритиковал', 'раскритиковала')} этот план."

  def instruction(self) -> str:
    return "Кратко изложи следующий текст на русском языке:"

  def request(self, actor: str, ask: list[str], k: int, polite: bool) -> str:
    a, b = (self.slot_names[x] for x in ask)
    text = f"Речь о проекте: {actor}. Назови {a}, {b} и {self.count_words[k - 1]} из планов. Ответь по-русски."
    return text + (" Пожалуйста, ответь вежливо." if polite else "")

  def plans(self, items: list[str]) -> str:
    return f"Планы: {self.join(items)}."

  def alt_plans(self, actor: str, items: list[str]) -> str:
    return f"{actor} предлагает другие темы: {self.join(items)}."
