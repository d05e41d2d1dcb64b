"""Where the gold quality q of a policy's samples varies: the within-prompt variance of log q, split by
q's components (`quality_parts`).

Best-of-n and PPO can only gain where a policy's samples of one prompt differ, and a reward model can
only pick by what it can see. So for every group of components this reports the share of the
within-prompt variance of log q that goes away when that group is frozen at its prompt mean (the rest
of each sample unchanged). Groups:
  facts     coverage of the key facts and list items, distractor values, invented names, numbers and
            topics: visible only against the prompt's facts;
  visible   filler, extra list items, missing politeness, length over the budget, missing end mark,
            wrong-language words, repetition: visible in the answer itself or against the request.
Shares need not add to 1: q multiplies its factors, so the groups interact.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from xlra.data.testbed.quality import q_from_parts, quality_parts
from xlra.data.testbed.tasks import Example

GROUPS = {"facts": ("coverage", "p_distractor", "p_invented"),
          "visible": ("p_filler", "p_extra_item", "p_impolite", "p_length", "p_no_end", "language", "repetition")}
COMPONENTS = GROUPS["facts"] + GROUPS["visible"]
_EPS = 1e-9  # q is 0 only for an empty answer


def _log_q(parts: dict) -> float:
  return math.log(max(q_from_parts(parts), _EPS))


def _within_var(values: list[np.ndarray]) -> float:
  """Mean over prompts of the (biased) variance among a prompt's samples."""
  return float(np.mean([v.var() for v in values]))


def q_variance(examples: Sequence[Example], samples: Sequence[Sequence[str]]) -> dict:
  """{"within_var": mean within-prompt variance of log q, "share": {group or component: share of it
  removed by freezing that group at its prompt mean}, "n_prompts", "n_samples"}."""
  table = [[quality_parts(ex, s) for s in outs] for ex, outs in zip(examples, samples) if len(outs) > 1]
  if not table:
    return {"within_var": 0.0, "share": {}, "n_prompts": 0, "n_samples": 0}
  total = _within_var([np.array([_log_q(p) for p in prompt]) for prompt in table])
  share = {}
  for name, frozen in {**GROUPS, **{c: (c,) for c in COMPONENTS}}.items():
    logs = []
    for prompt in table:
      means = {c: float(np.mean([p[c] for p in prompt])) for c in frozen}
      logs.append(np.array([_log_q({**p, **means}) for p in prompt]))
    share[name] = 1.0 - _within_var(logs) / total if total > 0 else 0.0
  return {"within_var": total, "share": share, "n_prompts": len(table), "n_samples": sum(map(len, table))}
