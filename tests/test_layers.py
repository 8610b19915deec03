"""The import contract of `make lint` (pyproject.toml, [tool.importlinter]) holds on the real
tree and bites on a deliberate back-edge: a copy of the package where core imports the service,
or a transport reaches into the cache, fails `lint-imports`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.paths import BIN, ROOT

LINT_IMPORTS = BIN / "lint-imports"


def lint(package_parent: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
        cwd=package_parent, env=env, capture_output=True, text=True, timeout=300,
    )


def copy_with(tmp_path: Path, module: str, line: str) -> Path:
    parent = tmp_path / "src"
    shutil.copytree(ROOT / "server" / "tally", parent / "tally",
                    ignore=shutil.ignore_patterns("__pycache__"))
    target = parent / "tally" / module
    target.write_text(target.read_text() + f"\n{line}\n")
    return parent


def test_the_tree_keeps_every_contract():
    result = lint(ROOT / "server")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    "module,line,contract",
    [
        ("core/request.py", "import tally.service  # noqa", "tally's layers import one way"),
        ("errors.py", "import tally.settings  # noqa", "tally's layers import one way"),
        ("api/rest/query.py", "import tally.cache.keys  # noqa", "transports use the service"),
    ],
)
def test_a_back_edge_fails_the_lint(tmp_path, module, line, contract):
    result = lint(copy_with(tmp_path, module, line))
    assert result.returncode != 0
    # The contract named is broken (a back-edge may also close an import loop: the acyclic
    # contract then breaks too).
    status_lines = " ".join(result.stdout.split())  # a long contract name wraps
    assert re.search(re.escape(contract) + r"[\w ,]* BROKEN", status_lines), result.stdout[-3000:]


TRANSPORTS = ("api", "flight", "mcp", "cli")


def compiler_uses(root: Path) -> list[str]:
    """Lines of a transport module that reach past the service to its compiler (MetricFlow's
    manifest objects, with no visibility check): import-linter cannot see an attribute."""
    found = []
    for package in TRANSPORTS:
        for path in sorted((root / package).rglob("*.py")) if (root / package).is_dir() else ():
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if re.search(r"\.compiler\b", line.split("#")[0]):
                    found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    return found


def test_no_transport_reads_the_compiler():
    """Transports read the catalog through the service (service/catalog.py), each call
    checked against the caller."""
    assert compiler_uses(ROOT / "server" / "tally") == []


def test_the_compiler_check_bites(tmp_path):
    parent = copy_with(tmp_path, "flight/commands.py", "NAMES = svc.compiler.metrics  # leak")
    assert compiler_uses(parent / "tally") == [
        "flight/commands.py:" + str(len((parent / "tally/flight/commands.py").read_text()
                                        .splitlines())) + ": NAMES = svc.compiler.metrics  # leak"]
