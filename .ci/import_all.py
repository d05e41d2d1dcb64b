"""Imports every module under xlra/ in the current environment; names each package that is missing.

CI runs it in the venv that has only `pip install -e .` (no extras), so a module that imports a package
which the runtime dependencies in pyproject.toml do not provide fails here, not on a user's machine.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import xlra


def main() -> int:
  names = sorted(m.name for m in pkgutil.walk_packages(xlra.__path__, "xlra."))
  missing: dict[str, list[str]] = {}
  for name in names:
    try:
      importlib.import_module(name)
    except ModuleNotFoundError as e:
      missing.setdefault((e.name or "?").split(".")[0], []).append(name)
  for package, modules in sorted(missing.items()):
    print(f"missing package {package!r} (not in [project].dependencies of pyproject.toml), imported by: "
          f"{', '.join(modules)}", file=sys.stderr)
  print(f"imported {len(names) - sum(map(len, missing.values()))} of {len(names)} xlra modules")
  return 1 if missing else 0


if __name__ == "__main__":
  sys.exit(main())
