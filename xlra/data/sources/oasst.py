"""OpenAssistant (oasst1 / oasst2) message trees: preference pairs from the ranks of sibling assistant
replies, and SFT examples from the best-ranked reply, filtered by language.

Input: the official `*.trees.jsonl` export (one tree a line: message_tree_id, tree_state, prompt), where
every message has role (prompter | assistant), text, lang, deleted, review_result, rank (0 = best among
its siblings; null for prompts and unranked replies) and nested `replies`.

For each prompter message with ranked assistant replies, the conversation up to it becomes `messages`
(roles user / assistant) and `prompt` (its last user turn); pairs are (better, worse) by rank:
`pairs="all"` every ordered pair, "best_vs_rest" rank 0 against each other, "adjacent" rank i vs i + 1.
Skipped and counted: trees not ready for export (when `require_ready`), deleted or rejected (review_result
false) or unreviewed messages, unranked replies, other languages, empty texts, over-long replies; a
conversation never continues through a message that was skipped.
"""

from __future__ import annotations

from typing import Iterable

from xlra.data.skips import SkipCounter
from xlra.data.sources.common import MAX_INPUT_TOKENS, MAX_OUTPUT_TOKENS, count_tokens, normalize_lang, rows_of

PAIRINGS = ("all", "best_vs_rest", "adjacent")
_ROLES = {"prompter": "user", "assistant": "assistant"}


def _message_problem(m: dict) -> str | None:
  if m.get("deleted"):
    return "deleted"
  if m.get("review_result") is False:
    return "review_rejected"
  if m.get("review_result") is not True:
    return "unreviewed"
  if not isinstance(m.get("role"), str) or m["role"] not in _ROLES:
    return "unknown_role"
  if not isinstance(m.get("text"), str) or not m["text"].strip():
    return "empty_text"
  if not isinstance(m.get("message_id", ""), str):
    return "bad_message_id"
  rank = m.get("rank")
  if rank is not None and (not isinstance(rank, int) or isinstance(rank, bool) or rank < 0):
    return "bad_rank"
  return None


def _replies(m: dict, skips: SkipCounter) -> list:
  """The `replies` list of a message (a value that is not a list is counted and read as none)."""
  replies = m.get("replies")
  if replies is None or isinstance(replies, list):
    return replies or []
  skips.skip("bad_replies", m.get("message_id"))
  return []


def _pairs(ranked: list[dict], pairs: str) -> list[tuple[dict, dict]]:
  if pairs == "all":
    return [(a, b) for i, a in enumerate(ranked) for b in ranked[i + 1:] if a["rank"] < b["rank"]]
  if pairs == "best_vs_rest":
    return [(ranked[0], b) for b in ranked[1:] if ranked[0]["rank"] < b["rank"]]
  return [(a, b) for a, b in zip(ranked, ranked[1:]) if a["rank"] < b["rank"]]


def load_oasst(source: str | Iterable[dict], languages: Iterable[str] | None = None, pairs: str = "all",
               require_ready: bool = True, tokenizer=None, max_input_tokens: int = MAX_INPUT_TOKENS,
               max_output_tokens: int = MAX_OUTPUT_TOKENS) -> tuple[list[dict], list[dict], SkipCounter]:
  """(pairwise records, SFT records, skips). Records carry `messages` (the conversation before the
  reply), `prompt` (its last user turn) and `lang` (of that turn). Raises if no pair is left."""
  if pairs not in PAIRINGS:
    raise ValueError(f"pairs must be one of {PAIRINGS}, got {pairs!r}")
  wanted = None if languages is None else {normalize_lang(x) or x for x in languages}
  name = source if isinstance(source, str) else "oasst rows"
  skips = SkipCounter(f"oasst {name}")
  out_pairs, out_sft = [], []

  def visit(node: dict, history: list[dict]) -> None:
    """`node` is a usable prompter message; history ends with it."""
    usable = []
    for r in _replies(node, skips):
      problem = _message_problem(r) if isinstance(r, dict) else "not_an_object"
      if problem is None and r["role"] != "assistant":
        problem = "unexpected_role"
      if problem is None and count_tokens(r["text"], tokenizer) > max_output_tokens:
        problem = "output_too_long"
      if problem:
        skips.skip(problem, r.get("message_id") if isinstance(r, dict) else None)
        continue
      usable.append(r)
    lang = normalize_lang(node.get("lang"))
    ranked = sorted((r for r in usable if r.get("rank") is not None), key=lambda r: r["rank"])
    for _ in range(len(usable) - len(ranked)):
      skips.skip("unranked_reply")
    prompt_tokens = sum(count_tokens(m["content"], tokenizer) for m in history)
    if lang is None or (wanted is not None and lang not in wanted):
      skips.skip("language_filtered" if lang else "unknown_language", node.get("message_id"))
    elif prompt_tokens > max_input_tokens:
      skips.skip("prompt_too_long", node.get("message_id"))
    elif ranked:
      base = {"lang": lang, "messages": [dict(m) for m in history], "prompt": history[-1]["content"]}
      if ranked[0]["rank"] == 0:
        out_sft.append({"id": ranked[0]["message_id"], **base, "response": ranked[0]["text"]})
      for a, b in _pairs(ranked, pairs):
        out_pairs.append({"id": f"{a['message_id']}>{b['message_id']}", **base, "chosen": a["text"],
                          "rejected": b["text"]})
        skips.keep()
    for r in usable:  # continue each conversation through its usable assistant replies
      turn = history + [{"role": "assistant", "content": r["text"]}]
      for follow in _replies(r, skips):
        problem = _message_problem(follow) if isinstance(follow, dict) else "not_an_object"
        if problem is None and follow["role"] != "prompter":
          problem = "unexpected_role"
        if problem:
          skips.skip(problem, follow.get("message_id") if isinstance(follow, dict) else None)
          continue
        visit(follow, turn + [{"role": "user", "content": follow["text"]}])

  for row_no, tree in rows_of(source):
    if tree is None or not isinstance(tree.get("prompt"), dict):
      skips.skip("not_a_tree", row_no)
      continue
    if require_ready and tree.get("tree_state") != "ready_for_export":
      skips.skip("tree_not_ready", tree.get("message_tree_id"))
      continue
    root = tree["prompt"]
    problem = _message_problem(root)
    if problem is None and root["role"] != "prompter":
      problem = "unexpected_role"
    if problem:
      skips.skip("prompt_" + problem, root.get("message_id"))
      continue
    visit(root, [{"role": "user", "content": root["text"]}])
  skips.require_kept()
  return out_pairs, out_sft, skips
