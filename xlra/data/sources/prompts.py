"""Prompt sets given as files: JSONL rows {"id", "prompt", "lang"[, "task"]}, for generating and judging
(`xlra eval`, `xlra bon`) and for RL (`xlra ppo`): real prompts held out from the SFT and RM data, in
place of the testbed's rl/eval splits."""

from __future__ import annotations

from xlra import files

PROMPT_FIELDS = ("id", "prompt", "lang")


def read_prompts(path: str, default_task: str, field: str = "config.prompts") -> list[dict]:
  """Rows {"id", "prompt", "lang", "task"} of a prompts JSONL; raises naming the file and row."""
  if not path:
    raise ValueError(f"{field} is empty: name a JSONL of {{id, prompt, lang[, task]}} rows")
  rows = []
  for i, row in enumerate(files.read_jsonl(path), 1):
    missing = [k for k in PROMPT_FIELDS if not isinstance(row.get(k), str)]
    if missing:
      raise ValueError(f"{path} ({field}): row {i} lacks string field(s) {missing} (needs {PROMPT_FIELDS}, "
                       "optional 'task')")
    rows.append({k: row[k] for k in PROMPT_FIELDS} | {"task": row.get("task") or default_task})
  return rows
