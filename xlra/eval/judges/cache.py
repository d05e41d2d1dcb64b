"""A persistent judgement cache: one JSON record per line, appended and fsynced one at a time.

Why JSONL and not sqlite: appends are crash-safe without a journal, the file is greppable, and several
evaluation runs can be concatenated. A process killed mid-write leaves at most one truncated last
line; loading skips (and counts) unreadable lines, and the next append starts on a fresh line.
An owner may pass `valid`: records it rejects are neither loaded (counted, so they are asked again)
nor written.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from typing import Any, Callable

from absl import logging


def cache_key(*parts: Any) -> str:
  """sha256 of the JSON encoding of `parts` (strings, numbers, lists, dicts)."""
  blob = json.dumps(parts, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
  return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class JudgementCache:
  """Maps a request key to the stored record. Thread-safe; one writer process per file."""

  def __init__(self, path: str, valid: Callable[[dict], str | None] | None = None):
    """valid(record) -> None, or why the record is no usable answer."""
    self.path = path
    self._valid = valid
    self._lock = threading.Lock()
    self._records: dict[str, dict] = {}
    self.unreadable_lines = 0
    self.invalid_lines = 0
    self._file = None
    if os.path.exists(path):
      self._load()

  def _load(self) -> None:
    with open(self.path, "rb") as f:
      data = f.read()
    for lineno, line in enumerate(data.split(b"\n"), 1):
      if not line.strip():
        continue
      try:
        rec = json.loads(line)
        key = rec["key"]
      except (ValueError, KeyError, TypeError):
        self.unreadable_lines += 1
        logging.warning("judge cache %s: skipped unreadable line %d (a write interrupted by a crash?)",
                        self.path, lineno)
        continue
      why = self._valid(rec) if self._valid is not None else None
      if why is not None:  # an earlier version's record, or a hand edit: not an answer, so ask again
        self.invalid_lines += 1
        logging.warning("judge cache %s: ignored line %d (%s); that question will be asked again",
                        self.path, lineno, why)
        continue
      self._records[key] = rec

  def __len__(self) -> int:
    with self._lock:
      return len(self._records)

  def __contains__(self, key: str) -> bool:
    with self._lock:
      return key in self._records

  def get(self, key: str) -> dict | None:
    with self._lock:
      return self._records.get(key)

  def put(self, key: str, record: dict) -> None:
    """Append `record` (with its key) and make it durable before returning."""
    rec = {"key": key, **record}
    why = self._valid(rec) if self._valid is not None else None
    if why is not None:  # the owner validates before it puts: reaching here is a bug, never a silent skip
      raise ValueError(f"judge cache {self.path}: refusing to store record {rec!r}: {why}")
    line = (json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
    with self._lock:
      if self._file is None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self._file = open(self.path, "ab")
        # A crash may have left a partial last line: start on a fresh one so this record stays readable.
        if self._file.tell() > 0 and not _ends_with_newline(self.path):
          self._file.write(b"\n")
      self._file.write(line)
      self._file.flush()
      os.fsync(self._file.fileno())
      self._records[key] = rec

  def close(self) -> None:
    with self._lock:
      if self._file is not None:
        self._file.close()
        self._file = None


def _ends_with_newline(path: str) -> bool:
  with open(path, "rb") as f:
    f.seek(-1, os.SEEK_END)
    return f.read(1) == b"\n"
