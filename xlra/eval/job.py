"""`xlra eval`: judge every system's outputs against the baseline's, write per-example judgements, a
summary JSON and a Markdown table.

    xlra eval --config=configs/eval.py:oracle --workdir=DIR

Workdir layout:
  outputs/NAME.jsonl       generated outputs of systems given as checkpoints (xlra.eval.generate)
  judgements/NAME.jsonl    one row per example: id, lang, task, p_a (P(system beats baseline)), error...
  judgements/NAME.meta.json  fingerprint of the inputs and judge; with a matching one, the answered rows
                           are reused and only the failed ones are judged again
  judge_cache.jsonl        the HTTP judge's request cache (a resumed run sends no repeated request)
  summary.json, summary.md win rates with intervals per system and language, failures, agreement

A is always the system, B the baseline. A failed judgement is reported by kind, never scored, and is
not a result: the next run asks it again. A run where a judge's failed share exceeds its
`max_failure_share` writes its rows and summaries, then fails (base.JudgingFailed) saying how many and why.
"""

from __future__ import annotations

import collections
import hashlib
import importlib
import json
import os
from typing import Any

import ml_collections
from absl import logging

from xlra import files
from xlra.eval import winrate
from xlra.eval.judges import base

REQUIRED = ("id", "prompt", "output", "lang")


def read_outputs(path: str, default_task: str) -> dict[tuple[str, str], dict]:
  """Rows of an outputs JSONL keyed by (id, lang); raises on a missing field or a repeated key."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"outputs file {path!r} does not exist")
  rows: dict[tuple[str, str], dict] = {}
  for i, row in enumerate(files.read_jsonl(path), 1):
    missing = [k for k in REQUIRED if not isinstance(row.get(k), str)]
    if missing:
      raise ValueError(f"{path}: row {i} lacks string field(s) {missing} (needs {REQUIRED}, optional 'task')")
    key = (row["id"], row["lang"])
    if key in rows:
      raise ValueError(f"{path}: row {i} repeats id={row['id']!r} lang={row['lang']!r}")
    rows[key] = {**row, "task": row.get("task") or default_task}
  return rows


def read_examples(path: str) -> dict[tuple[str, str], dict]:
  """Testbed examples (Example.to_dict rows) keyed by (id, lang), for the oracle judge."""
  out = {}
  for i, row in enumerate(files.read_jsonl(path), 1):
    if "id" not in row or "lang" not in row:
      raise ValueError(f"{path}: row {i} is not a testbed example (needs 'id' and 'lang')")
    out[(row["id"], row["lang"])] = row
  return out


def _import(spec: str) -> Any:
  module, _, name = spec.partition(":")
  if not name:
    raise ValueError(f"{spec!r}: expected 'module:function'")
  return getattr(importlib.import_module(module), name)


def build_judge(jc: ml_collections.ConfigDict, workdir: str) -> base.Judge | None:
  """The judge a `judge` config block describes (None for kind 'none')."""
  if jc.kind == "none":
    return None
  if jc.kind == "oracle":
    from xlra.eval.judges.oracle import OracleJudge
    return OracleJudge(_import(jc.oracle.quality_fn) if jc.oracle.quality_fn else None)
  if jc.kind == "http":
    from xlra.eval.judges.http import HttpJudge, HttpJudgeConfig
    fields = jc.http.to_dict()
    fields["cache_path"] = fields["cache_path"] or os.path.join(workdir, "judge_cache.jsonl")
    return HttpJudge(HttpJudgeConfig(**fields))
  if jc.kind == "local":
    from xlra.eval.judges.local import LocalJudge, LocalJudgeConfig
    lc = jc.local
    if not lc.path:
      raise ValueError("config.judge.local.path is empty: name a Hugging Face or xlra model directory")
    cfg = LocalJudgeConfig(batch_size=lc.batch_size, max_len=lc.max_len, min_bucket=lc.min_bucket,
                           chat_template=lc.chat_template)
    return LocalJudge.from_checkpoint(lc.path, cfg, dtype=lc.dtype, fmt=lc.checkpoint_format, tokenizer=lc.tokenizer)
  raise ValueError(f"config.judge.kind={jc.kind!r}: choose oracle, local, http (or none for judge2)")


def _system_outputs(name: str, sc: ml_collections.ConfigDict, config: ml_collections.ConfigDict,
                    workdir: str) -> str:
  """Path of the system's outputs: given, or generated from its checkpoint into WORKDIR/outputs."""
  if sc.outputs:
    return sc.outputs
  if not sc.checkpoint:
    raise ValueError(f"system {name!r}: set its `outputs` (JSONL) or its `checkpoint` to generate from")
  path = os.path.join(workdir, "outputs", f"{name}.jsonl")
  if not os.path.exists(path):
    from xlra.eval.generate import generate_outputs  # pluggable: needs the sampler and a checkpoint loader
    generate_outputs(sc, config, path)
  return path


def _fingerprint(*parts: Any, paths: tuple[str, ...]) -> str:
  h = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
  for p in paths:
    if p:
      with open(p, "rb") as f:
        h.update(hashlib.sha256(f.read()).digest())
  return h.hexdigest()


def _requests(sys_rows: dict, base_rows: dict, examples: dict | None, name: str, needs_example: bool):
  keys, reqs, skipped = [], [], collections.Counter()
  for key in sorted(sys_rows):
    s = sys_rows[key]
    b = base_rows.get(key)
    if b is None:
      skipped["no_baseline_output"] += 1
      continue
    if s["prompt"] != b["prompt"]:
      raise ValueError(f"system {name!r} and the baseline disagree on the prompt of id={key[0]!r} lang={key[1]!r}; "
                       "were they generated on the same prompt set?")
    ex = s.get("example") or (examples.get(key) if examples is not None else None)
    if needs_example and ex is None:
      skipped["no_example"] += 1
      continue
    keys.append(key)
    reqs.append(base.Judgement(s["prompt"], s["output"], b["output"], lang=key[1], task=s["task"], example=ex))
  return keys, reqs, skipped


def _judge_all(judge: base.Judge, reqs: list[base.Judgement], chunk: int, label: str) -> list[base.JudgeResult]:
  out = []
  for start in range(0, len(reqs), chunk):
    out += judge.judge(reqs[start:start + chunk])
    logging.info("eval %s: judged %d/%d", label, len(out), len(reqs))
  return out


def _row(key, req: base.Judgement, res: base.JudgeResult, name: str, baseline: str, judge: str) -> dict:
  return {"id": key[0], "lang": key[1], "task": req.task, "system": name, "baseline": baseline, "judge": judge,
          "p_a": res.p_a, "error_kind": res.error_kind, "error": res.error, "cached": res.cached}


def _answered(out_path: str, meta_path: str, fp: str) -> tuple[list[dict], dict[tuple, dict], dict] | None:
  """(rows, the answered ones by (judge, id, lang), skipped) of an earlier run with the same inputs, or None."""
  if not (os.path.exists(meta_path) and os.path.exists(out_path)):
    return None
  meta = files.read_json(meta_path)
  if meta["fingerprint"] != fp:
    return None
  rows = files.read_jsonl(out_path)
  return rows, {(r["judge"], r["id"], r["lang"]): r for r in rows if r["p_a"] is not None}, meta["skipped"]


def judge_system(name: str, sc, config, workdir: str, judges: dict[str, base.Judge], base_rows: dict,
                 base_path: str, examples: dict | None) -> tuple[list[dict], dict]:
  """Per-example rows for one system. With the same inputs as an earlier run its answered rows are
  reused and only its failed judgements are asked again (the HTTP judge's cache answers final parse
  failures without a request)."""
  path = _system_outputs(name, sc, config, workdir)
  out_path = os.path.join(workdir, "judgements", f"{name}.jsonl")
  meta_path = out_path.replace(".jsonl", ".meta.json")
  fp = _fingerprint(config.judge.to_dict(), config.judge2.to_dict(), config.task,
                    paths=(path, base_path, config.examples))
  earlier = _answered(out_path, meta_path, fp)
  if earlier is not None and len(earlier[1]) == len(earlier[0]):
    logging.info("eval %s: judged earlier with the same inputs, reusing %s", name, out_path)
    return earlier[0], earlier[2]
  answered = earlier[1] if earlier is not None else {}
  if answered:
    logging.info("eval %s: reusing %d answered judgements, asking the %d failed ones again", name,
                 len(answered), len(earlier[0]) - len(answered))
  sys_rows = read_outputs(path, config.task)
  needs_example = any(j.name == "oracle" for j in judges.values())
  keys, reqs, skipped = _requests(sys_rows, base_rows, examples, name, needs_example)
  rows = []
  for jname, judge in judges.items():
    todo = [i for i, k in enumerate(keys) if (jname, *k) not in answered]
    fresh = dict(zip(todo, _judge_all(judge, [reqs[i] for i in todo], config.chunk, f"{name} ({jname})")))
    rows += [answered.get((jname, *k)) or _row(k, q, fresh[i], name, config.baseline_name, jname)
             for i, (k, q) in enumerate(zip(keys, reqs))]
  files.write_jsonl(out_path, rows)
  files.write_json(meta_path, {"fingerprint": fp, "skipped": dict(skipped), "outputs": path})
  return rows, dict(skipped)


def summarize(rows: list[dict], systems: dict[str, dict], config) -> dict:
  """summary.json: per system, overall and per-language win rates of the first judge, failures by kind,
  skipped inputs, and agreement with the second judge when there is one."""
  wr = dict(mode=config.winrate.mode, level=config.winrate.level, n_boot=config.winrate.n_boot,
            seed=config.winrate.seed)
  out = {"baseline": config.baseline_name, "judge": config.judge.kind, "judge2": config.judge2.kind,
         "winrate": wr, "systems": {}}
  for name, info in systems.items():
    mine = [r for r in rows if r["system"] == name and r["judge"] == "judge"]
    entry = {"source": info["source"], "target": info["target"], "skipped": info["skipped"],
             "overall": winrate.win_rate([r["p_a"] for r in mine], **wr).to_dict(),
             "per_lang": {g[0]: w.to_dict() for g, w in winrate.grouped_win_rates(mine, ("lang",), **wr).items()},
             "failures": dict(collections.Counter(r["error_kind"] for r in mine if r["error_kind"]))}
    other = {(r["id"], r["lang"]): r["p_a"] for r in rows if r["system"] == name and r["judge"] == "judge2"}
    if other:
      entry["agreement"] = winrate.agreement([r["p_a"] for r in mine],
                                             [other[(r["id"], r["lang"])] for r in mine]).to_dict()
    out["systems"][name] = entry
  return out


def markdown(summary: dict) -> str:
  pct = lambda x: "–" if x is None or x != x else f"{100 * x:.1f}"
  lines = [f"Win rate against `{summary['baseline']}` (judge: {summary['judge']}, ties count half, "
           f"{int(100 * summary['winrate']['level'])}% bootstrap interval over examples).", "",
           "| system | lang | win rate | interval | n | wins / ties / losses | failures |",
           "|---|---|---|---|---|---|---|"]
  for name, s in summary["systems"].items():
    for lang, w in [*s["per_lang"].items(), ("all", s["overall"])]:
      lines.append(f"| {name} | {lang} | {pct(w['win_rate'])} | [{pct(w['ci_low'])}, {pct(w['ci_high'])}] | "
                   f"{w['n']} | {w['wins']} / {w['ties']} / {w['losses']} | {w['failures']} |")
  agree = [(n, s["agreement"]) for n, s in summary["systems"].items() if "agreement" in s]
  if agree:
    lines += ["", f"Agreement of {summary['judge']} with {summary['judge2']}: "
              + ", ".join(f"{n} {pct(a['percent'] / 100)}% (n={a['n']})" for n, a in agree)]
  skipped = {n: s["skipped"] for n, s in summary["systems"].items() if s["skipped"]}
  if skipped:
    lines += ["", "Skipped inputs: " + "; ".join(f"{n}: {d}" for n, d in skipped.items())]
  return "\n".join(lines) + "\n"


def _systems(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """config.systems plus the NAME=PATH entries of config.system_outputs."""
  systems = {name: config.systems[name] for name in config.systems}
  for item in filter(None, (s.strip() for s in config.system_outputs.split(","))):
    name, sep, path = item.partition("=")
    if not sep or not name or not path:
      raise ValueError(f"config.system_outputs entry {item!r}: expected NAME=PATH")
    if name in systems or name == config.baseline_name:
      raise ValueError(f"config.system_outputs: system name {name!r} is used twice")
    # The fields of configs/eval.py's system(), read off the baseline's block, all empty but the outputs.
    systems[name] = ml_collections.ConfigDict({**{k: "" for k in config.baseline}, "outputs": path,
                                               "checkpoint_format": "auto"})
  if not systems:
    raise ValueError("no systems to evaluate: set config.systems (configs/eval.py: system(...)) or "
                     "--config.system_outputs=NAME=PATH,...")
  return systems


def run(config: ml_collections.ConfigDict, workdir: str) -> None:
  systems_cfg = _systems(config)
  if config.winrate.mode not in winrate.MODES:
    raise ValueError(f"config.winrate.mode={config.winrate.mode!r}: choose one of {winrate.MODES}")
  shares = {k: base.validate_failure_share(config[k].max_failure_share, f"config.{k}.max_failure_share")
            for k in ("judge", "judge2")}
  os.makedirs(workdir, exist_ok=True)
  judges = {"judge": build_judge(config.judge, workdir)}
  if judges["judge"] is None:
    raise ValueError("config.judge.kind='none': the first judge is required")
  second = build_judge(config.judge2, workdir)
  if second is not None:
    judges["judge2"] = second
  examples = read_examples(config.examples) if config.examples else None
  base_path = _system_outputs(config.baseline_name, config.baseline, config, workdir)
  base_rows = read_outputs(base_path, config.task)
  rows, systems = [], {}
  for name in sorted(systems_cfg):
    sc = systems_cfg[name]
    mine, skipped = judge_system(name, sc, config, workdir, judges, base_rows, base_path, examples)
    rows += mine
    systems[name] = {"source": sc.source, "target": sc.target, "skipped": skipped}
  summary = summarize(rows, systems, config)
  summary["judge_stats"] = {k: dict(j.stats) for k, j in judges.items()}
  files.write_json(os.path.join(workdir, "summary.json"), summary)
  files.write_text(os.path.join(workdir, "summary.md"), markdown(summary))
  for j in judges.values():
    if hasattr(j, "close"):
      j.close()
  logging.info("eval: wrote %s\n%s", os.path.join(workdir, "summary.md"), markdown(summary))
  for k, j in judges.items():
    base.check_failure_share([r["error_kind"] for r in rows if r["judge"] == k], shares[k],
                             f"eval ({k}: {config[k].kind})", f"config.{k}.max_failure_share")
