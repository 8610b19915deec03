"""Fixtures of the BI tools' tests (`make test-bi`, not `make test`): a real `tally serve` with its
PostgreSQL wire endpoint (--pg-port) and authentication on (an API key made by `tally keys
create`, as an operator does), over a copy of the session's demo warehouse; and Apache Superset
from .venv-superset, set up from nothing and serving (tests/bi/superset.py)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.bi.superset import Superset, require_superset, start_superset, stop_superset
from tests.support.paths import PROJECT_DIR, ROOT, TALLY
from tests.support.processes import Server, free_port, start_server, stop_server

KEY_NAME = "superset"


@dataclass(frozen=True)
class TallyPg:
    server: Server
    pg_port: int
    api_key: str

    def uri(self, password: str | None = None) -> str:
        """Superset's SQLAlchemy URI of tally (the user and database names are free)."""
        key = self.api_key if password is None else password
        return f"postgresql+psycopg2://tally:{key}@127.0.0.1:{self.pg_port}/tally"


def _project(root: Path) -> Path:
    """The demo project's files a server reads, in a folder of its own (its keys file too)."""
    project = root / "project"
    project.mkdir()
    for name in ("dbt_project.yml", "profiles.yml"):
        shutil.copy(PROJECT_DIR / name, project / name)
    shutil.copytree(ROOT / "semantic" / "dashboards", root / "semantic" / "dashboards")
    return project


def _create_key(project: Path, env: dict[str, str]) -> str:
    argv = [str(TALLY), "keys", "create", KEY_NAME, "--scopes", "meta,query,sql",
            "--project-dir", str(project)]
    made = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert made.returncode == 0, made.stderr
    key = made.stdout.splitlines()[1].strip()
    assert key.startswith("tk_"), made.stdout
    return key


def _wait_port(port: int, server: Server, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                return
        except OSError:
            if server.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"tally's PostgreSQL endpoint is not listening on {port}:\n"
                            f"{server.log.read_text()[-3000:]}")
            time.sleep(0.2)


@pytest.fixture(scope="session")
def tally_pg(warehouse, tmp_path_factory) -> Iterator[TallyPg]:
    require_superset()  # nothing to serve to without it
    root = tmp_path_factory.mktemp("bi_tally")
    project = _project(root)
    # a copy: the server may hold it; hand SQL reads the original
    served = root / "warehouse.duckdb"
    shutil.copy(warehouse.duckdb_path, served)
    env = {"TALLY_PROJECT_DIR": str(project), "TALLY_MANIFEST_PATH": str(warehouse.manifest_path),
           "TALLY_DUCKDB_PATH": str(served)}
    key = _create_key(project, env)
    pg_port = free_port()
    server = start_server(root / "serve.log", env, flight=False, clean_env=True,
                          args=("--pg-port", str(pg_port)))
    _wait_port(pg_port, server)
    yield TallyPg(server, pg_port, key)
    stop_server(server)


@pytest.fixture(scope="session")
def superset(tmp_path_factory) -> Iterator[Superset]:
    running = start_superset(tmp_path_factory.mktemp("superset"))
    yield running
    stop_superset(running)
