"""Splits of the testbed per language and task, each from its own named random stream, so any split
regenerates byte-identically from (seed, language, split, task) alone and a split of n examples is a
prefix of the same split with more.

  base      raw text for the base LM and the tokenizer: articles and dialog contexts, no instructions
  sft       prompt + reference, the reference drawn from the flaw mixture config.sft_flaws
            (corruptions.flawed_reference); every other split keeps the clean reference
  rm_train  prompts with preference pairs (and one pointwise-labelled candidate each), labelled by the
  rm_val    simulated annotators of that language
  rl        prompts for PPO
  eval      prompts for win rates
"""

from __future__ import annotations

import dataclasses

from xlra.data.testbed import corruptions, tasks
from xlra.data.testbed.annotators import Annotator
from xlra.data.testbed.quality import quality
from xlra.data.testbed.seeding import Stream
from xlra.data.testbed.tasks import Example
from xlra.data.testbed.translate import translate

SPLITS = ("base", "sft", "rm_train", "rm_val", "rl", "eval")
PREFERENCE_SPLITS = ("rm_train", "rm_val")
_MAX_TRIES = 20  # draws to find a second candidate that differs from the first


def generate_split(lang: str, task: str, split: str, n: int, seed: int) -> list[Example]:
  """n examples; ids are "{lang}-{task}-{split}-{index:06d}"."""
  if split not in SPLITS:
    raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
  rng = Stream(seed, lang, split, task)
  return [tasks.generate(task, lang, rng, f"{lang}-{task}-{split}-{i:06d}") for i in range(n)]


def _document(ex: Example) -> str:
  """The prompt without its instruction (summarize) or request (dialog): raw text."""
  return ex.prompt.split("\n", 1)[1] if ex.task == "summarize" else ex.prompt.rsplit("\n", 1)[0]


def base_corpus(lang: str, tasks_: tuple[str, ...], n: int, seed: int, restatements: float = 0.0,
                parallel: float = 0.0, languages: tuple[str, ...] = (), answers: float = 0.0,
                flaws: dict | None = None) -> list[str]:
  """n documents per task: the article or dialog context, without the instruction or the request.

  Two kinds of text a multilingual pretraining corpus has, each in a seeded share of the documents:
  `restatements`  a document followed by a text restating its main facts (an article's lede-style
               summary, a dialog context's reply): names, places and dates copied from context, what
               pretrained LMs learn to do (the tiny testbed models, which invent them, gain a little:
               50% and 1500 base steps took a 250-step SFT model's greedy gold q from 0.007 to 0.066);
  `parallel`   a document followed by its translation into another of `languages` (names keep their
               spelling), the cross-lingual signal that lets a multilingual LM share what it learns;
  `answers`    the whole prompt (instruction or request included) followed by an answer drawn from the
               flaw mixture `flaws` (corruptions.flawed_reference), as forum and Q&A pages are: every
               language's base LM text then holds answers, clean and flawed, written the same way.
  """
  rng = Stream(seed, "base-mix", lang)
  others = [l for l in languages if l != lang]
  docs = []
  for task in tasks_:
    for ex in generate_split(lang, task, "base", n, seed):
      body = _document(ex)
      if answers and rng.random() < answers:
        body = f"{ex.prompt}\n{corruptions.flawed_reference(ex, flaws or {}, seed).reference}"
      if rng.random() < restatements:
        body += "\n" + ex.reference
      if others and rng.random() < parallel:
        body += "\n" + _document(translate(ex, rng.choice(others), 0.0, seed))
      docs.append(body)
  return docs


def preference_pairs(examples: list[Example], annotator: Annotator, seed: int, pairs_per_prompt: int = 1,
                     p_clean: float = 0.25, max_corruptions: int = 3) -> list[dict]:
  """Two distinct candidates per pair, ordered by one simulated annotator's judgement. Each record keeps
  both q values, the corruptions applied and the specs (to translate the pair later)."""
  out = []
  for ex in examples:
    for j in range(pairs_per_prompt):
      rng = Stream(seed, "pairs", ex.id, j)
      a = corruptions.sample_candidate(ex, rng, p_clean, max_corruptions)
      for _ in range(_MAX_TRIES):
        b = corruptions.sample_candidate(ex, rng, p_clean, max_corruptions)
        if b[0] != a[0]:
          break
      qa, qb = quality(ex, a[0]), quality(ex, b[0])
      chosen, rejected, qc, qr = (a, b, qa, qb) if annotator.prefers_first(ex, a[0], b[0], qa, qb) else (b, a, qb, qa)
      out.append({"id": f"{ex.id}-pair{j}", "example_id": ex.id, "lang": ex.lang, "task": ex.task,
                  "prompt": ex.prompt, "chosen": chosen[0], "rejected": rejected[0], "q_chosen": qc,
                  "q_rejected": qr, "chosen_kinds": chosen[2], "rejected_kinds": rejected[2],
                  "chosen_spec": chosen[1], "rejected_spec": rejected[1]})
  return out


def probe_pairs(examples: list[Example], seed: int, per_kind: int = 0) -> list[dict]:
  """Error-type probes: per example and corruption kind that applies, a correct answer (the reference
  with q-neutral variation) as "chosen" and the same answer with exactly that one error as "rejected",
  in gold order, with the record's "kind". What a reward model's accuracy on them measures is which
  kinds of error it can see: a wrong language or a repetition shows in the answer alone, a swapped or
  invented value only against the prompt. per_kind > 0 keeps the first per_kind probes of each kind.
  """
  out, count = [], {}
  for ex in examples:
    for kind in corruptions.kinds_for(ex):
      if per_kind and count.get(kind, 0) >= per_kind:
        continue
      rng = Stream(seed, "probe", ex.id, kind)
      spec = corruptions.vary(ex, rng)
      bad = corruptions.corrupt(ex, kind, rng, spec)
      if bad is None:
        continue
      good_text, bad_text = tasks.render(ex, spec), tasks.render(ex, bad)
      q_good, q_bad = quality(ex, good_text), quality(ex, bad_text)
      if not q_bad < q_good:  # never for these kinds (tests/data/test_testbed.py); kept out if it were
        continue
      count[kind] = count.get(kind, 0) + 1
      out.append({"id": f"{ex.id}-probe-{kind}", "example_id": ex.id, "lang": ex.lang, "task": ex.task,
                  "prompt": ex.prompt, "chosen": good_text, "rejected": bad_text, "q_chosen": q_good,
                  "q_rejected": q_bad, "kind": kind})
  return out


def shuffled_labels(records: list[dict], kind: str, seed: int) -> list[dict]:
  """The same RM records with labels that carry no signal (a placebo RM's data): each pair's chosen and
  rejected sides swapped with probability 1/2; pointwise good/bad labels permuted (same base rate)."""
  if kind == "pointwise":
    order = Stream(seed, "placebo-labels", len(records)).permutation(len(records))
    return [{**r, "label": records[i]["label"]} for r, i in zip(records, order)]
  sides = (("chosen", "rejected"), ("chosen_kinds", "rejected_kinds"), ("chosen_spec", "rejected_spec"),
           ("q_chosen", "q_rejected"))
  out = []
  for r in records:
    if Stream(seed, "placebo-swap", r["id"]).random() < 0.5:
      r = {**r, **{a: r[b] for pair in sides for a, b in (pair, pair[::-1]) if a in r}}
    out.append(r)
  return out


def pointwise_examples(examples: list[Example], annotator: Annotator, seed: int, p_clean: float = 0.4,
                       max_corruptions: int = 3) -> list[dict]:
  """One candidate per prompt with a noisy good/bad label (Seahorse-like). More clean candidates than
  in pairs, so that "good" is not rare."""
  out = []
  for ex in examples:
    rng = Stream(seed, "pointwise", ex.id)
    text, spec, kinds = corruptions.sample_candidate(ex, rng, p_clean, max_corruptions)
    q = quality(ex, text)
    out.append({"id": f"{ex.id}-point", "example_id": ex.id, "lang": ex.lang, "task": ex.task, "prompt": ex.prompt,
                "output": text, "label": annotator.label(ex, text, q), "q": q, "kinds": kinds, "spec": spec})
  return out


@dataclasses.dataclass
class Testbed:
  """All splits in memory. Keys are (split, lang, task); `base` is keyed by language."""
  examples: dict[tuple[str, str, str], list[Example]]
  pairs: dict[tuple[str, str, str], list[dict]]
  pointwise: dict[tuple[str, str, str], list[dict]]
  base: dict[str, list[str]]
  languages: tuple[str, ...]
  tasks: tuple[str, ...]

  def get(self, split: str, lang: str, task: str | None = None) -> list[Example]:
    """Examples of one split and language; task None: all tasks, interleaved (one of each in turn)."""
    return self._collect(self.examples, split, lang, task)

  def get_pairs(self, split: str, lang: str, task: str | None = None) -> list[dict]:
    return self._collect(self.pairs, split, lang, task)

  def get_pointwise(self, split: str, lang: str, task: str | None = None) -> list[dict]:
    return self._collect(self.pointwise, split, lang, task)

  def _collect(self, table: dict, split: str, lang: str, task: str | None) -> list:
    names = self.tasks if task is None else (task,)
    for t in names:
      if (split, lang, t) not in table:
        raise KeyError(f"no {split!r} split for language {lang!r}, task {t!r}; built: {sorted(table)[:6]} ...")
    lists = [table[(split, lang, t)] for t in names]
    out = [x for group in zip(*lists) for x in group]
    for rest in lists:  # the tails when the tasks have different sizes
      out += rest[min(len(x) for x in lists):]
    return out

  def index(self) -> dict[str, Example]:
    """id -> Example over every split (pair and pointwise records refer to examples by id)."""
    return {ex.id: ex for exs in self.examples.values() for ex in exs}


def build(config) -> Testbed:
  """Generates every split named in `config.sizes` (see configs/data.py) for each language and task."""
  annotator = Annotator.from_config(config.annotator)
  examples, pairs, points, base = {}, {}, {}, {}
  for lang in config.languages:
    mix = config.base_mix
    base[lang] = base_corpus(lang, tuple(config.tasks), config.sizes.base, config.seed, mix.restatements, mix.parallel,
                             tuple(config.languages), mix.answers, dict(config.sft_flaws))
    for task in config.tasks:
      for split in SPLITS[1:]:
        exs = generate_split(lang, task, split, getattr(config.sizes, split), config.seed)
        if split == "sft":
          exs = [corruptions.flawed_reference(ex, dict(config.sft_flaws), config.seed) for ex in exs]
        examples[(split, lang, task)] = exs
        if split in PREFERENCE_SPLITS:
          pairs[(split, lang, task)] = preference_pairs(
              exs, annotator, config.seed, config.candidates.pairs_per_prompt, config.candidates.p_clean,
              config.candidates.max_corruptions)
          points[(split, lang, task)] = pointwise_examples(exs, annotator, config.seed)
  return Testbed(examples, pairs, points, base, tuple(config.languages), tuple(config.tasks))
