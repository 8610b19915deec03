"""A real `tally serve` with Flight SQL, on loopback ports, for the tests of the dbt Semantic
Layer's real clients: its published SDK (in its own virtualenv, made by `make sdk-venv`) and the
ADBC Flight SQL driver. The server serves a copy of the session warehouse; hand-written SQL runs
on the original (the `raw` fixture)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import processes
from tests.support.paths import PROJECT_DIR, ROOT
from tests.support.processes import Server, stop_server

SDK_PYTHON = ROOT / ".venv-sdk" / "bin" / "python"


def start_server(warehouse, root: Path, **env: str) -> Server:
    """A server over a copy of the session warehouse (tests may rebuild or lock it)."""
    served = root / "served" / "warehouse.duckdb"
    served.parent.mkdir(parents=True)
    shutil.copy(warehouse.duckdb_path, served)
    return processes.start_server(root / "server.log", {
        "TALLY_DUCKDB_PATH": str(served), "TALLY_MANIFEST_PATH": str(warehouse.manifest_path),
        "TALLY_PROJECT_DIR": str(PROJECT_DIR), **env})


@pytest.fixture(scope="session")
def sl_server(warehouse, tmp_path_factory) -> Iterator[Server]:
    server = start_server(warehouse, tmp_path_factory.mktemp("sl_server"))
    yield server
    stop_server(server)


@pytest.fixture(scope="session")
def sdk_python() -> Path:
    """The SDK's own interpreter. Missing: a failure in CI (make test creates it), a skip
    elsewhere, saying how to create it."""
    if SDK_PYTHON.exists():
        return SDK_PYTHON
    if os.environ.get("CI") == "true":
        pytest.fail(f"{SDK_PYTHON} is missing: `make sdk-venv` creates it (make test does).")
    pytest.skip(f"no {SDK_PYTHON}: run `make sdk-venv` to test the dbt Semantic Layer SDK")
