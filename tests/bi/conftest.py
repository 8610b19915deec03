"""Fixtures of the BI tools' tests (`make test-bi`, not `make test`): a real `tally serve` with its
PostgreSQL wire endpoint (--pg-port) and authentication on (an API key made by `tally keys
create`, as an operator does), over a copy of the session's demo warehouse; and Apache Superset
from .venv-superset, set up from nothing and serving (tests/bi/superset.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.bi.superset import Superset, require_superset, start_superset, stop_superset
from tests.support.paths import PROJECT_DIR, ROOT
from tests.support.processes import (
    Server,
    create_key,
    free_port,
    start_server,
    stop_server,
    wait_port,
)

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
    key = create_key(project, env, KEY_NAME)
    pg_port = free_port()
    server = start_server(root / "serve.log", env, flight=False, clean_env=True,
                          args=("--pg-port", str(pg_port)))
    wait_port(pg_port, server)
    yield TallyPg(server, pg_port, key)
    stop_server(server)


@pytest.fixture(scope="session")
def superset(tmp_path_factory) -> Iterator[Superset]:
    running = start_superset(tmp_path_factory.mktemp("superset"))
    yield running
    stop_superset(running)
