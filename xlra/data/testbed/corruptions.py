"""Candidate responses for preference data: controlled corruptions of the reference spec, plus
q-neutral surface variation (word order, which polite phrase, unrequested politeness, unrequested
correct facts) so that the simulated annotators' biases have something to act on.

A corruption maps (example, spec, stream) to a new spec, or None where it does not apply (nothing left
to drop, no distractor value for that slot). Every corruption lowers q below the reference's (tested).
"""

from __future__ import annotations

import copy
import dataclasses

from xlra.data.testbed import langs, world
from xlra.data.testbed.langs.base import OPTIONAL_SLOTS
from xlra.data.testbed.seeding import Stream
from xlra.data.testbed.tasks import DISTRACTOR_SLOTS, Example, reference_spec, render

KINDS = ("drop", "swap", "hallucinate", "wrong_language", "repetition", "truncation", "filler", "no_end",
         "fragment")
DIALOG_KINDS = ("impolite", "extra_item")
# Relative frequency of each kind among sampled corruptions: about two thirds of them flaws that show in
# the answer or against the request, as in what SFT policies get wrong; fact errors (drop, swap,
# hallucinate) the rest. Another language is rare in real preference data (it is collected in one
# language), and an RM that learns "words of another language are bad" reads every target-language
# answer through that one feature, so wrong_language and fragment are rare here too.
WEIGHTS = {"drop": 0.7, "swap": 0.5, "hallucinate": 0.5, "wrong_language": 0.1, "repetition": 0.6,
           "truncation": 0.6, "filler": 0.8, "no_end": 0.8, "fragment": 0.1, "impolite": 0.6, "extra_item": 0.6}
# Flaws that show in the answer itself or against simple features of the request (SFT_FLAWS' kinds):
# what a reward model can see without checking a fact against the prompt.
VISIBLE = ("wrong_language", "repetition", "truncation", "filler", "no_end", "fragment", "impolite", "extra_item")


def _stated(ex: Example, spec: dict) -> list[str]:
  return ["actor", *[s for s in spec["include"] if s in OPTIONAL_SLOTS]]


def _distractor_values(ex: Example) -> dict[str, list]:
  """slot -> values of other events that the prompt mentions."""
  out: dict[str, list] = {}
  for plan in ex.world["context"]:
    if plan[0] == "dis":
      d = ex.world["distractors"][plan[2]]
      for s in DISTRACTOR_SLOTS[plan[1]]:
        out.setdefault(s, []).append(d[s])
    elif plan[0] == "alt":
      out.setdefault("actor", []).append(ex.world["distractors"][plan[1]]["actor"])
  return out


def drop(ex: Example, spec: dict, rng: Stream) -> dict | None:
  options = [("slot", s) for s in spec["include"]] + [("item", i) for i in spec["items"]]
  if not options:
    return None
  what, x = rng.choice(options)
  out = copy.deepcopy(spec)
  (out["include"] if what == "slot" else out["items"]).remove(x)
  return out


def swap(ex: Example, spec: dict, rng: Stream) -> dict | None:
  values = _distractor_values(ex)
  options = [("slot", s) for s in _stated(ex, spec) if s in values]
  if spec["items"] and any(plan[0] == "alt" for plan in ex.world["context"]):
    options.append(("item", None))  # the other person's topics are in the prompt
  if not options:
    return None
  what, slot = rng.choice(options)
  out = copy.deepcopy(spec)
  if what == "slot":
    out["overrides"][slot] = rng.choice(values[slot])
  else:
    out["items"][rng.integers(len(out["items"]))] = rng.choice(ex.world["alt_items"])
  return out


def hallucinate(ex: Example, spec: dict, rng: Stream) -> dict | None:
  w = ex.world
  options = [("slot", s) for s in _stated(ex, spec)] + ([("item", None)] if spec["items"] else [])
  what, slot = rng.choice(options)
  out = copy.deepcopy(spec)
  if what == "slot":
    avoid = [e[slot] for e in (w["event"], *w["distractors"])]
    out["overrides"][slot] = world.sample_value(rng, slot, ex.lang, avoid)
  else:
    unseen = [t for t in range(12) if t not in w["items"] and t not in w.get("alt_items", [])]
    out["items"][rng.integers(len(out["items"]))] = rng.choice(unseen)
  return out


def wrong_language(ex: Example, spec: dict, rng: Stream) -> dict | None:
  out = copy.deepcopy(spec)
  out["lang"] = rng.choice([c for c in langs.CODES if c != ex.lang])
  return out


def repetition(ex: Example, spec: dict, rng: Stream) -> dict | None:
  return {**copy.deepcopy(spec), "repeat": 1 + rng.integers(2)}


def truncation(ex: Example, spec: dict, rng: Stream) -> dict | None:
  """Cut at 25-75% of the words: the final punctuation always goes, usually a fact too."""
  return {**copy.deepcopy(spec), "truncate": 0.25 + 0.5 * rng.random()}


def filler(ex: Example, spec: dict, rng: Stream) -> dict | None:
  out = copy.deepcopy(spec)
  lx = langs.get(ex.lang)
  out["filler"].append([rng.integers(len(lx.filler)), rng.choice(("start", "end"))])
  return out


def no_end(ex: Example, spec: dict, rng: Stream) -> dict | None:
  """The final punctuation mark left off (a language-independent token)."""
  return None if spec.get("no_end") else {**copy.deepcopy(spec), "no_end": True}


def fragment(ex: Example, spec: dict, rng: Stream) -> dict | None:
  """A sentence in another testbed language appended (code-switching a multilingual model slips into)."""
  other = langs.get(rng.choice([c for c in langs.CODES if c != ex.lang]))
  return {**copy.deepcopy(spec), "fragment": [other.code, rng.integers(len(other.background))]}


def impolite(ex: Example, spec: dict, rng: Stream) -> dict | None:
  if not ex.constraints["polite"] or spec["polite"] is None:
    return None
  return {**copy.deepcopy(spec), "polite": None}


def extra_item(ex: Example, spec: dict, rng: Stream) -> dict | None:
  unused = [i for i in ex.world.get("items", []) if i not in spec["items"]]
  if not spec["items"] or not unused:
    return None
  out = copy.deepcopy(spec)
  out["items"] = sorted(out["items"] + [rng.choice(unused)])
  return out


CORRUPTIONS = {"drop": drop, "swap": swap, "hallucinate": hallucinate, "wrong_language": wrong_language,
               "repetition": repetition, "truncation": truncation, "filler": filler, "no_end": no_end,
               "fragment": fragment, "impolite": impolite, "extra_item": extra_item}


def kinds_for(ex: Example) -> tuple[str, ...]:
  return KINDS + (DIALOG_KINDS if ex.task == "dialog" else ())


def corrupt(ex: Example, kind: str, rng: Stream, spec: dict | None = None) -> dict | None:
  """Applies one corruption to `spec` (default: the reference's)."""
  if kind not in CORRUPTIONS:
    raise ValueError(f"unknown corruption {kind!r}; known: {', '.join(CORRUPTIONS)}")
  return CORRUPTIONS[kind](ex, copy.deepcopy(spec or reference_spec(ex)), rng)


def vary(ex: Example, rng: Stream) -> dict:
  """The reference spec with q-neutral surface changes: word order, the polite phrase used, politeness
  nobody asked for, and in dialog correct facts nobody asked for (longer answers)."""
  spec = reference_spec(ex)
  if "date" in spec["include"]:
    spec["variant"] = rng.integers(2)
  if spec["polite"] is not None:
    spec["polite"] = rng.integers(3)
  elif rng.random() < 0.25:
    spec["polite"] = rng.integers(3)
  if ex.task == "dialog" and rng.random() < 0.25:
    extra = [s for s in OPTIONAL_SLOTS if s not in spec["include"]]
    spec["include"] = sorted(spec["include"] + rng.sample(extra, 1 + rng.integers(len(extra))),
                             key=OPTIONAL_SLOTS.index)
  return spec


def sample_candidate(ex: Example, rng: Stream, p_clean: float = 0.25, max_corruptions: int = 3
                     ) -> tuple[str, dict, list[str]]:
  """A candidate response: a varied reference (probability p_clean) or one with 1..max_corruptions
  corruptions of random kinds. Returns (text, spec, kinds applied)."""
  spec, applied = vary(ex, rng), []
  if rng.random() >= p_clean:
    n = 1 + rng.integers(max_corruptions)
    kinds = list(kinds_for(ex))
    weights = [WEIGHTS[k] for k in kinds]
    total = sum(weights)
    for _ in range(n):
      u, acc = rng.random() * total, 0.0
      for kind, wt in zip(kinds, weights):
        acc += wt
        if u < acc:
          break
      new = CORRUPTIONS[kind](ex, spec, rng)
      if new is not None:
        spec = new
        applied.append(kind)
  return render(ex, spec), spec, applied


def flawed_reference(ex: Example, rates: dict[str, float], seed: int) -> Example:
  """`ex` with its reference rewritten as an SFT target drawn from a flaw mixture: each flaw kind of
  `rates` (kind -> probability) applied independently, where it applies (impolite only when politeness
  was asked for). Real SFT corpora carry such flaws; an SFT policy trained on them reproduces them at
  random per sample, which is what best-of-n and PPO can remove. Keyed by the example id."""
  unknown = set(rates) - set(CORRUPTIONS)
  if unknown:
    raise ValueError(f"config.data.sft_flaws has unknown kinds {sorted(unknown)}; known: {', '.join(CORRUPTIONS)}")
  rng = Stream(seed, "sft-flaws", ex.id)
  spec = reference_spec(ex)
  for kind, rate in rates.items():
    if rate > 0 and rng.random() < rate:
      spec = CORRUPTIONS[kind](ex, spec, rng) or spec
  return dataclasses.replace(ex, reference=render(ex, spec))
