"""Local LM judge: any xlra Transformer, prompted pairwise, read at the answer position.

As in the paper's PaLM-2-L judge, the preference is the next-token probability of "1" against "2"
(renormalised over the two) at the end of the prompt, averaged over both presentation orders:
p(A better) = 0.5 * (P("1" | A first) + P("2" | B first)). The average cancels the model's position
bias and makes the judge exactly antisymmetric: p(a, b) = 1 - p(b, a).

Both orders of every request go through one jitted forward: rows right-padded to a bucketed length
(powers of two from `min_bucket`), the batch padded to `batch_size` rows, the logits read only at each
row's last real token (no [B, L, V] tensor).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from xlra.eval.judges import base, prompts
from xlra.models.transformer import Transformer

# Answer strings tried in order: after a plain-text cue a model writes " 1"; after a chat generation
# prompt it writes "1". The first pair that extends the prompt by exactly one token each is used.
_PLAIN_ANSWERS = ((" 1", " 2"), ("1", "2"))
_CHAT_ANSWERS = (("1", "2"), (" 1", " 2"))


@dataclasses.dataclass
class LocalJudgeConfig:
  batch_size: int = 8  # rows per forward pass (each request is two rows, one per order)
  max_len: int = 0  # longest prompt in tokens; 0 = the model's max_seq_len. Longer: a `too_long` failure
  min_bucket: int = 64  # smallest padded length; lengths are powers of two from here
  chat_template: str = "auto"  # "auto": use the tokenizer's chat template if it has one; "yes"; "no"

  def __post_init__(self):
    if self.chat_template not in ("auto", "yes", "no"):
      raise ValueError(f"LocalJudgeConfig.chat_template={self.chat_template!r}: choose auto, yes or no")
    if self.batch_size < 1 or self.min_bucket < 1 or self.max_len < 0:
      raise ValueError("LocalJudgeConfig: batch_size >= 1, min_bucket >= 1 and max_len >= 0 are required")


class LocalJudge(base.Judge):
  """`LocalJudge(model, tokenizer).judge(requests)`; tokenizer is a transformers tokenizer."""

  name = "local"

  def __init__(self, model: Transformer, tokenizer: Any, config: LocalJudgeConfig | None = None, mesh=None):
    super().__init__()
    self.config = config or LocalJudgeConfig()
    self.tokenizer = tokenizer
    self.max_len = self.config.max_len or model.cfg.max_seq_len
    if self.config.chat_template == "yes" and not getattr(tokenizer, "chat_template", None):
      raise ValueError("LocalJudgeConfig.chat_template='yes' but the tokenizer has no chat template")
    self.use_chat = self.config.chat_template == "yes" or (
        self.config.chat_template == "auto" and bool(getattr(tokenizer, "chat_template", None)))
    self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    self.graphdef, state = nnx.split(model)
    self.mesh = mesh
    if mesh is not None:
      from xlra.parallel.mesh import batch_sharding, check_batch_size, shard_tree

      check_batch_size(self.config.batch_size, mesh, "LocalJudgeConfig.batch_size")
      state = shard_tree(state, mesh)
      self._rows = batch_sharding(mesh, 2)
      self._vec = batch_sharding(mesh, 1)
    self.state = state
    self._forward = jax.jit(self._p_first)

  @classmethod
  def from_checkpoint(cls, path: str, config: LocalJudgeConfig | None = None, dtype: str = "float32",
                      fmt: str = "auto", tokenizer: str = "", mesh=None) -> "LocalJudge":
    """Judge from a Hugging Face checkpoint, an xlra model directory or a training workdir; the tokenizer
    directory defaults to the model's own (HF checkpoints, training exports and `xlra convert` outputs hold
    their tokenizer files)."""
    import transformers

    from xlra.data.tokenizer import check_fits
    from xlra.eval.checkpoints import lm_dir, load_lm

    tok = transformers.AutoTokenizer.from_pretrained(tokenizer or lm_dir(path))
    model = load_lm(path, fmt, dtype, mesh)
    check_fits(tok, model.cfg.vocab_size, f"config.judge.local.path={path!r}", tokenizer or lm_dir(path))
    return cls(model, tok, config, mesh)

  # ---- tokens ---------------------------------------------------------------------------------------

  def _encode(self, text: str) -> list[int]:
    # A rendered chat template already holds its special tokens; a plain prompt gets the usual BOS.
    return list(self.tokenizer(text, add_special_tokens=not self.use_chat)["input_ids"])

  def render(self, req: base.Judgement, first: str, second: str) -> tuple[list[int], tuple[int, int]]:
    """Prompt token ids for one presentation order, and the ids of the answers "1" and "2" after it."""
    if self.use_chat:
      msgs = prompts.chat_messages(req.task, req.prompt, first, second, req.lang)
      text = self.tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
      variants = _CHAT_ANSWERS
    else:
      text = prompts.plain_text(req.task, req.prompt, first, second, req.lang)
      variants = _PLAIN_ANSWERS
    ids = self._encode(text)
    for one, two in variants:
      a, b = self._encode(text + one), self._encode(text + two)
      if len(a) == len(b) == len(ids) + 1 and a[:-1] == ids and b[:-1] == ids and a[-1] != b[-1]:
        return ids, (a[-1], b[-1])
    raise ValueError(f"the tokenizer has no single-token answer {[v for pair in variants for v in pair]} that "
                     f"extends the judge prompt (prompt ends with {text[-30:]!r}); this judge reads one token")

  # ---- device ---------------------------------------------------------------------------------------

  def _p_first(self, state, tokens, mask, last, answers):
    """P("1") renormalised over {"1", "2"} at each row's last real token. [B]"""
    model = nnx.merge(self.graphdef, state)
    hidden, _ = model.hidden(tokens, mask=mask)
    at_last = jnp.take_along_axis(hidden, last[:, None, None], axis=1)  # [B, 1, D]
    logits = model.logits(at_last)[:, 0].astype(jnp.float32)  # [B, V]
    pair = jnp.take_along_axis(logits, answers, axis=1)  # [B, 2]
    return jax.nn.softmax(pair, axis=-1)[:, 0]

  def _run(self, rows: list[tuple[list[int], tuple[int, int]]]) -> np.ndarray:
    bs = self.config.batch_size
    out = np.empty(len(rows), np.float64)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))  # similar lengths share a bucket
    for start in range(0, len(order), bs):
      idx = order[start:start + bs]
      longest = max(len(rows[i][0]) for i in idx)
      length = self.config.min_bucket
      while length < longest:
        length *= 2
      length = min(length, max(self.max_len, longest))
      tokens = np.full((bs, length), self.pad_id, np.int32)
      mask = np.zeros((bs, length), bool)
      last = np.zeros(bs, np.int32)
      answers = np.zeros((bs, 2), np.int32)
      for r, i in enumerate(idx):  # right padding; unused rows stay fully masked
        ids, ans = rows[i]
        tokens[r, :len(ids)], mask[r, :len(ids)], last[r], answers[r] = ids, True, len(ids) - 1, ans
      args = (tokens, mask, last, answers)
      if self.mesh is not None:
        args = tuple(jax.device_put(a, self._rows if a.ndim == 2 else self._vec) for a in args)
      p = np.asarray(self._forward(self.state, *args))
      out[idx] = p[:len(idx)]
    return out

  def _judge(self, requests: list[base.Judgement]) -> list[base.JudgeResult]:
    rows, owners, results = [], [], [None] * len(requests)
    for i, req in enumerate(requests):
      ab = self.render(req, req.output_a, req.output_b)
      ba = self.render(req, req.output_b, req.output_a)
      longest = max(len(ab[0]), len(ba[0]))
      if longest > self.max_len:
        results[i] = base.JudgeResult.failure(base.TOO_LONG, f"judge prompt has {longest} tokens > max_len "
                                              f"{self.max_len}; raise LocalJudgeConfig.max_len or shorten inputs")
        continue
      rows += [ab, ba]
      owners.append(i)
    if rows:
      p1 = self._run(rows)
      for k, i in enumerate(owners):
        # A first: P("1") is P(A better). B first: P("2") = 1 - P("1") is P(A better).
        results[i] = base.JudgeResult(p_a=float(np.clip(base.order_average(p1[2 * k], p1[2 * k + 1]), 0.0, 1.0)))
    return results

