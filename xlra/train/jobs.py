"""The supervised jobs: `xlra sft` and `xlra rm`, and the functions the pipeline calls directly.

    train_sft(config, workdir, data=None) -> TrainResult     (result.model_dir: WORKDIR/model)
    train_rm(config, workdir, data=None)  -> TrainResult     (+ WORKDIR/model/reward_stats.json)

`data` is a prepared `xlra.data.job.DataBundle`; without it the job prepares the data of
`config.data` in `config.data_dir` (or in WORKDIR when that is empty), generating the testbed there.
Both jobs run `xlra.train.loop.train`, which resumes from WORKDIR's own checkpoints first.
"""

from __future__ import annotations

import os

import ml_collections
from absl import logging
from flax import nnx

from xlra import files
from xlra.data.job import DataBundle, prepare
from xlra.data.tokenizer import check_fits
from xlra.models.checkpoint_io import load_model, read_model_config
from xlra.models.config import ModelConfig
from xlra.models.heads import ScalarModel
from xlra.models.hf import config_from_hf, load_hf
from xlra.models.presets import get_preset
from xlra.models.transformer import Transformer
from xlra.train import datasets, loop, reward, scoring, sft
from xlra.train.checkpoint import resolve_model_dir
from xlra.train.metrics import flops_per_token

_VOCAB_MULTIPLE = 128  # a scratch model's vocabulary rows, so the tensor axis divides them


def load_data(config: ml_collections.ConfigDict, workdir: str, data: DataBundle | None = None) -> DataBundle:
  return data if data is not None else prepare(config.data, config.data_dir or workdir)


def model_config(config: ml_collections.ConfigDict, tokenizer) -> ModelConfig:
  """The architecture: that of config.init_checkpoint, else of config.init_hf, else the preset
  config.model.preset with the tokenizer's vocabulary; dtypes from config.model either way.

  It depends on the config only (not on what the workdir holds), so a resumed run rebuilds the
  same model its checkpoint was written from.
  """
  m = config.model
  if config.max_len < 2:
    raise ValueError(f"config.max_len={config.max_len} must be >= 2 (tokens per row: prompt and response)")
  if config.init_checkpoint:
    cfg = read_model_config(resolve_model_dir(config.init_checkpoint))[1]
  elif config.init_hf:
    path = os.path.join(config.init_hf, "config.json")
    if not os.path.exists(path):
      raise FileNotFoundError(f"config.init_hf={config.init_hf!r} has no config.json")
    cfg = config_from_hf(files.read_json(path))
  else:  # from scratch: the preset's shape with exactly the tokenizer's vocabulary (rounded for sharding)
    cfg = get_preset(m.preset, vocab_size=-(-len(tokenizer) // _VOCAB_MULTIPLE) * _VOCAB_MULTIPLE)
    cfg = cfg.replace(max_seq_len=max(cfg.max_seq_len, config.max_len))
  cfg = cfg.replace(dtype=m.dtype, param_dtype=m.param_dtype)
  check_fits(tokenizer, cfg.vocab_size, "the model (set config.data.tokenizer.path to the checkpoint's own "
             "tokenizer, or pick another config.model.preset)")
  if config.max_len > cfg.max_seq_len:
    raise ValueError(f"config.max_len={config.max_len} exceeds the model's max_seq_len={cfg.max_seq_len}")
  return cfg


def _load_backbone(source: str, path: str, cfg: ModelConfig, mesh, rules) -> nnx.Module:
  if source == "hf":
    return load_hf(path, dtype=cfg.param_dtype, compute_dtype=cfg.dtype, mesh=mesh, rules=rules)
  return load_model(path, dtype=cfg.param_dtype, compute_dtype=cfg.dtype, mesh=mesh, rules=rules)


def _task_common(config, bundle: DataBundle, kind: str, train: list[dict], val: list[dict], fields):
  tok, pad = bundle.tokenizer, bundle.tokenizer.pad_token_id
  enc_train = datasets.encode(tok, train, fields, config.max_len, f"{kind} train")
  enc_val = datasets.encode(tok, val, fields, config.max_len, f"{kind} validation") if val else []
  if config.batch_size > len(enc_train) and not (kind == "sft" and config.pack):
    raise ValueError(f"config.batch_size={config.batch_size} is larger than the {len(enc_train)} {kind} training "
                     f"examples (after config.max_len={config.max_len} filtering); lower it or add data")
  loader = datasets.train_loader(kind, enc_train, config.batch_size, pad, config.max_len, config.seed,
                                 pack=kind == "sft" and config.pack)
  evals = datasets.eval_batches(kind, enc_val, config.eval_batch_size, pad, config.max_len) if enc_val else []
  return loader, evals, len(enc_train)


# -- SFT ------------------------------------------------------------------------------------------

def sft_task(config: ml_collections.ConfigDict, bundle: DataBundle) -> loop.Task:
  cfg = model_config(config, bundle.tokenizer)
  train, val = datasets.sft_records(bundle, config.languages, config.corpus, config.val_examples)
  loader, evals, n = _task_common(config, bundle, "sft", train, val, ("response",))

  def load_init(source, path, abstract, mesh, rules):
    model = _load_backbone(source, path, cfg, mesh, rules)
    if not isinstance(model, Transformer):
      raise ValueError(f"config.init_checkpoint={path!r} holds a reward model; SFT starts from a language model")
    return nnx.split(model, nnx.Param)[1]

  return loop.Task(name="sft", build_model=lambda: Transformer(cfg, rngs=nnx.Rngs(config.seed)),
                   loss_fn=sft.sft_loss, train_data=loader, eval_data=evals, load_init=load_init,
                   flops_per_token=flops_per_token(cfg, config.max_len, lm_head=True), train_examples=n,
                   compute_dtype=cfg.dtype, tokenizer=bundle.tokenizer)


def train_sft(config: ml_collections.ConfigDict, workdir: str, data: DataBundle | None = None,
              should_stop=None) -> loop.TrainResult:
  """Supervised fine-tuning (or base-LM training with config.corpus='base'); the model lands in
  WORKDIR/model (best validation loss)."""
  bundle = load_data(config, workdir, data)
  return loop.train(config, workdir, sft_task(config, bundle), should_stop)


def run_sft(config: ml_collections.ConfigDict, workdir: str) -> None:
  """`xlra sft --config=configs/sft.py:tiny --workdir=DIR`."""
  result = train_sft(config, workdir)
  logging.info("sft finished at step %d: %s (validation %s)", result.step, result.model_dir, result.val)


# -- reward models --------------------------------------------------------------------------------

def rm_task(config: ml_collections.ConfigDict, bundle: DataBundle) -> loop.Task:
  cfg = model_config(config, bundle.tokenizer)
  kind = config.rm.loss
  loss_fn = reward.rm_loss_fn(kind, config.rm.margin_scale, config.rm.center_coef)
  train, val = datasets.rm_records(bundle, config.languages, kind, config.val_examples)
  fields = ("chosen", "rejected") if kind == "pairwise" else ("output",)
  loader, evals, n = _task_common(config, bundle, kind, train, val, fields)

  def load_init(source, path, abstract, mesh, rules):
    model = _load_backbone(source, path, cfg, mesh, rules)
    if isinstance(model, Transformer):  # an SFT model: a fresh scalar head on its decoder
      model = ScalarModel(cfg, rngs=nnx.Rngs(config.seed), backbone=model)
    return nnx.split(model, nnx.Param)[1]

  return loop.Task(name=f"rm[{','.join(config.languages)}]",
                   build_model=lambda: ScalarModel(cfg, rngs=nnx.Rngs(config.seed)),
                   loss_fn=loss_fn, train_data=loader, eval_data=evals, load_init=load_init,
                   flops_per_token=flops_per_token(cfg, config.max_len, lm_head=False), train_examples=n,
                   compute_dtype=cfg.dtype, tokenizer=bundle.tokenizer)


def train_rm(config: ml_collections.ConfigDict, workdir: str, data: DataBundle | None = None,
             should_stop=None) -> loop.TrainResult:
  """A reward model for config.languages (pointwise BCE or pairwise Bradley-Terry per config.rm.loss),
  initialised from config.init_checkpoint (an SFT model) when given. Exports WORKDIR/model (best
  by config.best_metric) and WORKDIR/model/reward_stats.json (scores on reference outputs)."""
  bundle = load_data(config, workdir, data)
  if config.sft_first and not config.init_checkpoint and not config.init_hf:
    config = config.copy_and_resolve_references()  # the caller's config stays as it was
    with config.unlocked():
      config.init_checkpoint = train_sft(config.sft, os.path.join(workdir, "sft"), bundle).model_dir
  result = loop.train(config, workdir, rm_task(config, bundle), should_stop)
  _, val = datasets.rm_records(bundle, config.languages, config.rm.loss, config.val_examples)
  refs = datasets.reference_records(bundle, config.languages, val, config.rm.loss)
  scorer = scoring.RewardScorer(result.graphdef, result.params, result.mesh, bundle.tokenizer,
                                config.eval_batch_size, config.max_len)
  enc = datasets.encode(bundle.tokenizer, refs, ("output",), config.max_len, "reference outputs")
  stats = scoring.write_stats(result.model_dir, scorer.score_ids([e["prompt"] + e["output"] for e in enc]),
                              f"{len(enc)} reference outputs ({','.join(config.languages)})")
  logging.info("rm reward stats on reference outputs: %s", stats)
  return result


def run_rm(config: ml_collections.ConfigDict, workdir: str) -> None:
  """`xlra rm --config=configs/rm.py:tiny --workdir=DIR`."""
  result = train_rm(config, workdir)
  logging.info("rm finished at step %d: %s (validation %s)", result.step, result.model_dir, result.val)
