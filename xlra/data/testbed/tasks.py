"""The two testbed tasks, summarization and dialog: an `Example` holds the prompt the policy sees, the
reference response, the structured facts the gold quality q needs, and the world it was written from.

Any response the testbed writes (the reference, a corrupted candidate, a translation) is a *spec* rendered
by `render`: which facts to state (and with which values), which list items, a politeness phrase, filler,
repetition, truncation, a missing end mark, a sentence left in another language, and the writing language. Specs are JSON-ready dicts, so a candidate can be
re-rendered in another language (translate-train of preference data keeps its labels).

Summarization: an article of 3-8 sentences about one event (a lead sentence plus follow-up sentences for
the facts the lead leaves out), 1-2 sentences about other, similar events (distractors) and some
background; the reference is one sentence with the actor, organisation, place, date and quantity.
Dialog: a short context (the event, a distractor event, a list of planned topics and another person's
topics), a request naming two facts to give, how many topics to list, the answer language and whether to
be polite; the reference answers exactly that.
"""

from __future__ import annotations

import dataclasses
import functools

from xlra.data.testbed import langs, world
from xlra.data.testbed.langs.base import OPTIONAL_SLOTS, Language, tokens
from xlra.data.testbed.seeding import Stream

TASKS = ("summarize", "dialog")
# Which values each distractor template mentions (see Language.distractor).
DISTRACTOR_SLOTS = {0: ("date", "actor", "org", "place"), 1: ("actor", "place", "qty"), 2: ("actor", "org")}
BUDGET_SLACK = 6  # words an output may exceed the reference by before q's length penalty starts


@dataclasses.dataclass(frozen=True)
class Example:
  """One prompt of the testbed. `facts` maps each key slot to its accepted surface forms; `distractors`
  lists surface forms from the input that a good output must not use; `constraints` has `budget`
  (words), and for dialog `items` (the listed topics), `k` (how many to name) and `polite`."""
  id: str
  lang: str
  task: str
  prompt: str
  reference: str
  facts: dict
  distractors: list
  constraints: dict
  world: dict

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: dict) -> Example:
    return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls)})

  @functools.cached_property
  def input_tokens(self) -> frozenset:
    """The prompt's tokens (langs.base.tokens): q counts an output name or number outside it as invented."""
    return frozenset(tokens(self.prompt))


# -- specs and rendering ------------------------------------------------------------------------------

def reference_spec(ex: Example) -> dict:
  w = ex.world
  if ex.task == "summarize":
    return {"include": list(OPTIONAL_SLOTS), "overrides": {}, "variant": w["ref_variant"], "items": [],
            "polite": None, "filler": [], "repeat": 0, "truncate": None, "lang": None}
  return {"include": list(w["ask"]), "overrides": {}, "variant": w["ref_variant"], "items": list(w["answer_items"]),
          "polite": w["polite_id"] if w["polite"] else None, "filler": [], "repeat": 0, "truncate": None,
          "lang": None}


def render(ex: Example, spec: dict, lang: str | None = None) -> str:
  """Writes a response spec. `lang` (or the spec's own `lang`, the wrong-language corruption) picks the
  writing language; the default is the example's."""
  writer = langs.get(spec["lang"] or lang or ex.lang)
  sentence = writer.lead(world.slots(ex.world["event"], writer, spec["include"], spec["overrides"]), spec["variant"])
  parts = [sentence]
  if spec["repeat"] == 1:  # the whole sentence twice
    parts.append(sentence)
  elif spec["repeat"] == 2:  # a stuck decoder: the last three words over and over
    tail = sentence.rstrip(".").split()[-3:]
    parts = [sentence.rstrip(".") + (" " + " ".join(tail)) * 2 + "."]
  if spec["items"]:
    parts.append(writer.plans([writer.topics[i] for i in spec["items"]]))
  for fid, where in spec["filler"]:
    parts.insert(0, writer.filler[fid]) if where == "start" else parts.append(writer.filler[fid])
  if spec["polite"] is not None:
    parts.insert(0, writer.polite[spec["polite"]])
  if spec.get("fragment"):  # a sentence of another language left in the answer
    code, i = spec["fragment"]
    parts.append(langs.get(code).background[i])
  text = " ".join(parts)
  if spec.get("no_end"):
    text = text.rstrip(".!?")
  if spec["truncate"] is not None:
    words = text.split()
    text = " ".join(words[:max(1, int(round(len(words) * spec["truncate"])))])
  return text


# -- generation ---------------------------------------------------------------------------------------

def _article(rng: Stream, n_distractors: int) -> list:
  """The sentence plan of a summarization article: lead first, the rest shuffled, 3-8 sentences."""
  lead = [s for s in OPTIONAL_SLOTS if rng.random() < 0.75]
  rest = [["follow", s] for s in OPTIONAL_SLOTS if s not in lead]
  rest += [["dis", rng.integers(3), i] for i in range(n_distractors)]
  n_bg = rng.integers(0, 2)
  n_bg = min(max(n_bg, 3 - 1 - len(rest)), 8 - 1 - len(rest))
  rest += [["bg", b] for b in rng.sample(range(6), n_bg)]
  order = rng.permutation(len(rest))
  variant = rng.integers(2) if "date" in lead else 0
  return [["lead", lead, variant]] + [rest[i] for i in order]


def write_sentence(writer: Language, w: dict, plan: list) -> str:
  kind = plan[0]
  if kind == "lead":
    return writer.lead(world.slots(w["event"], writer, plan[1]), plan[2])
  if kind == "follow":
    return writer.follow(plan[1], world.slots(w["event"], writer))
  if kind == "dis":
    return writer.distractor(plan[1], world.slots(w["distractors"][plan[2]], writer))
  if kind == "bg":
    return writer.background[plan[1]]
  if kind == "plans":
    return writer.plans([writer.topics[i] for i in w["items"]])
  if kind == "alt":
    return writer.alt_plans(world.person(w["distractors"][plan[1]]["actor"])[0],
                            [writer.topics[i] for i in w["alt_items"]])
  raise ValueError(f"unknown sentence kind {kind!r}")


def write_prompt(task: str, w: dict, writer: Language, sentence_hook=None) -> str:
  """The prompt of world `w` in `writer`'s language. `sentence_hook(i, plan, writer) -> str | None` may
  replace sentence i (translation errors use it)."""
  sentences = []
  for i, plan in enumerate(w["context"]):
    text = sentence_hook(i, plan, writer) if sentence_hook else None
    sentences.append(text if text is not None else write_sentence(writer, w, plan))
  body = " ".join(sentences)
  if task == "summarize":
    return f"{writer.instruction()}\n{body}"
  actor = world.person(w["event"]["actor"])[0]
  return f"{body}\n{writer.request(actor, w['ask'], w['k'], w['polite'])}"


def key_facts(task: str, w: dict, writer: Language) -> dict:
  slots = ["actor", *OPTIONAL_SLOTS] if task == "summarize" else ["actor", *w["ask"]]
  return {s: world.forms(s, w["event"][s], writer) for s in slots}


def distractor_forms(w: dict, writer: Language) -> list[str]:
  out = []
  for plan in w["context"]:
    if plan[0] == "dis":
      d = w["distractors"][plan[2]]
      out += [f for s in DISTRACTOR_SLOTS[plan[1]] for f in world.forms(s, d[s], writer)]
    elif plan[0] == "alt":
      out += [world.render("actor", w["distractors"][plan[1]]["actor"], writer)]
      out += [writer.topics[i] for i in w["alt_items"]]
  return sorted(set(out))


def _summarize_world(rng: Stream, lang: str) -> dict:
  event = world.sample_event(rng, lang, [])
  n_dis = 1 if rng.random() < 0.6 else 2
  distractors = []
  for _ in range(n_dis):
    distractors.append(world.sample_event(rng, lang, [event, *distractors], kind=event["kind"]))
  return {"event": event, "distractors": distractors, "context": _article(rng, n_dis),
          "ref_variant": rng.integers(2)}


def _dialog_world(rng: Stream, lang: str) -> dict:
  event = world.sample_event(rng, lang, [])
  d1 = world.sample_event(rng, lang, [event], kind=event["kind"])
  distractors = [d1]
  alt_by = 0
  if rng.random() < 0.5:
    distractors.append(world.sample_event(rng, lang, [event, d1]))
    alt_by = 1
  lead = [s for s in OPTIONAL_SLOTS if rng.random() < 0.85]
  rest = [["follow", s] for s in OPTIONAL_SLOTS if s not in lead]
  rest += [["dis", rng.integers(2), 0], ["plans"]] + ([["alt", alt_by]] if rng.random() < 0.6 else [])
  context = [["lead", lead, rng.integers(2) if "date" in lead else 0]]
  context += [rest[i] for i in rng.permutation(len(rest))]
  topics = rng.permutation(12)
  n_items = rng.integers(3, 5)
  items, alt_items = sorted(topics[:n_items]), sorted(topics[n_items:n_items + 2])
  k = rng.integers(1, 4)
  answer = sorted(rng.sample(items, k))
  ask = sorted(rng.sample(OPTIONAL_SLOTS, 2), key=OPTIONAL_SLOTS.index)
  return {"event": event, "distractors": distractors, "context": context, "items": items, "alt_items": alt_items,
          "k": k, "answer_items": answer, "ask": ask, "polite": bool(rng.random() < 0.5),
          "polite_id": rng.integers(3), "ref_variant": rng.integers(2) if "date" in ask else 0}


def make_example(task: str, w: dict, lang: str, example_id: str, sentence_hook=None) -> Example:
  """Writes world `w` as an example in `lang` (the world's own language, or another for translation)."""
  writer = langs.get(lang)
  constraints = {"items": [], "k": 0, "polite": False}
  if task == "dialog":
    constraints = {"items": [writer.topics[i] for i in w["items"]], "k": w["k"], "polite": w["polite"]}
  ex = Example(id=example_id, lang=lang, task=task, prompt=write_prompt(task, w, writer, sentence_hook),
               reference="", facts=key_facts(task, w, writer), distractors=distractor_forms(w, writer),
               constraints=constraints, world=w)
  reference = render(ex, reference_spec(ex))
  constraints["budget"] = len(reference.split()) + BUDGET_SLACK
  return dataclasses.replace(ex, reference=reference)


def generate(task: str, lang: str, rng: Stream, example_id: str) -> Example:
  if task not in TASKS:
    raise ValueError(f"unknown testbed task {task!r}; known: {', '.join(TASKS)}")
  w = _summarize_world(rng, lang) if task == "summarize" else _dialog_world(rng, lang)
  return make_example(task, w, lang, example_id)
