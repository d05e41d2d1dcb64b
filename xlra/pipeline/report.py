"""The pipeline's report: `report.md` (tables shaped like the paper's) and heatmap PNGs from results.json.

Tables: rows are the RM's source language, columns the target language; a cell is the win rate
against the target SFT model with its 95% interval; the monolingual diagonal is marked with *.
"""

from __future__ import annotations

import math
import os
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _pct(x: float | None) -> str:
  return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def winrate_table(grid: dict[str, dict[str, dict[str, Any]]], sources: list[str], targets: list[str]) -> str:
  """Markdown table of win rates with intervals, the cross-lingual mean and the best source per target."""
  head = "| RM source \\ target | " + " | ".join(targets) + " |"
  lines = [head, "|" + "---|" * (len(targets) + 1)]
  for s in sources:
    cells = []
    for t in targets:
      c = grid.get(s, {}).get(t)
      if c is None:
        cells.append("")
        continue
      mark = "*" if s == t else ""
      sig = "" if c["ci_low"] > 0.5 or c["ci_high"] < 0.5 else " ~"  # ~ : interval includes 50%
      cells.append(f"{mark}{_pct(c['win_rate'])} [{_pct(c['ci_low'])}, {_pct(c['ci_high'])}]{sig}")
    lines.append(f"| **{s}** | " + " | ".join(cells) + " |")
  cross = [grid[s][t]["win_rate"] for s in grid for t in grid[s] if s != t]
  mono = [grid[s][t]["win_rate"] for s in grid for t in grid[s] if s == t]
  best = []
  for t in targets:
    col = {s: grid[s][t]["win_rate"] for s in sources if t in grid.get(s, {})}
    if col:
      b = max(col, key=col.get)
      best.append(f"{t}: {b}" + (" (monolingual)" if b == t else ""))
  lines.append("")
  lines.append(f"Cross-lingual mean: **{_pct(float(np.mean(cross)) if cross else None)}%** over {len(cross)} pairs; "
               f"monolingual mean: {_pct(float(np.mean(mono)) if mono else None)}%. "
               f"Best source per target: {', '.join(best)}.")
  above = [f"{s}->{t}" for s in grid for t, c in grid[s].items() if s != t and c["ci_low"] > 0.5]
  below = [f"{s}->{t}" for s in grid for t, c in grid[s].items() if s != t and c["ci_high"] < 0.5]
  named = lambda pairs: f" ({', '.join(pairs)})" if pairs else ""
  lines.append(f"Cross-lingual pairs whose interval excludes 50%: {len(above)} of {len(cross)} above it{named(above)}, "
               f"{len(below)} below it{named(below)}; the rest are undecided at this many prompts.")
  lines.append("`*` monolingual (source = target); `~` the 95% interval includes 50%.")
  return "\n".join(lines)


def matrix_table(matrix: dict[str, dict[str, float]], sources: list[str], targets: list[str],
                 extra_rows: dict[str, dict[str, float]] | None = None) -> str:
  lines = ["| RM \\ eval language | " + " | ".join(targets) + " |", "|" + "---|" * (len(targets) + 1)]
  for s in sources:
    row = matrix.get(s, {})
    lines.append(f"| **{s}** | " + " | ".join(("*" if s == t else "") + _pct(row.get(t)) for t in targets) + " |")
  for name, row in (extra_rows or {}).items():
    lines.append(f"| _{name}_ | " + " | ".join(_pct(row.get(t)) for t in targets) + " |")
  return "\n".join(lines)


ERROR_LEGEND = ("Each cell: the share of correct answers the RM scores above the same answer with one error of "
                "that kind (`xlra.data.testbed.probe_pairs`). Seen in the answer alone: wrong_language, repetition, "
                "truncation, filler; against the request: drop, impolite, extra_item; only against the prompt's "
                "facts: swap (another event's value), hallucinate (a value the prompt does not have).")


def error_table(by_error: dict[str, dict[str, float]], n_by_error: dict[str, int], sources: list[str]) -> str:
  """RM accuracy (%) per error kind: rows are RMs, columns error kinds, last row the probe counts."""
  kinds = list(n_by_error)
  lines = ["| RM \\ error | " + " | ".join(kinds) + " |", "|" + "---|" * (len(kinds) + 1)]
  for s in sources:
    lines.append(f"| **{s}** | " + " | ".join(_pct(by_error.get(s, {}).get(k)) for k in kinds) + " |")
  lines.append("| _probes_ | " + " | ".join(str(n_by_error[k]) for k in kinds) + " |")
  return "\n".join(lines)


def heatmap(values: dict[str, dict[str, float]], sources: list[str], targets: list[str], title: str,
            path: str, center: float = 0.5) -> None:
  """Source x target heatmap with the value printed in each cell; NaN where a pair was not run."""
  arr = np.array([[values.get(s, {}).get(t, np.nan) for t in targets] for s in sources], dtype=float)
  fig, ax = plt.subplots(figsize=(1.1 * len(targets) + 2, 0.9 * len(sources) + 1.5))
  span = max(np.nanmax(np.abs(arr - center)) if np.isfinite(arr).any() else 0.1, 0.05)
  im = ax.imshow(arr, cmap="RdBu", vmin=center - span, vmax=center + span)
  ax.set_xticks(range(len(targets)), targets)
  ax.set_yticks(range(len(sources)), sources)
  ax.set_xlabel("target language")
  ax.set_ylabel("RM source language")
  for i in range(len(sources)):
    for j in range(len(targets)):
      if np.isfinite(arr[i, j]):
        ax.text(j, i, f"{100 * arr[i, j]:.0f}", ha="center", va="center",
                fontweight="bold" if sources[i] == targets[j] else "normal")
  ax.set_title(title)
  fig.colorbar(im, ax=ax, fraction=0.046)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def write_report(results: dict[str, Any], workdir: str) -> str:
  """Writes report.md and the PNGs into workdir; returns the report path."""
  cfg = results["config"]
  langs = list(cfg["languages"])
  sources, targets = list(cfg.get("sources", langs)), langs
  out = [f"# xlra report: cross-lingual reward model transfer", "",
         f"Judge: **{results.get('judge', '?')}**; languages: {', '.join(langs)}; "
         f"best-of-n n={cfg.get('bon_n', '?')}; evaluation prompts per language: {results.get('n_eval', '?')}, "
         f"each judged against {cfg.get('bon', {}).get('baseline_samples', 1)} sample(s) of the target SFT model "
         "(PPO: greedy against greedy).", ""]

  def grid_section(key: str, title: str, png: str) -> None:
    grid = results.get(key) or {}
    if not grid:
      return
    out.extend([f"## {title}", "", "Win rate (%) against the target-language SFT model, 95% bootstrap interval.", "",
                winrate_table(grid, sources, targets), "", f"![{title}]({png})", ""])
    heatmap({s: {t: c["win_rate"] for t, c in row.items()} for s, row in grid.items()}, sources, targets,
            f"{title}: win rate vs target SFT", os.path.join(workdir, png))

  grid_section("bon", "Best-of-n", "bon_winrate.png")
  grid_section("ppo", "PPO", "ppo_winrate.png")

  if results.get("baselines"):
    out.extend(["## Baselines", "", "| baseline | target | win rate vs target SFT [95% CI] | n |", "|---|---|---|---|"])
    for name, row in results["baselines"].items():
      for t, c in row.items():
        out.append(f"| {name} | {t} | {_pct(c['win_rate'])} [{_pct(c['ci_low'])}, {_pct(c['ci_high'])}] | {c['n']} |")
    out.append("")

  if results.get("rm_accuracy"):
    base = results.get("rm_baselines") or {}
    out.extend(["## Reward-model accuracy (generalizability matrix)", "",
                "Pairwise accuracy (%) of each source-language RM on each language's validation pairs.", "",
                matrix_table(results["rm_accuracy"], sources, targets, base), "", "![RM accuracy](rm_accuracy.png)", ""])
    heatmap(results["rm_accuracy"], sources, targets, "RM accuracy", os.path.join(workdir, "rm_accuracy.png"),
            center=0.75)
  if results.get("rm_accuracy_by_error"):
    out.extend(["## Reward-model accuracy by error type", "", ERROR_LEGEND, "",
                error_table(results["rm_accuracy_by_error"], results["n_by_error"], sources), ""])

  if results.get("kl"):
    kl = results["kl"]
    out.extend(["## KL to the SFT policy", ""])
    if "bon_bound" in kl:
      out.append(f"Best-of-n analytic bound log n - (n-1)/n = {kl['bon_bound']:.3f} nats.")
    for pair, v in (kl.get("ppo") or {}).items():
      out.append(f"- PPO {pair}: KL {v:.3f} nats per response (mean of the last iterations' k1 estimates)")
    out.append("")
    if os.path.exists(os.path.join(workdir, "ppo_curves.png")):
      out.extend(["PPO curves (rollout RM reward, gold q, KL, length, the annotators' bias, eval win rate):", "",
                  "![PPO curves](ppo_curves.png)", ""])

  if results.get("timing"):
    total = sum(results["timing"].values())
    out.extend(["## Stage timings", "", "| stage | seconds | share |", "|---|---|---|"])
    for k, v in results["timing"].items():
      out.append(f"| {k} | {v:.1f} | {100 * v / max(total, 1e-9):.0f}% |")
    out.extend([f"| **total** | {total:.1f} | |", ""])

  path = os.path.join(workdir, "report.md")
  with open(path + ".tmp", "w") as f:
    f.write("\n".join(out))
  os.replace(path + ".tmp", path)
  return path
