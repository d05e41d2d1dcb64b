"""Gold quality q(example, output) in [0, 1]: the testbed's ground truth (the oracle judge, the source of
the simulated annotators' preferences, and the measure best-of-n and PPO are evaluated by).

    q = content(coverage - penalties) * (0.1 + 0.9 * language) * (1 - repetition)

content     min(x, 1) for x >= 0.01; below, 0.01 * exp(x - 0.01): positive, continuous and increasing, so
            outputs that are wrong in more ways still rank below ones that are wrong in fewer (a small
            policy's samples often are; a clip at 0 would make them all ties for the oracle judge).

coverage    share of the key facts stated (whole-word match of an accepted surface form); in dialog the
            requested number of listed topics counts as k more facts.
penalties   0.25 per distractor value used (names, numbers, topics from the other events), 0.2 per invented
            name or number (one that is not in the input), 0.1 per filler sentence, 0.1 per topic beyond
            the k requested, 0.15 for a missing politeness phrase when the request asked for politeness,
            0.05 per word over the length budget (at most 0.5), 0.05 for a missing final punctuation mark.
language    share of the output's language-identifying words that belong to the example's language
            (words unique to one testbed language; names and numbers do not count). No such word: 0.
repetition  share of repeated word trigrams.

q reads only the example and the string, so it scores arbitrary model samples; it is a few dozen
microseconds a call (regex tokenisation, set and substring look-ups).
"""

from __future__ import annotations

import functools
import math

from xlra.data.testbed import langs
from xlra.data.testbed.langs.base import TOKEN_RE, fold, joined, tokens
from xlra.data.testbed.seeding import Stream
from xlra.data.testbed.tasks import TASKS, Example, generate

MAX_CHARS = 4000  # longer outputs are scored on their prefix (they are far over budget anyway)
W_DISTRACTOR, W_INVENTED, W_FILLER, W_EXTRA_ITEM, W_IMPOLITE = 0.25, 0.2, 0.1, 0.1, 0.15
W_PER_WORD_OVER, MAX_LENGTH_PENALTY, W_NO_END = 0.05, 0.5, 0.05
FLOOR = 0.01  # below this content score, q decays exponentially instead of stopping at 0


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
  """Coverage minus penalties mapped into (0, 1]: linear above FLOOR, exponential decay below it."""
  return min(1.0, x) if x >= FLOOR else FLOOR * math.exp(x - FLOOR)


def quality_parts(ex: Example, output: str) -> dict:
  """The components of q (see the module docstring) and q itself, for diagnostics and reports."""
  out = output[:MAX_CHARS]
  toks = TOKEN_RE.findall(fold(out))
  if not toks:
    return {"q": 0.0, "coverage": 0.0, "penalty": 0.0, "language": 0.0, "repetition": 0.0}
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
  penalty = (W_DISTRACTOR * sum(f in j for f in idx["distractors"])
             + W_INVENTED * (len(invented) + invented_topics)
             + W_FILLER * sum(j.count(f) for f in idx["filler"])
             + W_EXTRA_ITEM * max(0, n_items - k)
             + min(MAX_LENGTH_PENALTY, W_PER_WORD_OVER * max(0, n_words - ex.constraints["budget"]))
             + (W_NO_END if not out.rstrip().endswith((".", "!", "?")) else 0.0))
  if ex.constraints["polite"] and not any(j.startswith(p) for p in idx["polite"]):
    penalty += W_IMPOLITE

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
  q = content(coverage - penalty) * (0.1 + 0.9 * language) * (1.0 - repetition)
  return {"q": q, "coverage": coverage, "penalty": penalty, "language": language, "repetition": repetition}


def quality(ex: Example, output: str) -> float:
  """Gold quality of `output` as a response to `ex`, in [0, 1]."""
  return quality_parts(ex, output)["q"]
