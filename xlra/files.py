"""Atomic workdir files: a killed run leaves either the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
from typing import Any, Iterable


def write_text(path: str, text: str) -> None:
  """Write to a temporary sibling, fsync, then rename over the target."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f"{path}.tmp.{os.getpid()}"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def write_json(path: str, obj: Any) -> None:
  write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def read_json(path: str) -> Any:
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def write_jsonl(path: str, rows: Iterable[dict]) -> None:
  write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_jsonl(path: str) -> list[dict]:
  """Rows of a JSONL file; a truncated last line (a kill mid-append) is ignored, any other bad line raises."""
  rows = []
  with open(path, encoding="utf-8") as f:
    lines = f.read().split("\n")
  for i, line in enumerate(lines):
    if not line.strip():
      continue
    try:
      rows.append(json.loads(line))
    except json.JSONDecodeError as e:
      if i == len(lines) - 1:  # no trailing newline: the writer died mid-line
        break
      raise ValueError(f"{path}: line {i + 1} is not valid JSON ({e})") from None
  return rows
