"""Checks what `xlra pipeline --config=configs/pipeline.py:ci` wrote: report.md, and a results.json whose every
best-of-n and PPO cell holds a win rate inside its interval. Usage: python .ci/check_results.py WORKDIR"""

from __future__ import annotations

import json
import math
import os
import sys


def main(workdir: str) -> int:
  with open(os.path.join(workdir, "results.json")) as f:
    res = json.load(f)
  problems = []
  cells = [(f"bon[{s}][{t}]", c) for s, row in res["bon"].items() for t, c in row.items()]
  cells += [(f"ppo[{s}][{t}]", c) for s, row in res["ppo"].items() for t, c in row.items()]
  langs = res["config"]["languages"]
  if len(cells) < len(langs) ** 2:
    problems.append(f"{len(cells)} win-rate cells for {len(langs)} languages")
  for name, c in cells:
    w, lo, hi = (c.get(k) for k in ("win_rate", "ci_low", "ci_high"))
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (w, lo, hi)) or not 0 <= lo <= w <= hi <= 1:
      problems.append(f"{name}: win_rate {w} [{lo}, {hi}] is not a rate inside its interval")
    if not c.get("n"):
      problems.append(f"{name}: n = {c.get('n')}")
  for s, row in res["rm_accuracy"].items():
    for t, a in row.items():
      if not 0 <= a <= 1:
        problems.append(f"rm_accuracy[{s}][{t}] = {a}")
  report = os.path.join(workdir, "report.md")
  if not os.path.isfile(report) or "win rate" not in open(report).read().lower():
    problems.append(f"{report} is missing or has no win-rate table")
  for p in problems:
    print(f"results check: {p}", file=sys.stderr)
  print(f"results check: {len(cells)} win-rate cells, {'FAILED' if problems else 'ok'}")
  return 1 if problems else 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1]))
