"""`xlra pipeline`: the cross-lingual study as a graph of cached stages (see configs/pipeline.py).

WORKDIR/
  data/                   testbed splits and tokenizer (xlra.data.job.prepare)
  base/  sft/LANG/  rm/LANG/  ppo/SRC-TGT/  baselines/...    training workdirs (checkpoints, metrics, model/)
  bon/TGT/                candidates.jsonl (every sample, every RM's score), baseline.jsonl
  judgements/NAME.jsonl   one row per judged example (p_a: P(system beats the target SFT model))
  stages/NAME.json        finished stages (result + seconds): a rerun skips them
  results.json  report.md  *.png

Best-of-n draws the n candidates of a target prompt once and lets every source-language RM choose
among the same candidates (common random numbers: the RM is the only thing that differs between
the cells of a column). The baseline is config.bon.baseline_samples independent samples of the target
SFT model per prompt at the same temperature (the same draws for every system in that target, the
baselines included), so an RM that knows nothing gives 50% in expectation; a prompt's score is its
mean over them and the interval resamples prompts (xlra.eval.winrate). PPO policies are compared by
their greedy outputs with the SFT model's greedy outputs.
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from xlra import files
from xlra.config_fields import list_field
from xlra.data.job import DataBundle, prepare
from xlra.data.testbed import q_variance, quality, shuffled_labels, translate
from xlra.data.testbed.splits import PREFERENCE_SPLITS
from xlra.data.testbed.translate import translate_pairs
from xlra.data.tokenizer import decode_response, encode_prompt
from xlra.eval.job import build_judge
from xlra.eval.judges.base import Judgement, check_failure_share, failures_by_kind, validate_failure_share
from xlra.eval.rm_accuracy import rm_accuracy_matrix
from xlra.eval.winrate import win_rate
from xlra.parallel import mesh as mesh_lib
from xlra.pipeline.report import write_report
from xlra.pipeline.runner import StageRunner
from xlra.sampling.best_of_n import best_of_n
from xlra.sampling.job import load_policy
from xlra.sampling.sampler import Sampler, SamplingConfig
from xlra.train.jobs import train_rm, train_sft
from xlra.train.ppo import final_scores
from xlra.train.metrics import read_metrics
from xlra.train.ppo_job import plot_curves, train_ppo
from xlra.train.scoring import RewardScorer

_KL_WINDOW = 5  # PPO iterations whose KL is averaged for the report

# Relative cost of each kind of stage, for the remaining-time estimate.
_WEIGHTS = {"data": 0.5, "base": 4, "sft": 2, "rm": 2, "placebo": 2, "rm_accuracy": 0.5, "bon": 1.5, "greedy": 0.3, "ppo": 5,
            "baseline": 2}


@dataclasses.dataclass(frozen=True)
class Plan:
  languages: tuple[str, ...]
  sources: tuple[str, ...]
  ppo_pairs: tuple[tuple[str, str], ...]
  baseline_source: str
  baseline_targets: tuple[str, ...]

  def stages(self, config) -> list[tuple[str, float]]:
    names = ["data"] + ([] if config.init_hf else ["base"])
    names += [f"sft/{l}" for l in self._sft_langs()] + [f"rm/{s}" for s in self.sources] + ["rm_accuracy"]
    if config.controls.placebo:
      names += [f"placebo/{t}" for t in self.languages]
    names += [f"bon/{t}" for t in self.languages]
    if self.ppo_pairs:
      names += [f"greedy/{t}" for t in sorted({t for _, t in self.ppo_pairs})]
      names += [f"ppo/{s}-{t}" for s, t in self.ppo_pairs]
    for t in self.baseline_targets:
      if config.baselines.translate_train:
        names.append(f"baseline/translate_train/{t}")
      if config.baselines.no_target_sft:
        names.append(f"baseline/no_target_sft/{t}")
    return [(n, _WEIGHTS[n.split("/")[0]]) for n in names]

  def _sft_langs(self) -> list[str]:
    return sorted(set(self.languages) | set(self.sources), key=(self.languages + self.sources).index)


def make_plan(config: ml_collections.ConfigDict) -> Plan:
  """Checks the grid fields before anything is trained; errors name the field and the fix."""
  langs = list_field(config.languages)
  known = list_field(config.data.languages)
  if not langs:
    raise ValueError("config.languages is empty; name at least one target language, e.g. --config.languages=de,en")
  sources = list_field(config.sources) or langs
  for field, values in (("config.languages", langs), ("config.sources", sources)):
    bad = [l for l in values if l not in known]
    if bad:
      raise ValueError(f"{field} has {bad}, which config.data.languages={known} does not generate; "
                       f"choose from {known}")
  pairs = []
  for item in list_field(config.ppo.pairs):
    s, sep, t = item.partition("-")
    if not sep or s not in sources or t not in langs:
      raise ValueError(f"config.ppo.pairs has {item!r}: write SOURCE-TARGET with SOURCE in {sources} and TARGET in "
                       f"{langs}, e.g. en-de")
    pairs.append((s, t))
  bl_targets = list_field(config.baselines.targets)
  if bl_targets:
    if config.baselines.source not in sources:
      raise ValueError(f"config.baselines.source={config.baselines.source!r} must be one of the sources {sources}")
    bad = [t for t in bl_targets if t not in langs or t == config.baselines.source]
    if bad:
      raise ValueError(f"config.baselines.targets has {bad}: each must be a target language other than the source")
    if config.baselines.translate_train and config.rm.rm.loss != "pairwise":
      raise ValueError("config.baselines.translate_train needs config.rm.rm.loss='pairwise' (translated preference "
                       "pairs); set --config.baselines.translate_train=False for pointwise RMs")
  validate_failure_share(config.judge.max_failure_share, "config.judge.max_failure_share")
  if config.bon.n < 1:
    raise ValueError(f"config.bon.n={config.bon.n} must be >= 1")
  if config.bon.baseline_samples < 1:
    raise ValueError(f"config.bon.baseline_samples={config.bon.baseline_samples}: need at least one target SFT "
                     "sample per prompt to judge against")
  return Plan(langs, sources, tuple(pairs), config.baselines.source, bl_targets)


def _job_config(config, sub: ml_collections.ConfigDict, **fields) -> ml_collections.ConfigDict:
  """A stage's job config: the sub-config with the pipeline's shared fields (data, mesh, model, seed)."""
  c = sub.copy_and_resolve_references()
  with c.unlocked():
    c.data = config.data
    c.mesh = config.mesh
    c.seed = config.seed
    if "model" in c:
      c.model = config.model
    for k, v in fields.items():
      setattr(c, k, v)
  return c


class Pipeline:
  def __init__(self, config: ml_collections.ConfigDict, workdir: str):
    self.config, self.workdir = config, os.path.abspath(workdir)
    self.plan = make_plan(config)
    self.runner = StageRunner(self.workdir, self.plan.stages(config))
    self.mesh = mesh_lib.make_mesh(dict(config.mesh))
    self._judge = None
    self._last_sampler: tuple | None = None  # ((policy_dir, temperature), (sampler, params))
    self._baselines: dict[tuple[str, str], list[list[str]]] = {}  # (target, sft_dir) -> its samples
    self.bundle: DataBundle | None = None

  def path(self, *parts: str) -> str:
    return os.path.join(self.workdir, *parts)

  @property
  def judge(self):
    if self._judge is None:
      self._judge = build_judge(self.config.judge, self.workdir)
    return self._judge

  # -- training stages ---------------------------------------------------------------------------

  def sft(self, lang: str, init: str, workdir: str, data: DataBundle | None = None) -> str:
    cfg = _job_config(self.config, self.config.sft, languages=(lang,), init_checkpoint=init or "",
                      init_hf=self.config.init_hf if not init else "")
    return train_sft(cfg, workdir, data or self.bundle).model_dir

  def rm(self, lang: str, init: str, workdir: str, data: DataBundle | None = None) -> str:
    cfg = _job_config(self.config, self.config.rm, languages=(lang,), init_checkpoint=init)
    return train_rm(cfg, workdir, data or self.bundle).model_dir

  # -- generation and judging ---------------------------------------------------------------------

  def _sampler(self, policy_dir: str, temperature: float):
    """(Sampler, params) of a policy; the last one is kept, so best-of-n's baseline and candidates,
    both drawn from the target SFT model, load and compile it once."""
    key = (policy_dir, temperature)
    if self._last_sampler is None or self._last_sampler[0] != key:
      self._last_sampler = (key, self._build_sampler(policy_dir, temperature))
    return self._last_sampler[1]

  def _build_sampler(self, policy_dir: str, temperature: float):
    b = self.config.bon
    tok = self.bundle.tokenizer
    policy = load_policy(policy_dir, self.mesh)
    graphdef, params = nnx.split(policy, nnx.Param)
    cfg = SamplingConfig(max_new_tokens=b.max_new_tokens, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id,
                         temperature=temperature, top_k=b.top_k, top_p=b.top_p,
                         min_prompt_bucket=b.min_prompt_bucket, max_prompt_len=b.max_prompt_len)
    return Sampler(graphdef, cfg, self.mesh), params

  def _prompts(self, lang: str):
    examples = self.bundle.testbed.get("eval", lang)
    if self.config.bon.eval_prompts:
      examples = examples[:self.config.bon.eval_prompts]
    ids = []
    for ex in examples:
      p = encode_prompt(self.bundle.tokenizer, ex.prompt)
      if len(p) > self.config.bon.max_prompt_len:
        raise ValueError(f"eval prompt {ex.id} has {len(p)} tokens > config.bon.max_prompt_len="
                         f"{self.config.bon.max_prompt_len}; raise it")
      ids.append(p)
    return examples, ids

  def _scorer(self, rm_dir: str) -> RewardScorer:
    b = self.config.bon
    return RewardScorer.load(rm_dir, self.bundle.tokenizer, self.mesh, batch_size=b.score_batch_size,
                             length=b.max_prompt_len + b.max_new_tokens)

  def judge_against(self, name: str, examples, outputs: list[str], baselines: list[list[str]]) -> dict:
    """Win rate of `outputs` against the baseline outputs of each prompt (one or more), by the configured
    judge; a row per judgement to judgements/NAME.jsonl."""
    pairs = [(ex, o, j, b) for ex, o, bs in zip(examples, outputs, baselines) for j, b in enumerate(bs)]
    results = self.judge.judge([Judgement(ex.prompt, o, b, ex.lang, ex.task, ex) for ex, o, _, b in pairs])
    wr = win_rate([r.p_a for r in results], level=self.config.winrate.level, n_boot=self.config.winrate.n_boot,
                  seed=self.config.winrate.seed, groups=[ex.id for ex, *_ in pairs])
    q_out = {ex.id: quality(ex, o) for ex, o in zip(examples, outputs)}
    rows = [{"id": ex.id, "lang": ex.lang, "output": o, "baseline_sample": j, "baseline": b, "p_a": r.p_a,
             "error_kind": r.error_kind, "error": r.error, "gold_q": q_out[ex.id], "gold_q_baseline": quality(ex, b)}
            for (ex, o, j, b), r in zip(pairs, results)]
    files.write_jsonl(self.path("judgements", name.replace("/", "_") + ".jsonl"), rows)
    # Past the allowed share the stage fails (rows written first), so it is never marked done and a rerun
    # asks the failed judgements again (an HTTP judge's cache answers the rest without paying).
    kinds = [r.error_kind for r in results]
    check_failure_share(kinds, self.config.judge.max_failure_share, f"judging {name}",
                        "config.judge.max_failure_share")
    return {"win_rate": float(wr.win_rate), "ci_low": float(wr.ci_low), "ci_high": float(wr.ci_high), "n": int(wr.n),
            "judgements": len(rows), "ties": int(wr.ties), "failures": int(wr.failures),
            "failures_by_kind": dict(failures_by_kind(kinds)),
            "gold_q": float(np.mean(list(q_out.values()))),
            "gold_q_baseline": float(np.mean([r["gold_q_baseline"] for r in rows]))}

  def baseline(self, target: str, sft_dir: str) -> list[list[str]]:
    """config.bon.baseline_samples samples per eval prompt of the target SFT model at the best-of-n
    temperature: the opponent of every best-of-n system in `target`. Same key, same draws in every stage
    (drawn once per process: the translate-train and no-target-SFT baselines meet the same ones)."""
    if (target, sft_dir) not in self._baselines:
      b, tok = self.config.bon, self.bundle.tokenizer
      k = int(b.baseline_samples)
      _, prompts = self._prompts(target)
      sampler, params = self._sampler(sft_dir, b.temperature)
      out = sampler(params, prompts, jax.random.fold_in(self._key(target), 0), num_samples=k)
      self._baselines[target, sft_dir] = [[decode_response(tok, out.response(i * k + j)) for j in range(k)]
                                          for i in range(len(prompts))]
    return self._baselines[target, sft_dir]

  def _key(self, target: str) -> jax.Array:
    return jax.random.fold_in(jax.random.key(self.config.seed), self.plan.languages.index(target))

  def best_of_n(self, target: str, policy_dir: str, rm_dirs: dict[str, str], sft_dir: str, tag: str = "",
                placebo_dir: str = "") -> dict:
    """Best-of-n of `policy_dir` in `target` under every RM of rm_dirs, on shared candidates, judged
    against independent samples of the target SFT model `sft_dir` (`self.baseline`). Returns
    {source: win-rate cell} plus "_meta"; the main stage (tag "") also "_controls" (`_controls`) and,
    in _meta, where q varies among the candidates (`q_variance`)."""
    b, tok = self.config.bon, self.bundle.tokenizer
    examples, prompts = self._prompts(target)
    baseline = self.baseline(target, sft_dir)
    if tag == "":  # the target SFT's own samples: the baseline of every system in target
      files.write_jsonl(self.path("bon", target, "baseline.jsonl"),
                        [{"id": ex.id, "prompt": ex.prompt, "outputs": o, "lang": ex.lang, "task": ex.task}
                         for ex, o in zip(examples, baseline)])
    sampler, params = self._sampler(policy_dir, b.temperature)
    key = self._key(target)
    sources = list(rm_dirs)
    scorers = {s: self._scorer(rm_dirs[s]) for s in sources}

    def raw_scores(scorer):
      return (lambda rows: scorer.normalize(scorer.score_ids(rows))) if b.normalize_reward and scorer.stats else (
          scorer.score_ids)

    t0 = time.time()
    res = best_of_n(sampler, params, prompts, jax.random.fold_in(key, 1), b.n, raw_scores(scorers[sources[0]]),
                    rows_per_batch=b.rows_per_batch, missing_eos_penalty=b.missing_eos_penalty, keep_all=True)
    texts = [[decode_response(tok, c) for c in cands] for cands in res.candidates]
    rows = [list(prompts[i]) + c for i in range(len(prompts)) for c in res.candidates[i]]
    chosen, scores = {}, {}
    for s in sources:
      raw = res.raw_scores if s == sources[0] else np.asarray(raw_scores(scorers[s])(rows)).reshape(res.scores.shape)
      scores[s] = np.asarray(final_scores(raw, res.stopped, b.missing_eos_penalty))
      chosen[s] = np.argmax(scores[s], axis=1)
    gold = np.array([[quality(ex, t) for t in cand] for ex, cand in zip(examples, texts)])
    files.write_jsonl(self.path("bon", target + tag, "candidates.jsonl"), [
        {"id": ex.id, "candidates": texts[i], "gold_q": gold[i].tolist(),
         "scores": {s: scores[s][i].tolist() for s in sources}, "chosen": {s: int(chosen[s][i]) for s in sources}}
        for i, ex in enumerate(examples)])
    out = {"_meta": {"n": b.n, "kl_bound": res.kl_bound, "seconds": time.time() - t0,
                     "gold_q_sample": float(gold.mean()), "gold_q_oracle_best": float(gold.max(axis=1).mean()),
                     "eos_rate": float(res.stopped.mean()), "all_cut_off": res.all_cut_off}}
    for s in sources:
      outputs = [texts[i][chosen[s][i]] for i in range(len(examples))]
      out[s] = self.judge_against(f"bon{tag}/{s}-{target}", examples, outputs, baseline)
    if tag == "":
      picks = {"shortest": np.array([np.argmin([len(t.split()) for t in c]) for c in texts]),
               "longest": np.array([np.argmax([len(t.split()) for t in c]) for c in texts]),
               "oracle": gold.argmax(axis=1)}
      if placebo_dir:
        raw = np.asarray(raw_scores(self._scorer(placebo_dir))(rows)).reshape(res.scores.shape)
        picks = {"placebo": np.argmax(final_scores(raw, res.stopped, b.missing_eos_penalty), axis=1), **picks}
      out["_controls"] = {name: self.judge_against(f"bon/control-{name}-{target}", examples,
                                                   [texts[i][pick[i]] for i in range(len(examples))], baseline)
                          for name, pick in picks.items()}
      out["_meta"]["q_variance"] = q_variance(examples, texts)
    return out

  def greedy(self, lang: str, policy_dir: str) -> str:
    """Greedy outputs of a policy on the eval prompts (the PPO comparison's baseline), as JSONL."""
    examples, prompts = self._prompts(lang)
    sampler, params = self._sampler(policy_dir, 0.0)
    out = sampler(params, prompts, jax.random.key(0), num_samples=1)
    path = self.path("greedy", f"{lang}.jsonl")
    files.write_jsonl(path, [{"id": ex.id, "output": decode_response(self.bundle.tokenizer, out.response(i))}
                             for i, ex in enumerate(examples)])
    return path

  def ppo(self, source: str, target: str, sft_dir: str, rm_dir: str, greedy_path: str) -> dict:
    cfg = _job_config(self.config, self.config.ppo, lang=target, data_dir=self.workdir,
                      max_prompt_len=self.config.bon.max_prompt_len)
    with cfg.unlocked():
      del cfg["pairs"]
    result = train_ppo(cfg, self.path("ppo", f"{source}-{target}"), sft_dir, rm_dir, self.bundle)
    examples, prompts = self._prompts(target)
    mine = {r["id"]: r["output"] for r in files.read_jsonl(result.outputs)}
    base = {r["id"]: r["output"] for r in files.read_jsonl(greedy_path)}
    missing = [ex.id for ex in examples if ex.id not in mine]
    if missing:
      raise RuntimeError(f"PPO {source}-{target} has no eval output for {len(missing)} prompts (e.g. {missing[0]}); "
                         f"check config.ppo.eval_prompts >= config.bon.eval_prompts")
    # The policy as it is used: one sample per prompt at the best-of-n temperature, judged against the
    # same target SFT samples as every best-of-n system of the target (the mode of an SFT policy whose
    # flaws are each rarer than not is mostly clean, so greedy against greedy hides what PPO removed);
    # greedy against greedy stays beside it.
    sampler, params = self._sampler(result.model_dir, self.config.bon.temperature)
    out = sampler(params, prompts, jax.random.fold_in(self._key(target), 2), num_samples=1)
    samples = [decode_response(self.bundle.tokenizer, out.response(i)) for i in range(len(prompts))]
    cell = self.judge_against(f"ppo/{source}-{target}", examples, samples, self.baseline(target, sft_dir))
    cell["greedy"] = self.judge_against(f"ppo/{source}-{target}-greedy", examples, [mine[ex.id] for ex in examples],
                                        [[base[ex.id]] for ex in examples])
    # KL of one rollout batch is noisy (a k1 estimate over a few dozen sequences): report the mean of
    # the last _KL_WINDOW iterations.
    kls = [r["kl"] for r in read_metrics(self.path("ppo", f"{source}-{target}"), "train") if "kl" in r]
    cell["kl"] = float(np.mean(kls[-_KL_WINDOW:])) if kls else float("nan")
    cell["curve"] = [{k: r[k] for k in ("step", "gold_q", "rm_score", "win_rate") if k in r} for r in result.evals]
    return cell

  # -- baselines --------------------------------------------------------------------------------

  def _placebo(self, target: str) -> DataBundle:
    """The data with the target's RM labels shuffled (`shuffled_labels`): a placebo RM trained on it with
    the same steps must leave best-of-n at 50%, or the win rates measure something other than the labels."""
    tb, seed = self.bundle.testbed, self.config.data.seed
    pairs, points = dict(tb.pairs), dict(tb.pointwise)
    for split in PREFERENCE_SPLITS:
      for task in tb.tasks:
        key = (split, target, task)
        pairs[key], points[key] = shuffled_labels(tb.pairs[key], "pairwise", seed), shuffled_labels(
            tb.pointwise[key], "pointwise", seed)
    return dataclasses.replace(self.bundle, testbed=dataclasses.replace(tb, pairs=pairs, pointwise=points))

  def _translated(self, what: str, target: str) -> DataBundle:
    """The data with the target's SFT examples or RM pairs replaced by the source's, translated."""
    tb, src = self.bundle.testbed, self.plan.baseline_source
    err, seed = self.config.data.translation_error_rate, self.config.data.seed
    examples, pairs = dict(tb.examples), dict(tb.pairs)
    for task in tb.tasks:
      if what == "sft":
        examples[("sft", target, task)] = [translate(ex, target, err, seed) for ex in tb.examples[("sft", src, task)]]
      else:
        pairs[("rm_train", target, task)] = translate_pairs(tb.pairs[("rm_train", src, task)], tb.index(), target,
                                                            err, seed)
    return dataclasses.replace(self.bundle, testbed=dataclasses.replace(tb, examples=examples, pairs=pairs))


def _stage_configs(config: ml_collections.ConfigDict, plan: Plan) -> dict[str, dict]:
  """What each kind of stage depends on (the runner refuses to reuse a stage finished under other
  values). The mesh is left out (it changes layouts, not results); so are the PPO pairs and baseline
  targets, so adding one reuses every finished stage."""
  def pick(*keys):
    return {k: config[k].to_dict() if isinstance(config[k], ml_collections.ConfigDict) else config[k] for k in keys}

  grid = {"languages": list(plan.languages), "sources": list(plan.sources)}
  base = pick("seed", "data", "model", "init_hf", "base")
  train = {**base, **pick("sft")}
  rm = {**train, **pick("rm")}
  judged = {**rm, **grid, **pick("bon", "judge", "winrate", "controls")}
  ppo = {k: v for k, v in config.ppo.to_dict().items() if k != "pairs"}
  return {"data": pick("seed", "data"), "base": base, "sft": train, "rm": rm, "placebo": rm,
          "rm_accuracy": {**rm, **grid},
          "bon": judged, "greedy": {**train, **pick("bon")}, "ppo": {**judged, "ppo": ppo},
          "baseline": {**judged, "baseline_source": plan.baseline_source}}


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """The whole study; returns results.json's content."""
  p = Pipeline(config, workdir)
  plan = p.plan
  stage_configs = _stage_configs(config, plan)

  def run_stage(name: str, fn):
    return p.runner.run(name, fn, stage_configs[name.split("/")[0]])

  def data() -> dict:
    p.bundle = prepare(config.data, p.workdir)
    return {"data_dir": p.bundle.data_dir, "summary": p.bundle.summary}

  run_stage("data", data)
  if p.bundle is None:  # the stage ran before: read the data back from WORKDIR/data
    p.bundle = prepare(config.data, p.workdir)
  base = "" if config.init_hf else run_stage("base", lambda: train_sft(
      _job_config(config, config.base, languages=tuple(config.data.languages)), p.path("base"), p.bundle).model_dir)
  sft = {l: run_stage(f"sft/{l}", lambda l=l: p.sft(l, base, p.path("sft", l))) for l in plan._sft_langs()}
  rm = {s: run_stage(f"rm/{s}", lambda s=s: p.rm(s, sft[s], p.path("rm", s))) for s in plan.sources}
  acc = run_stage("rm_accuracy", lambda: rm_accuracy_matrix(
      rm, p.bundle, plan.languages, config.rm.rm.loss, config.rm.max_len, config.rm.eval_batch_size, p.mesh,
      config.rm.val_examples))
  placebo = {t: run_stage(f"placebo/{t}", lambda t=t: p.rm(t, sft[t], p.path("controls", "placebo", t),
                                                            p._placebo(t)))
             for t in plan.languages} if config.controls.placebo else {}
  bon = {t: run_stage(f"bon/{t}", lambda t=t: p.best_of_n(t, sft[t], rm, sft[t], placebo_dir=placebo.get(t, "")))
         for t in plan.languages}
  greedy = {t: run_stage(f"greedy/{t}", lambda t=t: p.greedy(t, sft[t])) for _, t in plan.ppo_pairs}
  ppo = {(s, t): run_stage(f"ppo/{s}-{t}", lambda s=s, t=t: p.ppo(s, t, sft[t], rm[s], greedy[t]))
         for s, t in plan.ppo_pairs}
  if ppo:  # every pair's curves in one figure: proxy reward next to gold q and KL
    plot_curves({f"{s}-{t}": p.path("ppo", f"{s}-{t}") for s, t in plan.ppo_pairs}, p.path("ppo_curves.png"))

  baselines: dict[str, dict] = {}
  src = plan.baseline_source
  for t in plan.baseline_targets:
    if config.baselines.translate_train:
      def tt(t=t):
        rm_t = p.rm(t, sft[t], p.path("baselines", "translate_train", t), p._translated("rm", t))
        return p.best_of_n(t, sft[t], {f"translate-train {src}->{t}": rm_t}, sft[t], tag="@translate_train")
      cell = run_stage(f"baseline/translate_train/{t}", tt)
      baselines.setdefault(f"BoN, RM translate-train {src}->target", {})[t] = cell[f"translate-train {src}->{t}"]
    if config.baselines.no_target_sft:
      def nts(t=t):
        pol = p.sft(t, base, p.path("baselines", "no_target_sft", t), p._translated("sft", t))
        return p.best_of_n(t, pol, {src: rm[src]}, sft[t], tag="@no_target_sft")  # vs the target's SFT
      cell = run_stage(f"baseline/no_target_sft/{t}", nts)
      baselines.setdefault(f"no target SFT data ({src} translated) + BoN({src} RM)", {})[t] = cell[src]

  results = {
      "bon": {s: {t: bon[t][s] for t in plan.languages} for s in plan.sources},
      "ppo": {s: {t: ppo[(s, t)] for (s2, t) in plan.ppo_pairs if s2 == s} for s in {s for s, _ in plan.ppo_pairs}},
      "rm_accuracy": acc["rm_accuracy"], "rm_baselines": acc["rm_baselines"],
      **{k: acc[k] for k in ("rm_accuracy_vs_gold", "rm_accuracy_by_error", "n_by_error", "rm_accuracy_by_error_pair")
         if k in acc},
      "baselines": baselines,
      "controls": {t: bon[t]["_controls"] for t in plan.languages},
      "bon_meta": {t: bon[t]["_meta"] for t in plan.languages},
      "kl": {"bon_bound": next(iter(bon.values()))["_meta"]["kl_bound"],
             "ppo": {f"{s}-{t}": ppo[(s, t)]["kl"] for s, t in plan.ppo_pairs}},
      "judge": config.judge.kind, "n_eval": len(p._prompts(plan.languages[0])[0]),
      "timing": dict(p.runner.timing),
      "config": {**config.to_dict(), "languages": list(plan.languages), "sources": list(plan.sources),
                 "bon_n": config.bon.n},
  }
  files.write_json(p.path("results.json"), results)
  path = write_report(results, p.workdir)
  logging.info("pipeline finished: %s", path)
  print(f"[pipeline] report: {path}", flush=True)
  return results
