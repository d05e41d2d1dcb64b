"""One reading of list fields for every job: `--config.languages=en,de` means two languages."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import ml_collections

from xlra.config_fields import list_field, split_list_fields

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_list_field_reads_every_spelling():
  assert list_field("en, ru,tr") == ("en", "ru", "tr")
  assert list_field(("en,ru,tr",)) == ("en", "ru", "tr")
  assert list_field(("en", "ru")) == ("en", "ru")
  assert list_field("") == () and list_field(()) == ()


def test_split_list_fields_nested_and_referenced():
  c = ml_collections.ConfigDict()
  c.languages = ("en,ru",)
  c.rules = (("embed", "fsdp"),)  # pairs, not a list of names
  c.spec = "de=/a,vi=/b"  # a LANG=PATH spec its reader splits
  c.sub = ml_collections.ConfigDict({"tasks": ("summarize,dialog",)})
  c.sub.langs = c.get_ref("languages")
  c.lock()
  split_list_fields(c)
  assert c.languages == ("en", "ru") and c.sub.langs == ("en", "ru")
  assert c.sub.tasks == ("summarize", "dialog")
  assert c.rules == (("embed", "fsdp"),) and c.spec == "de=/a,vi=/b"


def test_cli_splits_commas(tmp_path):
  """`xlra data --config.languages=en,de` builds both languages (it used to fail on a language 'en,de')."""
  env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]),
         "XLRA_COMPILATION_CACHE": ""}
  cmd = [sys.executable, "-m", "xlra.main", "data", f"--config={ROOT}/configs/data.py:tiny", f"--workdir={tmp_path}",
         "--config.languages=en,de", "--config.tasks=dialog"]
  proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  summary = json.loads((tmp_path / "data" / "summary.json").read_text())
  assert sorted(summary["languages"]) == ["de", "en"]
