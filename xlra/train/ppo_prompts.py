"""What `xlra ppo` trains and evaluates on, and with which tokenizer.

Prompts come from config.prompts_jsonl (real RL prompts: JSONL {id, lang, prompt[, task]}, the rows of
config.lang and, when set, config.task) or, when it is empty, from the testbed RL split of config.data.
Evaluation prompts likewise from config.eval_prompts_jsonl or the testbed eval split (at most
config.eval_prompts of them; none on real prompts without a file).

The tokenizer is the one saved beside the policy (training exports and conversions hold it), else the
data's. Training on the testbed with a policy that was trained with another tokenizer would feed it
ids it never saw, so that is refused, naming the field to set; so is a tokenizer that does not fit the
policy's embedding rows, and an RM saved with another tokenizer. All before anything compiles.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from absl import logging

from xlra.data.job import DataBundle, prepare
from xlra.data.sources.prompts import read_prompts
from xlra.data.testbed import Annotator
from xlra.data.tokenizer import (check_fits, check_same_tokenizer, encode_prompt, load_tokenizer, same_tokenizer,
                                 saved_tokenizer_dir)


@dataclasses.dataclass
class PromptSet:
  """Rows {id, lang, task, prompt, example} (example: the testbed Example, None for real prompts) and
  their token ids (prompts over config.max_prompt_len left out and counted)."""
  rows: list[dict]
  ids: list[list[int]]

  @property
  def examples(self) -> list[Any] | None:
    """The testbed examples (for gold q and the oracle), or None for real prompts."""
    return [r["example"] for r in self.rows] if self.rows and self.rows[0]["example"] is not None else None


@dataclasses.dataclass
class PPOData:
  tokenizer: Any
  tokenizer_dir: str
  source: str  # where the RL prompts came from (a path, or "testbed rl/LANG")
  rl: PromptSet
  eval: PromptSet
  annotator: Annotator | None  # the testbed's simulated annotators (their bias is logged), None for real prompts


def _encode(tok, rows: list[dict], config, what: str) -> PromptSet:
  kept, ids = [], []
  for r in rows:
    p = encode_prompt(tok, r["prompt"])
    if len(p) <= config.max_prompt_len:
      kept.append(r)
      ids.append(p)
  if len(kept) < len(rows):
    logging.warning("ppo: skipped %d of %d %s prompts longer than config.max_prompt_len=%d", len(rows) - len(kept),
                    len(rows), what, config.max_prompt_len)
  return PromptSet(kept, ids)


def _file_rows(path: str, config, field: str) -> list[dict]:
  rows = [r for r in read_prompts(path, config.task, field)
          if r["lang"] == config.lang and (not config.task or r["task"] == config.task)]
  if not rows:
    raise ValueError(f"{field}={path!r} has no prompts with lang={config.lang!r}"
                     f"{f' and task={config.task!r}' if config.task else ''} (config.lang / config.task)")
  return [{**r, "example": None} for r in rows]


def _testbed_rows(bundle: DataBundle, config, split: str, limit: int | None = None) -> list[dict]:
  examples = bundle.testbed.get(split, config.lang, config.task or None)[:limit]
  return [{"id": ex.id, "lang": ex.lang, "task": ex.task, "prompt": ex.prompt, "example": ex} for ex in examples]


def _testbed(config, workdir: str, data: DataBundle | None, policy_dir: str) -> DataBundle:
  bundle = data if data is not None else prepare(config.data, config.data_dir or workdir)
  if bundle.testbed is None:
    raise ValueError("config.prompts_jsonl is empty, so the RL prompts would come from the testbed, but config.data "
                     "is real data: set config.prompts_jsonl to a JSONL of {id, lang, prompt[, task]} RL prompts")
  own = saved_tokenizer_dir(policy_dir)
  if own is not None:
    policy_tok = load_tokenizer(own)
    if not same_tokenizer(policy_tok, bundle.tokenizer):
      raise ValueError(
          f"config.prompts_jsonl is empty, so the RL prompts would come from the testbed with its own tokenizer "
          f"({len(bundle.tokenizer)} tokens, {bundle.tokenizer_dir}), but config.policy_checkpoint={policy_dir!r} "
          f"was trained with another one ({len(policy_tok)} tokens, {own}). Set config.prompts_jsonl to real RL "
          f"prompts (JSONL {{id, lang, prompt[, task]}}, held out from the SFT/RM data), or point "
          f"config.data_dir at the workdir whose testbed trained the policy.")
  return bundle


def load_ppo_data(config, workdir: str, policy_dir: str, rm_dir: str, vocab_size: int,
                  data: DataBundle | None = None) -> PPOData:
  """Prompts, tokenizer and annotators of a PPO run; every check that names a field happens here."""
  if config.prompts_jsonl:
    own = saved_tokenizer_dir(policy_dir)
    bundle = data if own is None else None  # the policy's own tokenizer wins over a pipeline's data
    tok_dir = own or (bundle.tokenizer_dir if bundle is not None else None)
    if tok_dir is None:
      raise ValueError(f"config.policy_checkpoint={policy_dir!r} holds no tokenizer files; real prompts need the "
                       "tokenizer the policy was trained with beside it (re-export it with this xlra version)")
    tok = bundle.tokenizer if own is None else load_tokenizer(own)
    rl_rows, source, annotator = _file_rows(config.prompts_jsonl, config, "config.prompts_jsonl"), \
        config.prompts_jsonl, None
    eval_rows = []
  else:
    bundle = _testbed(config, workdir, data, policy_dir)
    tok, tok_dir = bundle.tokenizer, bundle.tokenizer_dir
    rl_rows, source = _testbed_rows(bundle, config, "rl"), f"testbed rl/{config.lang}"
    annotator = Annotator.from_config(config.data.annotator)
    eval_rows = _testbed_rows(bundle, config, "eval", config.eval_prompts) if config.eval_prompts else []
  if config.eval_prompts_jsonl:
    eval_rows = _file_rows(config.eval_prompts_jsonl, config, "config.eval_prompts_jsonl")[:config.eval_prompts]
  check_fits(tok, vocab_size, f"config.policy_checkpoint={policy_dir!r}", tok_dir)
  check_same_tokenizer(tok, tok_dir, rm_dir, "config.rm_checkpoint")
  rl = _encode(tok, rl_rows, config, "RL")
  if not rl.rows:
    raise ValueError(f"no RL prompts for lang={config.lang!r} task={config.task!r} from {source} "
                     f"({len(rl_rows)} over config.max_prompt_len={config.max_prompt_len})")
  return PPOData(tok, tok_dir, source, rl, _encode(tok, eval_rows, config, "eval"), annotator)
