"""Gold quality q(example, output) in [0, 1]: the testbed's ground truth (the oracle judge, the source of
the simulated annotators' preferences, and the measure best-of-n and PPO are evaluated by).

    q = content(coverage - fact penalties) * form * (0.1 + 0.9 * language) * (1 - repetition)

content     exp(-0.7 * (1 - min(x, 1))): 1 for a faithful answer, positive and increasing in x without a
            floor, so outputs that are wrong in more ways still rank below ones that are wrong in fewer
            (a small policy's samples often are). Every fact stated, none wrong: 1; none stated: 0.50;
            a typical tiny-policy sample with a fifth of the facts and four invented values: 0.33.
coverage    share of the key facts stated (whole-word match of an accepted surface form); in dialog the
            requested number of listed topics counts as k more facts.
fact        0.25 per distractor value used (names, numbers, topics from the other events), 0.2 per invented
penalties   name or number (one that is not in the input) or topic not in the prompt: faithfulness, which
            shows only against the prompt.
form        the flaws that show in the answer or against the request, each a factor: 0.5 per filler
            sentence, 0.5 per topic beyond the k requested, 0.5 for a missing politeness phrase when the
            request asked for politeness, 0.5 for a missing final punctuation mark, and 1 - 0.05 per word
            over the length budget (at least 0.5). One such flaw costs about as much as getting every fact
            wrong: readers and judges, human or LM, punish rambling, an answer that ignores the request or
            one that stops mid-air at once. This is the testbed's choice of world: its tiny RMs cannot
            check a value against the prompt, and these are the flaws an SFT policy reproduces at random,
            so they carry most of what differs between its samples (the pipeline measures how much:
            xlra.data.testbed.q_variance; a real setting has its own balance).
language    share of the output's language-identifying words that belong to the example's language
            (words unique to one testbed language; names and numbers do not count). No such word: 0.
repetition  share of repeated word trigrams.

quality_parts gives every term; each form flaw as its log-penalty p_* = -log(factor), so that
q_from_parts can rebuild q from parts frozen at other values. q reads only the example and the string,
so it scores arbitrary model samples; it is a few dozen microseconds a call (regex tokenisation, set
and substring look-ups).
"""

from __future__ import annotations

import functools
import math

from xlra.data.testbed import langs
from xlra.data.testbed.langs.base import TOKEN_RE, fold, joined, tokens
from xlra.data.testbed.seeding import Stream
from xlra.data.testbed.tasks import TASKS, Example, generate

MAX_CHARS = 4000  # longer outputs are scored on their prefix (they are far over budget anyway)
W_DISTRACTOR, W_INVENTED = 0.25, 0.2  # subtracted from coverage (content)
W_FILLER = W_EXTRA_ITEM = W_IMPOLITE = W_NO_END = 0.5  # each flaw multiplies q by 1 - w
W_PER_WORD_OVER, MAX_LENGTH_PENALTY = 0.05, 0.5
FACT_PENALTIES = ("p_distractor", "p_invented")
FORM_PENALTIES = ("p_filler", "p_extra_item", "p_impolite", "p_length", "p_no_end")  # log-penalties
FACT_WEIGHT = 0.7  # content = exp(-FACT_WEIGHT * (1 - x))


def _is_number(token: str) -> bool:
  return token[0].isdigit()


@functools.cache
def entity_tokens() -> frozenset:
  """Tokens of every name, organisation and city of every language (hallucination candidates)."""
  out = set()
  for lx in langs.LANGUAGES.values():
    texts = [n for n, _ in lx.first_names] + [n for pair in lx.last_names for n in pair]
    texts += [c for pair in lx.cities for c in pair] + list(lx.orgs)
    for t in texts:
      out.update(tokens(t))
  return frozenset(out)


@functools.cache
def language_words() -> dict[str, str]:
  """token -> language, for the words that occur in exactly one language's generated text. Built from a
  fixed sample of examples (prompts, references) and every stock phrase, minus names and numbers."""
  seen: dict[str, set] = {}
  ents = entity_tokens()
  for code, lx in langs.LANGUAGES.items():
    texts = [*lx.topics, *lx.polite, *lx.filler, *lx.background, *lx.months]
    rng = Stream("language-lexicon", code)
    for task in TASKS:
      for i in range(60):
        ex = generate(task, code, rng, f"lexicon-{i}")
        texts += [ex.prompt, ex.reference]
    for t in texts:
      for tok in tokens(t):
        if not _is_number(tok) and tok not in ents:
          seen.setdefault(tok, set()).add(code)
  return {tok: next(iter(codes)) for tok, codes in seen.items() if len(codes) == 1}


def _index(ex: Example) -> dict:
  """Per-example matching tables, computed once and kept on the instance."""
  cached = ex.__dict__.get("_q_index")
  if cached is not None:
    return cached
  lx = langs.get(ex.lang)
  key_forms = {s: [joined(f) for f in forms] for s, forms in ex.facts.items()}
  all_key = {f for forms in key_forms.values() for f in forms}
  items = [joined(t) for t in ex.constraints["items"]]
  distractors = [joined(d) for d in ex.distractors]
  distractors = [d for d in distractors if d not in all_key and not any(d in k for k in all_key)]
  other_topics = [joined(t) for t in lx.topics if joined(t) not in items and joined(t) not in distractors]
  index = {"facts": list(key_forms.values()), "distractors": distractors, "items": items,
           "other_topics": other_topics, "polite": [joined(p) for p in lx.polite],
           "filler": [joined(f) for f in lx.filler]}
  ex.__dict__["_q_index"] = index
  return index


def content(x: float) -> float:
  """Coverage minus fact penalties mapped into (0, 1]: 1 at x >= 1, exponential below, never 0."""
  return math.exp(-FACT_WEIGHT * (1.0 - min(x, 1.0)))


def quality_parts(ex: Example, output: str) -> dict:
  """The components of q (see the module docstring) and q itself, for diagnostics and reports."""
  out = output[:MAX_CHARS]
  toks = TOKEN_RE.findall(fold(out))
  if not toks:
    return {"q": 0.0, "coverage": 0.0, "penalty": 0.0, "form": 1.0, "language": 0.0, "repetition": 0.0,
            **{name: 0.0 for name in FACT_PENALTIES + FORM_PENALTIES}}
  idx = _index(ex)
  j = " " + " ".join(toks) + " "
  hits = sum(any(f in j for f in forms) for forms in idx["facts"])
  k = ex.constraints["k"]
  n_items = sum(f in j for f in idx["items"])
  coverage = (hits + min(n_items, k)) / (len(idx["facts"]) + k)

  ents = entity_tokens()
  inputs = ex.input_tokens
  invented = {t for t in toks if (_is_number(t) or t in ents) and t not in inputs}
  invented_topics = sum(f in j for f in idx["other_topics"])
  n_words = len(out.split())
  log_keep = lambda w, n=1: -n * math.log(1.0 - w)  # the log-penalty of n flaws of weight w
  over = max(0, n_words - ex.constraints["budget"])
  pens = {"p_distractor": W_DISTRACTOR * sum(f in j for f in idx["distractors"]),
          "p_invented": W_INVENTED * (len(invented) + invented_topics),
          "p_filler": log_keep(W_FILLER, sum(j.count(f) for f in idx["filler"])),
          "p_extra_item": log_keep(W_EXTRA_ITEM, max(0, n_items - k)),
          "p_impolite": log_keep(W_IMPOLITE, ex.constraints["polite"] and not any(j.startswith(p)
                                                                                  for p in idx["polite"])),
          "p_length": log_keep(min(MAX_LENGTH_PENALTY, W_PER_WORD_OVER * over)),
          "p_no_end": log_keep(W_NO_END, not out.rstrip().endswith((".", "!", "?")))}

  words = language_words()
  own = other = 0
  for t in toks:
    code = words.get(t)
    if code is not None:
      own += code == ex.lang
      other += code != ex.lang
  language = own / (own + other) if own + other else 0.0

  trigrams = list(zip(toks, toks[1:], toks[2:]))
  repetition = 1.0 - len(set(trigrams)) / len(trigrams) if trigrams else 0.0
  parts = {"coverage": coverage, "language": language, "repetition": repetition, **pens}
  return {"q": q_from_parts(parts), **parts, "penalty": _fact_penalty(parts), "form": _form(parts)}


def _fact_penalty(parts: dict) -> float:
  return sum(parts[p] for p in FACT_PENALTIES)


def _form(parts: dict) -> float:
  return math.exp(-sum(parts[p] for p in FORM_PENALTIES))


def q_from_parts(parts: dict) -> float:
  """q from its terms (quality_parts' coverage, language, repetition and p_* keys)."""
  return (content(parts["coverage"] - _fact_penalty(parts)) * _form(parts) * (0.1 + 0.9 * parts["language"])
          * (1.0 - parts["repetition"]))


def quality(ex: Example, output: str) -> float:
  """Gold quality of `output` as a response to `ex`, in [0, 1]."""
  return quality_parts(ex, output)["q"]
