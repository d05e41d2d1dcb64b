"""Vietnamese: names as family + middle + given name (middle "Thị" for women, "Văn" for men), numeric
months ("ngày 12 tháng 3 năm 2021"), classifiers on counted nouns ("1.200 cuốn sách"), thousands grouped
with a dot, full diacritics in precomposed (NFC) form."""

from __future__ import annotations

from xlra.data.testbed.langs.base import Event, Language, Place, Slots, opt


class Vietnamese(Language):
  code = "vi"
  english_name = "Vietnamese"
  # Given names; the family name comes from `last_names`, the middle name from the gender.
  first_names = (("Lan", "f"), ("Hoa", "f"), ("Mai", "f"), ("Hương", "f"), ("Linh", "f"), ("Trang", "f"),
                 ("Thảo", "f"), ("Yến", "f"), ("Minh", "m"), ("Hùng", "m"), ("Dũng", "m"), ("Tuấn", "m"),
                 ("Hiếu", "m"), ("Quang", "m"), ("Sơn", "m"), ("Phúc", "m"))
  last_names = tuple((n, n) for n in (
      "Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ"))
  cities = tuple((c, c) for c in (
      "Hà Nội", "Hải Phòng", "Đà Nẵng", "Huế", "Cần Thơ", "Nha Trang", "Đà Lạt", "Vinh", "Quy Nhơn", "Hạ Long",
      "Vũng Tàu", "Hội An"))
  orgs = ("Phú Thành", "Sao Mai", "Bình Minh", "Thiên Phát", "Đại Việt", "Sông Hồng", "Kim Cương", "Tân Tiến")
  months = tuple(str(m) for m in range(1, 13))
  events = (Event("trồng", "{n} cây xanh", "cây xanh"), Event("tặng", "{n} cuốn sách", "sách"),
            Event("xây", "{n} căn hộ", "căn hộ"), Event("tạo ra", "{n} việc làm", "việc làm"),
            Event("phát", "{n} suất ăn", "suất ăn"), Event("bán", "{n} vé", "vé"))
  topics = ("trường học", "công viên", "đường sá", "thư viện", "bệnh viện", "cầu", "thể thao", "văn hóa",
            "năng lượng", "nước sạch", "giao thông", "nhà trẻ")
  count_words = ("một", "hai", "ba")
  slot_names = {"place": "địa điểm", "date": "ngày", "qty": "số lượng", "org": "tổ chức"}
  polite = ("Dạ, vâng ạ!", "Dạ, rất sẵn lòng!", "Dạ, tất nhiên rồi!")
  filler = ("Đây thực sự là một tin rất thú vị.", "Về chuyện này còn có thể nói nhiều hơn nữa.",
            "Nói chung, đây là một chủ đề quan trọng.")
  background = ("Người dân địa phương hoan nghênh tin này.", "Việc chuẩn bị kéo dài hai năm.",
                "Các bước tiếp theo đang được lên kế hoạch.", "Hội đồng thành phố ủng hộ ý tưởng này.",
                "Hôm đó thời tiết đẹp.", "Nhiều tình nguyện viên đã giúp đỡ.")
  and_word = "và"
  follow_templates = {"org": "{actor} làm việc cho công ty {org}.", "date": "Sự kiện diễn ra vào ngày {date}.",
                      "place": "Dự án nằm {loc}.", "qty": "Tổng cộng có {noun}."}
  distractor_templates = ("Ngày {date}, {actor} của công ty {org} đã công bố một dự án tương tự {loc}.",
                          "Một dự án tương tự của {actor} {loc} có {noun}.",
                          "{actor} của công ty {org} đã phê phán kế hoạch này.")
  instruction_text = "Hãy tóm tắt văn bản sau bằng tiếng Việt:"
  request_template = "Về {actor}: hãy nêu {a}, {b} và {k} kế hoạch. Trả lời bằng tiếng Việt."
  polite_request = "Xin hãy trả lời lịch sự."
  plans_template = "Kế hoạch: {items}."
  alt_plans_template = "{actor} đề xuất chủ đề khác: {items}."

  def person(self, first: int, last: int) -> tuple[str, str]:
    name, gender = self.first_names[first]
    return f"{self.last_names[last][0]} {'Văn' if gender == 'm' else 'Thị'} {name}", gender

  def date(self, day: int, month: int, year: int) -> str:
    return f"{day} tháng {month} năm {year}"

  def loc(self, place: Place) -> str:
    return f"tại {place.nominative}"

  def lead(self, s: Slots, variant: int) -> str:
    v, place, obj = self.verb(s.kind, s.gender), opt(" ", s.place and self.loc(s.place)), self.noun(s.kind, s.qty)
    org = opt(" của công ty ", s.org)
    if variant == 1 and s.date is not None:
      return f"Ngày {s.date}, {s.actor}{org} đã {v} {obj}{place}."
    return f"{s.actor}{org} đã {v} {obj}{place}{opt(' vào ngày ', s.date)}."
