"""`xlra ppo`: PPO (or RLOO) of a target-language SFT policy against a frozen reward model.

    train_ppo(config, workdir, policy_ckpt=None, rm_ckpt=None, data=None, should_stop=None) -> PPOResult

Roles: the policy and the frozen reference both start from `policy_ckpt` (an `xlra sft` workdir or
model directory); the frozen RM is `rm_ckpt` (an `xlra rm` workdir, any language's), with its
reward_stats.json for normalisation; the critic starts as the RM (config.critic_init='rm'), or as
the SFT decoder with a fresh scalar head ('sft'); RLOO has none ('none').

Prompts come from config.prompts_jsonl (real RL prompts) or the testbed RL split of config.lang (and
config.task, '' = every task), in a seeded order per pass; the tokenizer is the one saved beside the
policy (xlra.train.ppo_prompts says which and what is refused). Per iteration WORKDIR/metrics.jsonl
gets the RM reward next to, on the testbed, the gold quality q and the KL to the reference, so reward
hacking (proxy reward up, q flat or down) shows:
rm_score, score, gold_q, kl, entropy, response_length, response_words, annotator_bias (the simulated
annotators' language-specific bonus that q does not pay), eos_rate, the learner's clip fraction,
approx KL, value loss, explained variance, and the time split between rollout and learning. Every
config.eval_every iterations (and at 0 and the end) the greedy outputs on the eval split are scored:
gold q, RM score, and the oracle win rate against the SFT policy's greedy outputs (split "eval").

WORKDIR/checkpoints (orbax, with iteration and beta; a rerun resumes), WORKDIR/model (the final
policy, xlra model format), WORKDIR/outputs/eval.jsonl (its eval outputs: id, prompt, output, lang,
task), WORKDIR/summary.json, WORKDIR/curves.png (`plot_curves` also overlays several runs).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Callable

import jax
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from xlra import files
from xlra.data.job import DataBundle
from xlra.data.testbed import Annotator, quality
from xlra.data.tokenizer import decode_response, save_tokenizer
from xlra.eval.judges.base import Judgement
from xlra.eval.judges.oracle import OracleJudge
from xlra.eval.winrate import win_rate
from xlra.models.checkpoint_io import load_model, read_model_config, save_model
from xlra.models.heads import ScalarModel
from xlra.models.transformer import Transformer
from xlra.parallel import mesh as mesh_lib
from xlra.parallel.distributed import is_main_process
from xlra.sampling.sampler import Sampler
from xlra.train import checkpoint as ckpt_lib
from xlra.train.loop import NonFiniteError, TrainingInterrupted, _StopFlag
from xlra.train.metrics import MetricWriter, Progress, read_metrics
from xlra.train.ppo_loop import PPOTrainer
from xlra.train.ppo_prompts import PPOData, PromptSet, load_ppo_data
from xlra.train.scoring import STATS_FILE, RewardScorer, read_stats, write_stats
from xlra.train.state import split_params

CRITIC_INITS = ("rm", "sft", "none")
OUTPUTS = os.path.join("outputs", "eval.jsonl")


@dataclasses.dataclass
class PPOResult:
  model_dir: str  # the final policy (xlra model directory)
  outputs: str  # its greedy outputs on the eval prompts (JSONL), "" without eval prompts
  iterations: int
  beta: float
  last: dict[str, float]  # metrics of the last iteration
  evals: list[dict]  # eval rows (iteration, gold_q, rm_score, win_rate, ...)
  prompts: str = ""  # where the RL prompts came from (config.prompts_jsonl, or "testbed rl/LANG")
  tokenizer: str = ""  # the tokenizer directory used (saved beside model_dir too)


def _order(n: int, iteration: int, per_iter: int, seed: int) -> list[int]:
  """Prompt indices of an iteration: consecutive slices of a fresh seeded permutation per pass."""
  out = []
  start = iteration * per_iter
  for pos in range(start, start + per_iter):
    epoch, i = divmod(pos, n)
    out.append(int(np.random.default_rng([seed, epoch]).permutation(n)[i]))
  return out


def _load(path: str, field: str, kind, mesh, rules):
  model = load_model(ckpt_lib.resolve_model_dir(path, field), mesh=mesh, rules=rules)
  if not isinstance(model, kind):
    raise ValueError(f"{field}={path!r} holds a {type(model).__name__}; PPO needs a {kind.__name__} there")
  return model


def _roles(config, policy_dir: str, rm_dir: str, mesh, rules):
  if config.critic_init not in CRITIC_INITS:
    raise ValueError(f"config.critic_init={config.critic_init!r}: choose one of {CRITIC_INITS}")
  if (config.estimator == "rloo") != (config.critic_init == "none"):
    raise ValueError(f"config.critic_init={config.critic_init!r} with estimator={config.estimator!r}: "
                     "RLOO uses critic_init='none', GAE needs 'rm' or 'sft'")
  policy = _load(policy_dir, "config.policy_checkpoint", Transformer, mesh, rules)
  rm = _load(rm_dir, "config.rm_checkpoint", ScalarModel, mesh, rules)
  policy_def, policy_params = split_params(policy)
  rm_def, rm_params = split_params(rm)
  critic_def = critic_params = None
  if config.critic_init == "rm":
    critic_def, critic_params = rm_def, rm_params
  elif config.critic_init == "sft":  # the SFT decoder with a fresh head, N(0, 1/sqrt(d+1))
    critic = ScalarModel(policy.cfg, rngs=nnx.Rngs(config.seed), backbone=policy)
    critic_def, critic_params = split_params(critic)
  stats = read_stats(ckpt_lib.resolve_model_dir(rm_dir, "config.rm_checkpoint"))
  return dict(policy_def=policy_def, policy_params=policy_params, critic_def=critic_def,
              critic_params=critic_params, rm_def=rm_def, rm_params=rm_params, rm_stats=stats)


class _Evaluator:
  """Greedy outputs of a policy on the eval prompts: gold q, RM score and the oracle win rate
  against the reference (SFT) policy's greedy outputs, computed once."""

  def __init__(self, trainer: PPOTrainer, prompts: PromptSet, tokenizer, config, rm_def):
    self.trainer, self.examples, self.prompts, self.tok = trainer, prompts.examples, prompts.ids, tokenizer
    s = trainer.sampling
    self.sampler = Sampler(trainer.sampler.graphdef, dataclasses.replace(s, temperature=0.0), trainer.mesh,
                           trainer.rules)
    shards = mesh_lib.batch_shards(trainer.mesh)
    self.scorer = RewardScorer(rm_def, trainer.rm_params, trainer.mesh, tokenizer, batch_size=-(-16 // shards) * shards,
                               length=s.max_prompt_len + s.max_new_tokens)
    self.seed = config.seed
    self.baseline = self.outputs(trainer.ref_params)

  def outputs(self, params):
    """(texts, SampleOutput) of greedy decoding."""
    out = self.sampler(params, self.prompts, jax.random.PRNGKey(self.seed))
    return [decode_response(self.tok, out.response(i)) for i in range(len(self.prompts))], out

  def __call__(self, params) -> tuple[dict[str, float], list[str]]:
    texts, out = self.outputs(params)
    seqs = [p + out.response(i) for i, p in enumerate(self.prompts)]
    row = {"rm_score": float(np.mean(self.scorer.score_ids(seqs))), "eos_rate": float(np.mean(out.stopped)),
           "response_length": float(np.mean(out.lengths))}
    if self.examples is not None:  # the testbed: gold q and the oracle's win rate against the SFT policy
      base_texts, _ = self.baseline
      reqs = [Judgement(ex.prompt, a, b, ex.lang, ex.task, example=ex)
              for ex, a, b in zip(self.examples, texts, base_texts)]
      wr = win_rate([r.p_a for r in OracleJudge().judge(reqs)], n_boot=2000, seed=self.seed)
      row.update(gold_q=float(np.mean([quality(ex, t) for ex, t in zip(self.examples, texts)])),
                 win_rate=wr.win_rate, win_ci_low=wr.ci_low, win_ci_high=wr.ci_high)
    return row, texts


def _rollout_quality(examples, rows: list[int], host: dict, tokenizer, annotator: Annotator | None, k: int) -> dict:
  """Words per sampled response (host rows); on the testbed also their gold q and the annotators'
  language-specific bias."""
  q, bias, words = [], [], []
  for r in range(host["tokens"].shape[0]):
    text = decode_response(tokenizer, host["tokens"][r, :host["lengths"][r]])
    words.append(len(text.split()))
    if examples is not None:
      ex = examples[rows[r // k]]
      q.append(quality(ex, text))
      bias.append(annotator.bias(ex, text))
  out = {"response_words": float(np.mean(words))}
  if examples is not None:
    out.update(gold_q=float(np.mean(q)), annotator_bias=float(np.mean(bias)))
  return out


_STATS_PROMPTS = 64  # RL prompts whose starting-policy samples set the reward statistics


def _policy_reward_stats(workdir: str, trainer: PPOTrainer, prompts, tok, config, rm_def) -> dict:
  """Mean and std of the RM's raw scores on the starting policy's samples of the first RL prompts,
  measured once per workdir (WORKDIR/reward_stats.json), so a resumed run uses the same."""
  path = os.path.join(workdir, STATS_FILE)
  if os.path.exists(path):
    return files.read_json(path)
  rows = prompts[:_STATS_PROMPTS]
  out = trainer.sampler(trainer.ref_params, rows, jax.random.fold_in(jax.random.PRNGKey(config.seed), 7))
  s, shards = trainer.sampling, mesh_lib.batch_shards(trainer.mesh)
  scorer = RewardScorer(rm_def, trainer.rm_params, trainer.mesh, tok, batch_size=-(-16 // shards) * shards,
                        length=s.max_prompt_len + s.max_new_tokens)
  scores = scorer.score_ids([list(p) + list(out.response(i)) for i, p in enumerate(rows)])
  return write_stats(workdir, scores, f"{len(rows)} starting-policy samples of the RL prompts")


def train_ppo(config: ml_collections.ConfigDict, workdir: str, policy_ckpt: str | None = None,
              rm_ckpt: str | None = None, data: DataBundle | None = None,
              should_stop: Callable[[int], bool] | None = None) -> PPOResult:
  """Run (or resume) PPO in `workdir`; see the module docstring. policy_ckpt / rm_ckpt override
  config.policy_checkpoint / config.rm_checkpoint (the pipeline passes them)."""
  workdir = os.path.abspath(workdir)
  policy_dir, rm_dir = policy_ckpt or config.policy_checkpoint, rm_ckpt or config.rm_checkpoint
  for field, value in (("config.policy_checkpoint", policy_dir), ("config.rm_checkpoint", rm_dir)):
    if not value:
      raise ValueError(f"{field} is empty: name the workdir (or model directory) of the SFT policy / reward model")
  mesh = mesh_lib.make_mesh(dict(config.mesh))
  rules = mesh_lib.rules_from_config(config.sharding_rules)
  vocab = read_model_config(ckpt_lib.resolve_model_dir(policy_dir, "config.policy_checkpoint"))[1].vocab_size
  pd = load_ppo_data(config, workdir, policy_dir, rm_dir, vocab, data)
  tok, examples, prompts = pd.tokenizer, pd.rl.examples, pd.rl.ids
  roles = _roles(config, policy_dir, rm_dir, mesh, rules)
  trainer = PPOTrainer(config, mesh, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id, rules=rules, **roles)
  if config.normalize_reward and config.reward_stats == "policy":
    trainer.use_reward_stats(_policy_reward_stats(workdir, trainer, prompts, tok, config, roles["rm_def"]))

  ckpt = ckpt_lib.Checkpointer(workdir, config.keep_checkpoints)
  start, latest = 0, ckpt.latest_step()
  if latest is not None:
    target = ckpt_lib.restore_target(trainer.state, jax.tree.map(lambda x: x.sharding, trainer.state))
    latest, trainer.state, loop_state = ckpt.restore_latest(target)
    start, trainer.beta = int(loop_state["iteration"]), float(loop_state["beta"])
  logging.info("ppo: lang=%s task=%s, %d RL prompts from %s, tokenizer %s (%d tokens), iterations %d -> %d, "
               "weights from %s", config.lang, config.task or "all", len(prompts), pd.source, pd.tokenizer_dir,
               len(tok), start, config.iterations, "workdir" if latest else policy_dir)
  writer = MetricWriter(workdir, resume_step=start)
  progress = Progress("ppo", config.iterations, start, every_s=10.0)
  evaluator = _Evaluator(trainer, pd.eval, tok, config, roles["rm_def"]) if pd.eval.rows else None
  evals = [r for r in _read_evals(workdir) if r["step"] <= start]
  last, texts, saved = {}, [], latest

  def run_eval(it: int) -> None:
    nonlocal texts
    row, texts = evaluator(trainer.state.policy.params)
    writer.write(it, row, split="eval")
    evals.append({"step": it, **row})
    logging.info("ppo eval @%d: %s", it, {k: round(v, 4) for k, v in row.items()})

  def save(it: int) -> None:
    nonlocal saved
    if it != saved:
      ckpt.save(it, trainer.state, {"iteration": it, "beta": trainer.beta})
      saved = it

  with _StopFlag() as stop:
    if evaluator and start == 0:
      run_eval(0)
    for it in range(start, config.iterations):
      rows = _order(len(prompts), it, config.prompts_per_iteration, config.seed)
      metrics, host = trainer.iteration([prompts[i] for i in rows], it, prompt_ids=rows)
      t0 = time.perf_counter()
      metrics.update(_rollout_quality(examples, rows, host, tok, pd.annotator, config.samples_per_prompt))
      metrics["time/gold_s"] = time.perf_counter() - t0
      bad = [k for k, v in metrics.items() if not math.isfinite(v)]
      if bad:
        writer.write(it + 1, metrics)
        writer.close()
        raise NonFiniteError(f"ppo: {bad[0]}={metrics[bad[0]]} at iteration {it + 1}; the last good checkpoint is "
                             f"{ckpt.path(saved)}. Lower the learning rates, then rerun (it resumes there).")
      writer.write(it + 1, metrics)
      last = metrics
      done = it + 1
      progress.update(done, {k: metrics[k] for k in ("rm_score", "gold_q", "kl") if k in metrics},
                      force=done == config.iterations)
      if evaluator and (done % config.eval_every == 0 or done == config.iterations):
        run_eval(done)
      if (config.checkpoint_every and done % config.checkpoint_every == 0) or done == config.iterations:
        save(done)
      if done < config.iterations and (stop.set or (should_stop is not None and should_stop(done))):
        save(done)
        ckpt.wait()
        ckpt.close()
        writer.close()
        raise TrainingInterrupted(f"ppo stopped at iteration {done}/{config.iterations}; checkpoint "
                                  f"{ckpt.path(done)} saved; rerun the same command to resume")
  ckpt.wait()
  ckpt.close()
  writer.close()
  return _finish(workdir, trainer, config, evaluator, pd, texts, last, evals)


def _read_evals(workdir: str) -> list[dict]:
  return [{k: v for k, v in r.items() if k not in ("time", "split")} for r in read_metrics(workdir, "eval")]


def _finish(workdir, trainer, config, evaluator, pd: PPOData, texts, last, evals) -> PPOResult:
  model_dir = ckpt_lib.model_dir(workdir)
  save_model(nnx.merge(trainer.sampler.graphdef, trainer.state.policy.params), model_dir)
  save_tokenizer(pd.tokenizer, model_dir)
  outputs = ""
  if evaluator is not None:
    if not texts:  # resumed after the last iteration's eval: regenerate (greedy, deterministic)
      texts, _ = evaluator.outputs(trainer.state.policy.params)
    outputs = os.path.join(workdir, OUTPUTS)
    files.write_jsonl(outputs, [{"id": r["id"], "prompt": r["prompt"], "output": t, "lang": r["lang"],
                                 "task": r["task"]} for r, t in zip(pd.eval.rows, texts)])
  result = PPOResult(model_dir, outputs, config.iterations, trainer.beta, last, evals, pd.source, pd.tokenizer_dir)
  files.write_json(os.path.join(workdir, "summary.json"), dataclasses.asdict(result))
  if is_main_process():
    plot_curves({config.lang: workdir}, os.path.join(workdir, "curves.png"))
  return result


CURVES = (("score", "RM reward (normalised, rollouts)"), ("gold_q", "gold q (rollouts)"),
          ("kl", "KL to reference (nats/seq)"), ("response_words", "response words (rollouts)"),
          ("annotator_bias", "annotator bias that q ignores"), ("eval:win_rate", "win rate vs SFT (eval, greedy)"),
          ("eval:gold_q", "gold q (eval, greedy)"), ("eval:rm_score", "RM score (raw, eval, greedy)"))


_SMOOTH = 5  # iterations in the running mean of the rollout curves


def plot_curves(runs: dict[str, str], path: str) -> None:
  """One PNG of the PPO curves of several runs (label -> workdir): proxy reward, gold q, KL, length,
  the annotators' bias term, and the eval win rate with its 95% interval, so reward hacking (proxy
  up, gold q flat or down) is visible at a glance."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(2, 4, figsize=(17, 7))
  for (key, title), ax in zip(CURVES, axes.flat):
    split, name = key.split(":") if ":" in key else ("train", key)
    for label, workdir in runs.items():
      rows = [r for r in read_metrics(workdir, split) if name in r]
      x, y = [r["step"] for r in rows], [r[name] for r in rows]
      if split == "train" and len(y) >= _SMOOTH:  # noisy per-batch values, faint, and their running mean
        line, = ax.plot(x, y, alpha=0.25)
        ax.plot(x[_SMOOTH - 1:], np.convolve(y, np.ones(_SMOOTH) / _SMOOTH, "valid"), color=line.get_color(),
                label=label)
      else:
        line, = ax.plot(x, y, marker=".", label=label)
      if name == "win_rate":
        ax.fill_between(x, [r["win_ci_low"] for r in rows], [r["win_ci_high"] for r in rows], alpha=0.2,
                        color=line.get_color())
    if name == "win_rate":
      ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_title(title)
    ax.set_xlabel("iteration")
  axes.flat[0].legend(fontsize=8)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=110)
  plt.close(fig)


def run(config: ml_collections.ConfigDict, workdir: str) -> None:
  """`xlra ppo --config=configs/ppo.py:tiny --workdir=DIR --config.policy_checkpoint=... --config.rm_checkpoint=...`."""
  result = train_ppo(config, workdir)
  logging.info("ppo finished after %d iterations: %s; last %s; evals %s", result.iterations, result.model_dir,
               {k: round(v, 4) for k, v in result.last.items() if not k.startswith("learn/")}, result.evals[-1:])
