"""Print one dependency list of pyproject.toml, space-separated, for pip.

pyproject.toml is the one place where the versions of both environments are
pinned; the Makefile asks this script for the list of the environment it builds.
"""

import sys
import tomllib
from pathlib import Path

pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
extras = pyproject["project"]["optional-dependencies"]
if len(sys.argv) != 2 or sys.argv[1] not in extras:
    sys.exit(f"usage: pins.py EXTRA (one of: {', '.join(extras)})")
print(" ".join(extras[sys.argv[1]]))
