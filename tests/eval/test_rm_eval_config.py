"""rm-eval's sources and targets default to the languages the data is read in (not six testbed languages)."""

from __future__ import annotations

import os
import runpy

from xlra.config_fields import split_list_fields

_CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "rm_eval.py")


def test_targets_follow_the_data_languages():
  c = runpy.run_path(_CONFIG)["get_config"]("qwen2.5_1.5b_dialog")
  c.rm.data.languages = ("de,en",)  # what --config.rm.data.languages=de,en parses to
  split_list_fields(c)
  assert tuple(c.sources) == tuple(c.targets) == ("de", "en")
  tiny = runpy.run_path(_CONFIG)["get_config"]("ci")
  assert tuple(tiny.targets) == tuple(tiny.rm.data.languages)
  tiny.targets = ("en",)  # still a field of its own to set
  assert tuple(tiny.targets) == ("en",) and tuple(tiny.sources) == tuple(tiny.rm.data.languages) != ("en",)
