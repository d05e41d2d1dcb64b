"""Every package the runtime needs is a runtime dependency in pyproject.toml, not only a test extra.

CI also imports every module and runs the `ci` pipeline in a venv without extras (.ci/run); this test
catches the same mistake earlier, from the source: each top-level import under xlra/ must come from the
standard library or from a distribution listed in [project].dependencies, and so must the packages that
features of a dependency need only when used (transformers' chat templates need jinja2).
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Packages that a dependency imports lazily, only inside a feature xlra uses.
FEATURES = {"jinja2": "transformers' apply_chat_template (xlra/data/tokenizer.py)"}


def _declared() -> set[str]:
  with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    deps = tomllib.load(f)["project"]["dependencies"]
  return {re.split(r"[\s\[<>=!~;]", d, maxsplit=1)[0].lower().replace("_", "-") for d in deps}


def _imports() -> dict[str, str]:
  found: dict[str, str] = {}
  for dirpath, _, names in os.walk(os.path.join(ROOT, "xlra")):
    for name in names:
      if name.endswith(".py"):
        path = os.path.join(dirpath, name)
        for node in ast.walk(ast.parse(open(path).read(), path)):
          if isinstance(node, ast.Import):
            tops = [a.name.split(".")[0] for a in node.names]
          elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            tops = [node.module.split(".")[0]]
          else:
            continue
          for top in tops:
            found.setdefault(top, os.path.relpath(path, ROOT))
  return found


def test_every_runtime_import_is_a_declared_dependency():
  declared = _declared()
  dists = importlib.metadata.packages_distributions()
  missing = []
  for top, where in sorted(_imports().items()):
    if top == "xlra" or top in sys.stdlib_module_names:
      continue
    providers = {d.lower().replace("_", "-") for d in dists.get(top, [])}
    if not providers & declared:
      missing.append(f"{top} (imported by {where}; provided by {sorted(providers) or 'nothing installed'})")
  assert not missing, f"add to [project].dependencies in pyproject.toml: {missing}"


def test_packages_that_dependency_features_need_are_declared():
  declared = _declared()
  missing = [f"{pkg} (for {why})" for pkg, why in FEATURES.items() if pkg not in declared]
  assert not missing, f"add to [project].dependencies in pyproject.toml: {missing}"
