"""The RM generalizability matrix: the accuracy of each language's reward model on each language's
validation set, with the baselines the paper reports (majority class, longer output).

    xlra rm-eval --config=configs/rm_eval.py:tiny --workdir=/tmp/xlra_rm_eval

trains one multilingual SFT model (WORKDIR/sft), a reward model per source language from it
(WORKDIR/rm/LANG; finished ones are reused) and writes WORKDIR/rm_accuracy.json, rm_accuracy.md and
the heatmap rm_accuracy.png. The pipeline calls `rm_accuracy_matrix(rm_dirs, bundle, ...)` directly.

Accuracy: pointwise, the sign of the score agrees with the good/bad label; pairwise, the chosen
output scores higher than the rejected one. Both against the (simulated) annotators' labels, as the
paper measures against human labels; on the testbed the pairwise matrix also has the accuracy
against the gold quality q (pairs whose q differ), and every RM is probed by error type: the share of
answers it scores above the same answer with one error of a kind (`probe_pairs`: wrong language,
repetition, ... which show in the answer alone; swapped or invented values, which show only against
the prompt), pooled over the targets' validation prompts.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import jax
import ml_collections
import numpy as np
from absl import logging

from xlra import files
from xlra.data.job import DataBundle
from xlra.data.testbed import probe_pairs
from xlra.parallel import mesh as mesh_lib
from xlra.parallel.distributed import is_main_process
from xlra.pipeline.report import ERROR_LEGEND, error_table, heatmap, matrix_table
from xlra.train import datasets, jobs
from xlra.train.scoring import RewardScorer

MAJORITY, LONGER = "majority class", "longer output"


def _pointwise_baselines(train: list[dict], val: list[dict]) -> dict[str, float]:
  """Majority: always the training set's majority label. Longer: "good" iff the output has more
  tokens than the training set's median output."""
  labels = np.array([bool(r["label"]) for r in val])
  majority = np.mean([bool(r["label"]) for r in train]) >= 0.5
  median = np.median([len(r["output"]) for r in train])
  longer = np.array([len(r["output"]) > median for r in val])
  return {MAJORITY: float(np.mean(labels == majority)), LONGER: float(np.mean(labels == longer))}


def _pairwise_baselines(val: list[dict]) -> dict[str, float]:
  """Longer: prefer the output with more tokens (ties count half). Majority: 50% (no class order)."""
  wins = [1.0 if len(r["chosen"]) > len(r["rejected"]) else 0.5 if len(r["chosen"]) == len(r["rejected"]) else 0.0
          for r in val]
  return {MAJORITY: 0.5, LONGER: float(np.mean(wins))}


def rm_accuracy_matrix(rm_dirs: Mapping[str, str], bundle: DataBundle, targets: Sequence[str], kind: str,
                       max_len: int, batch_size: int = 32, mesh=None, val_examples: int = 24,
                       probes_per_kind: int = 40) -> dict:
  """Accuracy of every RM (source language -> model directory) on every target's validation set.

  Returns {"kind", "rm_accuracy": {src: {tgt: acc}}, "rm_baselines": {name: {tgt: acc}},
  "rm_accuracy_vs_gold": {src: {tgt: acc}} (testbed only: the validation pairs whose q differ, in q's
  order, for pointwise RMs too), "n": {tgt: examples}}; on the
  testbed also "rm_accuracy_by_error": {src: {error kind: acc}} and "n_by_error": {error kind: probes}
  (at most probes_per_kind per target and kind; 0: no probes), and "rm_accuracy_by_error_pair":
  {src: {tgt: {error kind: acc}}} (the same probes per target: transfer per error kind).
  Real data has no validation split: its last `val_examples` records per language are (the RM
  jobs hold out the same ones).
  """
  mesh = mesh or mesh_lib.make_mesh({"data": -1})
  tok = bundle.tokenizer
  fields = ("chosen", "rejected") if kind == "pairwise" else ("output",)
  val_sets, gold_sets, baselines, n = {}, {}, {MAJORITY: {}, LONGER: {}}, {}
  for tgt in targets:
    train, val = datasets.rm_records(bundle, [tgt], kind, val_examples)
    enc_val = datasets.encode(tok, val, fields, max_len, f"{tgt} {kind} validation")
    enc_train = datasets.encode(tok, train, fields, max_len, f"{tgt} {kind} train")
    val_sets[tgt], n[tgt] = enc_val, len(enc_val)
    # The gold order of the testbed's validation pairs (q differs), for either kind of RM.
    pairs = enc_val if kind == "pairwise" else datasets.encode(
        tok, datasets.rm_records(bundle, [tgt], "pairwise", val_examples)[1], ("chosen", "rejected"), max_len,
        f"{tgt} pairwise validation") if bundle.testbed is not None else []
    gold_sets[tgt] = [e for e in pairs if "q_chosen" in e and e["q_chosen"] != e["q_rejected"]]
    base = _pairwise_baselines(enc_val) if kind == "pairwise" else _pointwise_baselines(enc_train, enc_val)
    for name, v in base.items():
      baselines[name][tgt] = v
  probes = _encoded_probes(bundle, targets, max_len, probes_per_kind)
  errors = np.array([e["kind"] for e in probes])
  probe_langs = np.array([e["lang"] for e in probes])
  n_by_error = {k: int(np.sum(errors == k)) for k in dict.fromkeys(errors.tolist())}
  by_error: dict[str, dict[str, float]] = {}
  by_pair: dict[str, dict[str, dict[str, float]]] = {}
  acc: dict[str, dict[str, float]] = {}
  gold: dict[str, dict[str, float]] = {}
  for src, model_dir in rm_dirs.items():
    scorer = RewardScorer.load(model_dir, tok, mesh, batch_size=batch_size, length=max_len)
    acc[src], gold[src] = {}, {}
    for tgt, enc in val_sets.items():
      if gold_sets[tgt]:
        decided = gold_sets[tgt]
        gold[src][tgt] = float(np.mean(_chosen_above(scorer, decided) == np.array(
            [e["q_chosen"] > e["q_rejected"] for e in decided])))
      if kind == "pairwise":
        acc[src][tgt] = float(np.mean(_chosen_above(scorer, enc)))
      else:
        s = scorer.score_ids([e["prompt"] + e["output"] for e in enc])
        acc[src][tgt] = float(np.mean((s > 0) == np.array([bool(e["label"]) for e in enc])))
    logging.info("rm-eval: RM %s accuracy %s", src, {t: round(v, 3) for t, v in acc[src].items()})
    if probes:
      above = _chosen_above(scorer, probes)
      by_error[src] = {k: float(np.mean(above[errors == k])) for k in n_by_error}
      by_pair[src] = {t: {k: float(np.mean(above[sel])) for k in n_by_error
                          if (sel := (errors == k) & (probe_langs == t)).any()} for t in targets}
  out = {"kind": kind, "rm_accuracy": acc, "rm_baselines": baselines, "n": n}
  if any(gold.values()):
    out["rm_accuracy_vs_gold"] = gold
  if by_error:
    out["rm_accuracy_by_error"] = by_error
    out["n_by_error"] = n_by_error
    out["rm_accuracy_by_error_pair"] = by_pair
  return out


def _chosen_above(scorer: RewardScorer, pairs: list[dict]) -> np.ndarray:
  """Per encoded pair: the RM scores the chosen output above the rejected one (ties count as not)."""
  return (scorer.score_ids([e["prompt"] + e["chosen"] for e in pairs])
          > scorer.score_ids([e["prompt"] + e["rejected"] for e in pairs]))


def _encoded_probes(bundle: DataBundle, targets: Sequence[str], max_len: int, per_kind: int) -> list[dict]:
  """The error-type probes of every target's validation prompts (testbed only), tokenised."""
  if bundle.testbed is None or per_kind <= 0:
    return []
  records = [r for tgt in targets for r in probe_pairs(bundle.testbed.get("rm_val", tgt), seed=0, per_kind=per_kind)]
  return datasets.encode(bundle.tokenizer, records, ("chosen", "rejected"), max_len, "error-type probes")


def write_matrix(result: dict, sources: Sequence[str], targets: Sequence[str], workdir: str) -> str:
  """rm_accuracy.json, rm_accuracy.md (table with baselines) and rm_accuracy.png; returns the table."""
  table = matrix_table(result["rm_accuracy"], list(sources), list(targets), result["rm_baselines"])
  if "rm_accuracy_vs_gold" in result:
    table += "\n\nAgainst the gold quality q:\n\n" + matrix_table(result["rm_accuracy_vs_gold"], list(sources),
                                                                  list(targets))
  if "rm_accuracy_by_error" in result:
    table += (f"\n\nBy error type (probes from every target's validation prompts). {ERROR_LEGEND}\n\n"
              + error_table(result["rm_accuracy_by_error"], result["n_by_error"], list(sources)))
  if is_main_process():
    files.write_json(os.path.join(workdir, "rm_accuracy.json"), result)
    files.write_text(os.path.join(workdir, "rm_accuracy.md"),
                     f"# RM accuracy ({result['kind']}), %\n\nRows: the RM's language; columns: the validation "
                     f"set's language; `*` monolingual.\n\n{table}\n")
    heatmap(result["rm_accuracy"], list(sources), list(targets), f"RM accuracy ({result['kind']})",
            os.path.join(workdir, "rm_accuracy.png"), center=0.5)
  return table


def _parse_dirs(spec: str) -> dict[str, str]:
  out = {}
  for entry in filter(None, (e.strip() for e in spec.split(","))):
    lang, sep, path = entry.partition("=")
    if not sep:
      raise ValueError(f"config.rm_dirs entry {entry!r} must be LANG=MODEL_DIR (comma-separated)")
    out[lang] = path
  return out


def run(config: ml_collections.ConfigDict, workdir: str) -> None:
  """`xlra rm-eval`: train (or reuse) an RM per source language, then the matrix."""
  rm = config.rm
  bundle = jobs.load_data(rm, workdir)
  rm_dirs = _parse_dirs(config.rm_dirs)
  if not rm_dirs:
    rm = rm.copy_and_resolve_references()
    with rm.unlocked():
      rm.data_dir = rm.data_dir or workdir
      if rm.sft_first and not rm.init_checkpoint and not rm.init_hf:
        rm.sft.languages = tuple(config.sources)  # one multilingual SFT model initialises every RM
        rm.init_checkpoint = jobs.train_sft(rm.sft, os.path.join(workdir, "sft"), bundle).model_dir
      for src in config.sources:
        rm.languages = (src,)
        rm_dirs[src] = jobs.train_rm(rm, os.path.join(workdir, "rm", src), bundle).model_dir
  result = rm_accuracy_matrix(rm_dirs, bundle, config.targets, config.rm.rm.loss, config.rm.max_len,
                              config.rm.eval_batch_size, val_examples=config.rm.val_examples)
  table = write_matrix(result, list(rm_dirs), config.targets, workdir)
  if jax.process_index() == 0:
    print(f"RM accuracy ({result['kind']}) in {workdir}/rm_accuracy.json\n{table}")
