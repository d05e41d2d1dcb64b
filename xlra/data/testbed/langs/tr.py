"""Turkish: verb-final order, the locative suffix follows vowel harmony and consonant assimilation
("İzmir'de", "Ankara'da", "Gaziantep'te"; computed for foreign cities), dates as "12 Mart 2021 tarihinde",
thousands grouped with a dot, Turkish letters (ı, ğ, ş, ç, ö, ü, İ)."""

from __future__ import annotations

from xlra.data.testbed.langs.base import Event, Language, Place, Slots, opt

_BACK = set("aıouAIOU")
_FRONT = set("eiöüEİÖÜ")
_VOICELESS = set("çfhkpsştÇFHKPSŞT")


def locative(word: str) -> str:
  """`word` + "'da/'de/'ta/'te": the vowel follows the last vowel (back -> a, front -> e; a foreign word
  with no Turkish vowel defaults to e), the consonant hardens after a voiceless consonant."""
  vowel = next(("a" if c in _BACK else "e" for c in reversed(word) if c in _BACK | _FRONT), "e")
  cons = "t" if word[-1] in _VOICELESS else "d"
  return f"{word}'{cons}{vowel}"


class Turkish(Language):
  code = "tr"
  english_name = "Turkish"
  first_names = (("Ayşe", "f"), ("Fatma", "f"), ("Zeynep", "f"), ("Elif", "f"), ("Emine", "f"), ("Merve", "f"),
                 ("Özlem", "f"), ("Gül", "f"), ("Mehmet", "m"), ("Mustafa", "m"), ("Ahmet", "m"), ("Ali", "m"),
                 ("Hasan", "m"), ("İbrahim", "m"), ("Murat", "m"), ("Oğuz", "m"))
  last_names = tuple((n, n) for n in (
      "Yılmaz", "Kaya", "Demir", "Şahin", "Çelik", "Yıldız", "Öztürk", "Aydın", "Arslan", "Doğan", "Kılıç",
      "Koç"))
  cities = tuple((c, locative(c)) for c in (
      "İstanbul", "Ankara", "İzmir", "Bursa", "Antalya", "Konya", "Adana", "Gaziantep", "Kayseri", "Eskişehir",
      "Trabzon", "Samsun"))
  orgs = ("Anadolu Güç", "Boğaziçi Yapı", "Ege Tarım", "Toros Çimento", "Marmara Gıda", "Akdeniz Turizm",
          "Fırat Tekstil", "Uludağ İnşaat")
  months = ("Ocak", "Şubat", "Mart", "Nisan", "Mayıs", "Haziran", "Temmuz", "Ağustos", "Eylül", "Ekim", "Kasım",
            "Aralık")
  events = (Event("dikti", "{n} ağaç", "ağaç"), Event("bağışladı", "{n} kitap", "kitap"),
            Event("inşa etti", "{n} konut", "konut"), Event("sağladı", "{n} kişilik istihdam", "istihdam"),
            Event("dağıttı", "{n} öğün yemek", "yemek"), Event("sattı", "{n} bilet", "bilet"))
  topics = ("okullar", "parklar", "yollar", "kütüphaneler", "hastaneler", "köprüler", "spor", "kültür", "enerji",
            "su", "ulaşım", "kreşler")
  count_words = ("bir", "iki", "üç")
  slot_names = {"place": "yeri", "date": "tarihi", "qty": "sayıyı", "org": "kurumu"}
  polite = ("Tabii ki!", "Elbette!", "Seve seve!")
  filler = ("Bu gerçekten çok ilginç bir haber.", "Bu konuda çok daha fazla şey söylenebilir.",
            "Sonuç olarak bu önemli bir konu.")
  background = ("Mahalle sakinleri haberi sevinçle karşıladı.", "Planlama iki yıl sürdü.",
                "Yeni adımlar planlanıyor.", "Belediye meclisi fikri destekledi.", "O gün hava güzeldi.",
                "Birçok gönüllü yardım etti.")
  and_word = "ve"
  follow_templates = {"org": "{actor}, {org} şirketinde çalışıyor.", "date": "Bu olay {date} tarihinde gerçekleşti.",
                      "place": "Proje {loc} bulunuyor.", "qty": "Toplamda {noun} söz konusu."}
  distractor_templates = ("{date} tarihinde {org} yöneticisi {actor}, {loc} benzer bir proje duyurmuştu.",
                          "{actor} tarafından {loc} yapılan benzer bir projede {noun} vardı.",
                          "{org} yöneticisi {actor} planı eleştirdi.")
  instruction_text = "Aşağıdaki metni Türkçe özetle:"
  request_template = "Konu: {actor}. {A}, {b} ve planlardan {k} tanesini söyle. Türkçe cevap ver."
  polite_request = "Lütfen kibar ol."
  plans_template = "Planlar: {items}."
  alt_plans_template = "{actor} başka konular öneriyor: {items}."

  def date(self, day: int, month: int, year: int) -> str:
    return f"{day} {self.months[month - 1]} {year}"

  def loc(self, place: Place) -> str:
    return place.native or locative(place.nominative)

  def lead(self, s: Slots, variant: int) -> str:
    place, obj = opt(" ", s.place and self.loc(s.place)), self.noun(s.kind, s.qty)
    v = self.verb(s.kind, s.gender)
    who = f"{opt('', s.org, ' yöneticisi ')}{s.actor}"
    if variant == 1 and s.date is not None:
      return f"{s.date} tarihinde {who}{place} {obj} {v}."
    return f"{who}{opt(', ', s.date, ' tarihinde')}{place} {obj} {v}."
