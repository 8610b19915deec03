"""Where things are: the repository, the dbt project and the installed commands."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT_DIR = ROOT / "dbt_project"
SEMANTIC_DIR = ROOT / "semantic"
# The commands installed beside the Python running the tests (the project's .venv).
BIN = Path(sys.executable).parent
DBT = BIN / "dbt"
TALLY = BIN / "tally"
