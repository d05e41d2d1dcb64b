"""What each supervised job trains and validates on, from a prepared `xlra.data.job.DataBundle`.

Records use the data package's schemas (SFT {prompt, response}, pairwise {prompt, chosen, rejected},
pointwise {prompt, output, label}, all with `lang`); tokenisation, padding and the resumable loaders
are `xlra.data.batching`'s. This module only picks the records of a job's languages and split, and
builds the fixed-order validation batches (the training loaders shuffle and never end; validation is
one complete pass, its last batch padded with weight-0 rows so every batch has the compiled shape).
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import numpy as np
from absl import logging

from xlra.data import batching
from xlra.data.skips import EmptySplitError, SkipCounter
from xlra.data.tokenizer import encode_response

SFT_CORPORA = ("sft", "base")


def _check_langs(bundle, languages: Sequence[str], field: str = "config.languages") -> None:
  have = bundle.testbed.languages if bundle.testbed is not None else None
  if have is not None and set(languages) - set(have):
    raise ValueError(f"{field}={tuple(languages)} includes languages the data lacks; the data has {have}")
  if not languages:
    raise ValueError(f"{field} is empty")


def _hold_out(records: list[dict], n: int, what: str) -> tuple[list[dict], list[dict]]:
  """The last `n` records of each language are validation (deterministic; never trained on)."""
  by_lang: dict[str, list[dict]] = {}
  for r in records:
    by_lang.setdefault(r["lang"], []).append(r)
  train, val = [], []
  for lang, rows in by_lang.items():
    if len(rows) <= n:
      raise ValueError(f"{what}: {len(rows)} {lang} records cannot spare config.val_examples={n} for validation")
    train += rows[:len(rows) - n]
    val += rows[len(rows) - n:]
  return train, val


def sft_records(bundle, languages: Sequence[str], corpus: str, val_examples: int) -> tuple[list[dict], list[dict]]:
  """(train, validation) SFT records. corpus "sft": prompt + reference; "base": raw documents for
  language-model pre-training (`prompt` empty: the loss covers the whole document)."""
  if corpus not in SFT_CORPORA:
    raise ValueError(f"config.corpus={corpus!r}: choose one of {SFT_CORPORA}")
  _check_langs(bundle, languages)
  if bundle.testbed is not None:
    tb = bundle.testbed
    if corpus == "base":
      recs = [{"id": f"{lang}-base-{i}", "lang": lang, "prompt": "", "response": doc}
              for lang in languages for i, doc in enumerate(tb.base[lang])]
    else:
      recs = [{"id": ex.id, "lang": lang, "prompt": ex.prompt, "response": ex.reference}
              for lang in languages for ex in tb.get("sft", lang)]
  else:
    if corpus == "base":
      raise ValueError("config.corpus='base' needs the testbed (real runs start from a pretrained checkpoint)")
    recs = [r for r in bundle.real["sft"] if r["lang"] in languages]
  return _hold_out(recs, val_examples, f"SFT data ({corpus})")


def rm_records(bundle, languages: Sequence[str], kind: str, val_examples: int = 0
               ) -> tuple[list[dict], list[dict]]:
  """(train, validation) reward-model records of `kind` ("pairwise" | "pointwise"). The testbed has
  its own rm_val split; real data holds out the last `val_examples` records per language."""
  _check_langs(bundle, languages)
  if bundle.testbed is not None:
    get = bundle.testbed.get_pairs if kind == "pairwise" else bundle.testbed.get_pointwise
    return ([r for lang in languages for r in get("rm_train", lang)],
            [r for lang in languages for r in get("rm_val", lang)])
  recs = [r for r in bundle.real["pairs" if kind == "pairwise" else "pointwise"] if r["lang"] in languages]
  return _hold_out(recs, val_examples, f"{kind} RM data")


def reference_records(bundle, languages: Sequence[str], val: list[dict], kind: str) -> list[dict]:
  """Reference outputs for the reward statistics: the testbed's references of the rm_val prompts,
  else the validation set's preferred (pairwise) or good (pointwise) outputs."""
  if bundle.testbed is not None:
    return [{"id": ex.id, "lang": lang, "prompt": ex.prompt, "output": ex.reference}
            for lang in languages for ex in bundle.testbed.get("rm_val", lang)]
  if kind == "pairwise":
    return [{**r, "output": r["chosen"]} for r in val]
  return [r for r in val if r["label"]]


def encode(tokenizer, records: list[dict], fields: Sequence[str], max_len: int, what: str) -> list[dict]:
  """Token ids per record; over-long ones are skipped and counted (logged by the SkipCounter)."""
  skips = SkipCounter(what)
  if records and all(r.get("prompt") == "" for r in records):  # raw documents: BOS + text + EOS, cut to fit
    out = []
    for r in records:
      ids = encode_response(tokenizer, r["response"])
      out.append({**r, "prompt": [tokenizer.bos_token_id], "response": ids[:max_len - 1]})
      skips.keep()
    return out
  try:
    out = batching.encode_records(tokenizer, records, fields, max_len, skips)
  except EmptySplitError as e:
    if skips.skipped and skips.counts["too_long"] == skips.skipped:
      raise EmptySplitError(f"{e}; every record is longer than config.max_len={max_len} tokens: raise it") from None
    raise
  if skips.counts:
    logging.info("%s", skips.report())
  return out


def collate_fn(kind: str, encoded: list[dict], pad_id: int, length: int) -> Callable[[list[int]], dict]:
  """indices -> batch, with the data package's padding for each kind."""
  if kind == "sft":
    return lambda idx: batching.sft_batch([encoded[i]["prompt"] for i in idx], [encoded[i]["response"] for i in idx],
                                          pad_id, length)
  if kind == "pairwise":
    return lambda idx: batching.pairwise_batch([encoded[i]["prompt"] for i in idx],
                                               [encoded[i]["chosen"] for i in idx],
                                               [encoded[i]["rejected"] for i in idx], pad_id, length)
  if kind == "pointwise":
    return lambda idx: batching.pointwise_batch([encoded[i]["prompt"] for i in idx],
                                                [encoded[i]["output"] for i in idx],
                                                [encoded[i]["label"] for i in idx], pad_id, length)
  raise ValueError(f"unknown batch kind {kind!r}")


def eval_batches(kind: str, encoded: list[dict], batch_size: int, pad_id: int, length: int) -> list[dict]:
  """Every record once, in order, as this process's rows of fixed-size batches; the last batch is
  filled with copies of its first row at example_weight 0."""
  collate = collate_fn(kind, encoded, pad_id, length)
  out = []
  for start in range(0, len(encoded), batch_size):
    idx = list(range(start, min(start + batch_size, len(encoded))))
    weight = np.zeros(batch_size, np.float32)
    weight[:len(idx)] = 1.0
    batch = collate(idx + [idx[0]] * (batch_size - len(idx)))
    batch["example_weight"] = weight
    out.append({k: batching.shard(v, jax.process_index(), jax.process_count()) for k, v in batch.items()})
  return out


def train_loader(kind: str, encoded: list[dict], batch_size: int, pad_id: int, length: int, seed: int,
                 pack: bool = False) -> batching.Loader:
  """The resumable, shuffled, process-sharded loader of the data package."""
  kw = dict(seed=seed, process_index=jax.process_index(), process_count=jax.process_count())
  if kind == "sft":
    return batching.sft_loader(encoded, batch_size, pad_id, length, pack=pack, **kw)
  make = {"pairwise": batching.pairwise_loader, "pointwise": batching.pointwise_loader}[kind]
  return make(encoded, batch_size, pad_id, length, **kw)
