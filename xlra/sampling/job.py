"""`xlra bon`: best-of-n over a prompt set with a given policy and reward model.

    xlra bon --config=configs/bon.py:tiny --workdir=DIR --config.policy_checkpoint=... --config.rm_checkpoint=...

Writes, under WORKDIR:
  bon.jsonl          one row per prompt: id, lang, task, prompt, output (the chosen response's text),
                     score (its final score), scores (all n), raw_scores, best_index, eos (per candidate),
                     all_cut_off (no candidate ended with EOS: chosen by raw score),
                     gold_q / gold_q_all on testbed prompts, candidates (texts) when config.keep_candidates
  bon_summary.json   n, the KL bound log n - (n-1)/n, mean chosen vs mean sampled score, all_cut_off
                     (prompts whose every candidate lacked EOS), and on the
                     testbed the gold quality of the chosen output vs a single sample; written last,
                     so a finished run is not redone.

Scores are in the RM's normalised units when config.normalize_reward and the RM stored its statistics
(as in PPO), and a response without EOS gets config.missing_eos_penalty in those units.
"""

from __future__ import annotations

import os
import time

import jax
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from xlra import files
from xlra.data.tokenizer import check_same_tokenizer, find_tokenizer, load_tokenizer
from xlra.eval.checkpoints import load_lm
from xlra.models.transformer import Transformer
from xlra.parallel import mesh as mesh_lib
from xlra.sampling.best_of_n import MAX_N, best_of_n
from xlra.sampling.sampler import Sampler, SamplingConfig
from xlra.train.checkpoint import resolve_model_dir
from xlra.train.scoring import RewardScorer

OUTPUT, SUMMARY = "bon.jsonl", "bon_summary.json"


def load_policy(path: str, mesh=None, field: str = "config.policy_checkpoint") -> Transformer:
  """The policy LM of a Hugging Face directory, an xlra model directory or a training workdir (its model/)."""
  if not path:
    raise ValueError(f"{field} is empty: name the policy's model directory, training workdir or HF directory")
  hf = os.path.exists(os.path.join(path, "config.json")) and not os.path.exists(os.path.join(path, "model.json"))
  return load_lm(path if hf else resolve_model_dir(path, field), mesh=mesh)


def _validate(config: ml_collections.ConfigDict) -> None:
  if not 1 <= config.n <= MAX_N:
    raise ValueError(f"config.n={config.n} must be in [1, {MAX_N}]")
  if config.split not in ("rl", "eval") and not config.prompts:
    raise ValueError(f"config.split={config.split!r}: choose rl or eval (or set config.prompts)")
  if not config.rm_checkpoint:
    raise ValueError("config.rm_checkpoint is empty: name the reward model's directory or `xlra rm` workdir")
  if config.max_prompts < 0:
    raise ValueError(f"config.max_prompts={config.max_prompts} must be >= 0 (0: all)")


def load_prompts(config: ml_collections.ConfigDict, workdir: str, data=None):
  """(rows {id, prompt, lang, task}, testbed Examples or None, tokenizer directory or None).

  data: a prepared xlra.data.job.DataBundle (the pipeline's); None prepares config.data in
  config.data_dir (or WORKDIR).
  """
  if config.prompts:
    from xlra.data.sources.prompts import read_prompts
    rows, examples, tok_dir = read_prompts(config.prompts, config.task), None, None
  else:
    from xlra.data.job import prepare
    task = {"dialog": "dialog", "summarization": "summarize"}.get(config.task, config.task)
    bundle = data if data is not None else prepare(config.data, config.data_dir or workdir)
    examples = bundle.testbed.get(config.split, config.lang, task)
    rows = [{"id": e.id, "prompt": e.prompt, "lang": e.lang, "task": e.task} for e in examples]
    tok_dir = bundle.tokenizer_dir
  if config.max_prompts:
    rows = rows[:config.max_prompts]
    examples = examples[:config.max_prompts] if examples is not None else None
  if not rows:
    raise ValueError(f"no prompts: {config.prompts or f'testbed {config.split}/{config.lang}/{config.task}'} is empty")
  return rows, examples, tok_dir


def run(config: ml_collections.ConfigDict, workdir: str) -> None:
  """The `xlra bon` job (see the module docstring)."""
  run_best_of_n(config, workdir)


def run_best_of_n(config: ml_collections.ConfigDict, workdir: str, data=None) -> dict:
  """Best-of-n of config.policy_checkpoint under config.rm_checkpoint; returns the summary (read back
  when WORKDIR already holds a finished run). data: an optional prepared DataBundle (the pipeline's)."""
  from xlra.data.tokenizer import check_fits, decode_response, encode_prompt

  _validate(config)
  out_path, summary_path = os.path.join(workdir, OUTPUT), os.path.join(workdir, SUMMARY)
  if os.path.exists(summary_path):
    logging.info("bon: %s exists; nothing to do", summary_path)
    return files.read_json(summary_path)
  mesh = mesh_lib.make_mesh(dict(config.mesh))
  rules = mesh_lib.rules_from_config(config.sharding_rules)
  rows, examples, data_tok = load_prompts(config, workdir, data)
  policy = load_policy(config.policy_checkpoint, mesh)
  tok_dir = find_tokenizer(config.tokenizer, config.policy_checkpoint, data_tok, "config.policy_checkpoint")
  tok = load_tokenizer(tok_dir)
  check_fits(tok, policy.cfg.vocab_size, f"config.policy_checkpoint={config.policy_checkpoint!r}", tok_dir)
  check_same_tokenizer(tok, tok_dir, config.rm_checkpoint, "config.rm_checkpoint")
  prompts = []
  for i, r in enumerate(rows):
    ids = encode_prompt(tok, r["prompt"])
    if len(ids) > config.max_prompt_len:
      raise ValueError(f"prompt {i} (id {r['id']!r}) has {len(ids)} tokens > config.max_prompt_len="
                       f"{config.max_prompt_len}; raise it or shorten the prompt")
    prompts.append(ids)

  sampling = SamplingConfig(max_new_tokens=config.max_new_tokens, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id,
                            temperature=config.temperature, top_k=config.top_k, top_p=config.top_p,
                            min_prompt_bucket=config.min_prompt_bucket, max_prompt_len=config.max_prompt_len)
  graphdef, params = nnx.split(policy, nnx.Param)
  sampler = Sampler(graphdef, sampling, mesh, rules)
  scorer = RewardScorer.load(resolve_model_dir(config.rm_checkpoint, "config.rm_checkpoint"), tok, mesh,
                             batch_size=config.score_batch_size, length=config.max_prompt_len + config.max_new_tokens)
  normalize = config.normalize_reward and scorer.stats is not None
  if config.normalize_reward and not normalize:
    logging.warning("bon: the RM has no reward_stats.json; scores stay raw (config.normalize_reward ignored)")
  score = (lambda seqs: scorer.normalize(scorer.score_ids(seqs))) if normalize else scorer.score_ids

  t0 = time.perf_counter()
  res = best_of_n(sampler, params, prompts, jax.random.key(config.seed), config.n, score,
                  rows_per_batch=config.rows_per_batch, missing_eos_penalty=config.missing_eos_penalty,
                  keep_all=True, progress=lambda d, t: logging.info("bon: %d/%d prompts sampled", d, t))
  seconds = time.perf_counter() - t0
  texts = [[decode_response(tok, c) for c in cands] for cands in res.candidates]

  out, gold_best, gold_all = [], [], []
  for i, r in enumerate(rows):
    b = int(res.best_index[i])
    row = {**r, "output": texts[i][b], "score": float(res.scores[i, b]), "scores": res.scores[i].tolist(),
           "raw_scores": res.raw_scores[i].tolist(), "best_index": b, "eos": res.stopped[i].tolist(),
           "all_cut_off": not res.stopped[i].any()}
    if examples is not None:
      from xlra.data.testbed import quality
      q = [quality(examples[i], t) for t in texts[i]]
      row.update(gold_q=q[b], gold_q_all=q)
      gold_best.append(q[b])
      gold_all.append(float(np.mean(q)))
    if config.keep_candidates:
      row["candidates"] = texts[i]
    out.append(row)
  if jax.process_index() == 0:
    files.write_jsonl(out_path, out)

  n_tokens = int(res.lengths.sum())
  summary = {"n": config.n, "kl_bound": res.kl_bound, "prompts": len(rows), "normalized": normalize,
             "mean_best_score": float(res.best_score.mean()), "mean_sample_score": float(res.scores.mean()),
             "eos_rate": float(res.stopped.mean()), "all_cut_off": res.all_cut_off, "generated_tokens": n_tokens,
             "seconds": seconds, "tokens_per_s": n_tokens / seconds}
  if examples is not None:
    summary.update(gold_q_best=float(np.mean(gold_best)), gold_q_single=float(np.mean(gold_all)))
  if jax.process_index() == 0:
    files.write_json(summary_path, summary)
  logging.info("bon: %s", summary)
  return summary
