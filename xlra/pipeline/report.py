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

from xlra.data.testbed.corruptions import VISIBLE  # noqa: E402


def _pct(x: float | None) -> str:
  return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def _cell(c: dict[str, Any] | None) -> str:
  return "" if c is None else f"{_pct(c['win_rate'])} [{_pct(c['ci_low'])}, {_pct(c['ci_high'])}] n={c['n']}"


def _failed(c: dict[str, Any]) -> str:
  """" (k failed: kind n, ...)" when some of a cell's judgements failed (they are not in its win rate)."""
  kinds = c.get("failures_by_kind") or {}
  if not c.get("failures"):
    return ""
  return f" ({c['failures']} failed" + (": " + ", ".join(f"{k} {n}" for k, n in kinds.items()) if kinds else "") + ")"


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
      cells.append(f"{mark}{_cell(c)}{sig}{_failed(c)}")
    lines.append(f"| **{s}** | " + " | ".join(cells) + " |")
  ok = lambda c: math.isfinite(c["win_rate"])  # a cell whose judgements all failed has no win rate
  cross = [grid[s][t]["win_rate"] for s in grid for t in grid[s] if s != t and ok(grid[s][t])]
  mono = [grid[s][t]["win_rate"] for s in grid for t in grid[s] if s == t and ok(grid[s][t])]
  best = []
  for t in targets:
    col = {s: grid[s][t]["win_rate"] for s in sources if t in grid.get(s, {}) and ok(grid[s][t])}
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




CONTROLS = (("placebo", "placebo RM"), ("shortest", "shortest-of-n"), ("longest", "longest-of-n"),
            ("oracle", "oracle (best q)"))


def controls_table(controls: dict[str, dict[str, dict]], bon: dict[str, dict[str, dict]], sources: list[str],
                   targets: list[str]) -> str:
  """Per target: the placebo RM and the length rules (what an RM must beat), every RM's best-of-n, and
  the oracle pick (the ceiling), with a verdict line on each comparison."""
  present = [(k, label) for k, label in CONTROLS if any(k in controls.get(t, {}) for t in targets)]
  lower, ceiling = [n for n in present if n[0] != "oracle"], [n for n in present if n[0] == "oracle"]
  head = ["target", *(label for _, label in lower), *(f"RM {s}" for s in sources), *(label for _, label in ceiling)]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  beats_length, rms, placebo_ok, under_oracle = [], 0, [], []
  for t in targets:
    ctl = controls.get(t, {})
    rm_cells = [bon.get(s, {}).get(t) for s in sources]
    row = [_cell(ctl.get(k)) for k, _ in lower]
    row += [("*" if s == t else "") + _cell(c) for s, c in zip(sources, rm_cells)]
    row += [_cell(ctl.get(k)) for k, _ in ceiling]
    lines.append(f"| **{t}** | " + " | ".join(row) + " |")
    length = max((ctl[k]["win_rate"] for k in ("shortest", "longest") if k in ctl), default=None)
    for s, c in zip(sources, rm_cells):
      if c is not None and s != t:
        rms += 1
        if length is not None and c["win_rate"] > length:
          beats_length.append(f"{s}->{t}")
    if "placebo" in ctl:
      placebo_ok.append(ctl["placebo"]["ci_low"] <= 0.5 <= ctl["placebo"]["ci_high"])
    if "oracle" in ctl:
      under_oracle.append(all(c is None or c["win_rate"] <= ctl["oracle"]["win_rate"] for c in rm_cells))
  lines += ["", f"Cross-lingual RMs above the better length rule of their target: {len(beats_length)} of {rms}"
                f"{' (' + ', '.join(beats_length) + ')' if beats_length else ''}."]
  if placebo_ok:
    lines.append(f"Placebo RM intervals that include 50%: {sum(placebo_ok)} of {len(placebo_ok)} targets "
                 "(a placebo away from 50% means the win rates measure something other than what the labels teach).")
  if under_oracle:
    lines.append(f"Targets where the oracle pick is at or above every RM: {sum(under_oracle)} of {len(under_oracle)}.")
  return "\n".join(lines)


def variance_table(meta: dict[str, dict], controls: dict[str, dict[str, dict]], bon: dict[str, dict[str, dict]],
                   sources: list[str], targets: list[str]) -> str:
  """Per target: where log q varies among the SFT policy's samples of a prompt (share of the within-prompt
  variance removed by freezing q's fact components or its visible ones), and the mean gold q of a single
  sample, of the RMs' picks and of the oracle pick."""
  lines = ["| target | var(log q) within prompt | facts share | visible share | q: single sample | "
           "q: same-language RM pick | q: cross-lingual RM picks (mean) | q: oracle pick |", "|" + "---|" * 8]
  for t in targets:
    m, var = meta.get(t, {}), meta.get(t, {}).get("q_variance", {})
    share = var.get("share", {})
    same = bon.get(t, {}).get(t, {}).get("gold_q")
    cross = [bon[s][t]["gold_q"] for s in sources if s != t and t in bon.get(s, {})]
    oracle = controls.get(t, {}).get("oracle", {}).get("gold_q")
    fmt = lambda x: "–" if x is None else f"{x:.3f}"
    lines.append(f"| **{t}** | {fmt(var.get('within_var'))} | {_pct(share.get('facts'))}% | "
                 f"{_pct(share.get('visible'))}% | {fmt(m.get('gold_q_sample'))} | {fmt(same)} | "
                 f"{fmt(float(np.mean(cross)) if cross else None)} | {fmt(oracle)} |")
  comps = [c for c in next((meta[t]["q_variance"]["share"] for t in targets if "q_variance" in meta.get(t, {})), {})
           if c not in ("facts", "visible")]
  if comps:
    lines += ["", "Share (%) of the within-prompt variance of log q removed by freezing one component:", "",
              "| target | " + " | ".join(comps) + " |", "|" + "---|" * (len(comps) + 1)]
    for t in targets:
      share = meta.get(t, {}).get("q_variance", {}).get("share", {})
      lines.append(f"| **{t}** | " + " | ".join(_pct(share.get(c)) for c in comps) + " |")
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
                "truncation, filler, no_end (no final punctuation), fragment (a sentence in another language); "
                "against the request: impolite, extra_item; only against the prompt's facts: drop, swap (another "
                "event's value), hallucinate (a value the prompt does not have).")


def error_table(by_error: dict[str, dict[str, float]], n_by_error: dict[str, int], sources: list[str],
                by_pair: dict[str, dict[str, dict[str, float]]] | None = None) -> str:
  """RM accuracy (%) per error kind: rows are RMs (pooled over targets, then each source -> target pair
  when `by_pair` is given), columns error kinds, last row the probe counts (all targets)."""
  kinds = list(n_by_error)
  lines = ["| RM \\ error | " + " | ".join(kinds) + " |", "|" + "---|" * (len(kinds) + 1)]
  for s in sources:
    lines.append(f"| **{s}** | " + " | ".join(_pct(by_error.get(s, {}).get(k)) for k in kinds) + " |")
  for s in sources if by_pair else ():
    for t, row in by_pair.get(s, {}).items():
      lines.append(f"| {s}->{t}{' *' if s == t else ''} | " + " | ".join(_pct(row.get(k)) for k in kinds) + " |")
  lines.append("| _probes_ | " + " | ".join(str(n_by_error[k]) for k in kinds) + " |")
  if by_pair:
    def mean(cross: bool, visible: bool) -> str:
      vals = [v for s, row in by_pair.items() for t, acc in row.items() if (s != t) == cross
              for k, v in acc.items() if (k in VISIBLE) == visible]
      return _pct(float(np.mean(vals)) if vals else None)
    lines += ["", f"Mean over the kinds visible in the answer or against the request: own language {mean(False, True)}%, "
                  f"cross-lingual {mean(True, True)}%; over the fact kinds: own language {mean(False, False)}%, "
                  f"cross-lingual {mean(True, False)}%."]
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
         "(PPO: one sample of the PPO policy per prompt at the same temperature, against the same samples; "
         "greedy against greedy under KL).", ""]

  def grid_section(key: str, title: str, png: str) -> None:
    grid = results.get(key) or {}
    if not grid:
      return
    out.extend([f"## {title}", "", "Win rate (%) against the target-language SFT model, 95% bootstrap interval.", "",
                winrate_table(grid, sources, targets), "", f"![{title}]({png})", ""])
    heatmap({s: {t: c["win_rate"] for t, c in row.items()} for s, row in grid.items()}, sources, targets,
            f"{title}: win rate vs target SFT", os.path.join(workdir, png))

  grid_section("bon", "Best-of-n", "bon_winrate.png")
  cut = {t: m["all_cut_off"] for t, m in (results.get("bon_meta") or {}).items() if m.get("all_cut_off")}
  if cut:
    out.extend([f"Prompts whose every candidate was cut off (no end of sequence within the token budget; the RM "
                f"chose by its raw score among them): {', '.join(f'{t}: {n}' for t, n in cut.items())}.", ""])
  if results.get("controls"):
    out.extend(["## Controls: placebo, length rules, oracle ceiling", "",
                "Best-of-n win rate (%) against the target SFT model [95% CI], on the same candidates: a *placebo* RM "
                "(the target's RM data, same steps, labels shuffled) must sit at 50%; *shortest-of-n* and "
                "*longest-of-n* choose by length alone (the rules an RM must beat); the *oracle* picks the candidate "
                "with the best gold q (the ceiling).", "",
                controls_table(results["controls"], results.get("bon") or {}, sources, targets), ""])
  if any("q_variance" in m for m in (results.get("bon_meta") or {}).values()):
    out.extend(["## Where the SFT policy's samples differ", "",
                "What best-of-n can choose by: the within-prompt variance of log q among the target SFT policy's "
                "n candidates, and the share of it that goes away when q's *fact* components (key facts, list "
                "items, distractor and invented values: visible only against the prompt) or its *visible* ones "
                "(filler, extra items, politeness, length, end mark, language, repetition) are frozen at the "
                "prompt's mean (`xlra.data.testbed.q_variance`).", "",
                variance_table(results["bon_meta"], results.get("controls") or {}, results.get("bon") or {},
                               sources, targets), ""])
  grid_section("ppo", "PPO", "ppo_winrate.png")

  if results.get("baselines"):
    out.extend(["## Baselines", "", "| baseline | target | win rate vs target SFT [95% CI] | n |", "|---|---|---|---|"])
    for name, row in results["baselines"].items():
      for t, c in row.items():
        out.append(f"| {name} | {t} | {_pct(c['win_rate'])} [{_pct(c['ci_low'])}, {_pct(c['ci_high'])}]{_failed(c)} | "
                   f"{c['n']} |")
    out.append("")

  if results.get("rm_accuracy"):
    base = results.get("rm_baselines") or {}
    out.extend(["## Reward-model accuracy (generalizability matrix)", "",
                "Pairwise accuracy (%) of each source-language RM on each language's validation pairs.", "",
                matrix_table(results["rm_accuracy"], sources, targets, base), "", "![RM accuracy](rm_accuracy.png)", ""])
    if results.get("rm_accuracy_vs_gold"):
      gold = results["rm_accuracy_vs_gold"]
      cross = [v for s, row in gold.items() for t, v in row.items() if s != t]
      own = [row[s] for s, row in gold.items() if s in row]
      out.extend(["Against the gold order (the validation pairs whose gold q differ, the higher-q output first: what "
                  "the annotators' labels approximate):", "", matrix_table(gold, sources, targets), "",
                  f"Own language mean {_pct(float(np.mean(own)) if own else None)}%, cross-lingual mean "
                  f"{_pct(float(np.mean(cross)) if cross else None)}%.", ""])
    heatmap(results["rm_accuracy"], sources, targets, "RM accuracy", os.path.join(workdir, "rm_accuracy.png"),
            center=0.75)
  if results.get("rm_accuracy_by_error"):
    out.extend(["## Reward-model accuracy by error type", "", ERROR_LEGEND, "",
                error_table(results["rm_accuracy_by_error"], results["n_by_error"], sources,
                            results.get("rm_accuracy_by_error_pair")), ""])

  if results.get("kl"):
    kl = results["kl"]
    out.extend(["## KL to the SFT policy", ""])
    if "bon_bound" in kl:
      out.append(f"Best-of-n analytic bound log n - (n-1)/n = {kl['bon_bound']:.3f} nats.")
    for pair, v in (kl.get("ppo") or {}).items():
      s, t = pair.split("-")
      greedy = ((results.get("ppo") or {}).get(s, {}).get(t) or {}).get("greedy")
      out.append(f"- PPO {pair}: KL {v:.3f} nats per response (mean of the last iterations' k1 estimates)"
                 + (f"; greedy against the SFT model's greedy output: {_cell(greedy)}{_failed(greedy)}" if greedy
                    else ""))
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
