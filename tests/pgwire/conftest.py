"""One real `tally serve --pg-port` on loopback for every test of this folder (they run on one
worker: tests/support/scheduling.py's group "pgwire"), over a copy of the session warehouse,
with API keys on and a tenant policy in its tally.yml: a row filter on the tenant's countries
and members denied (a metric, a dimension). Expected numbers come from SQL written by hand over
raw.* (tests/pgwire/cases.py), never from tally."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.paths import PROJECT_DIR, ROOT, TALLY
from tests.support.processes import Server, free_port, start_server, stop_server

TENANT_COUNTRIES = ("DE", "FR")
DENIED_METRIC = "gross_margin"
DENIED_DIMENSION = "customer__customer_segment"
TALLY_YML = f"""
policies:
  - role: tenant
    row_filters:
      - {{dimension: customer__country, op: in, values: "{{{{ claims.countries }}}}"}}
    metrics: {{deny: [{DENIED_METRIC}, gross_margin_pct]}}
    dimensions: {{deny: [{DENIED_DIMENSION}]}}
"""


@dataclass(frozen=True)
class PgServer:
    server: Server
    port: int
    key: str  # every table, every row
    tenant_key: str  # TENANT_COUNTRIES only, without the denied members

    def dsn(self, password: str | None = None) -> str:
        return (f"host=127.0.0.1 port={self.port} user=tally dbname=tally "
                f"password={self.key if password is None else password}")

    def url(self, driver: str, password: str | None = None) -> str:
        return (f"postgresql+{driver}://tally:{self.key if password is None else password}"
                f"@127.0.0.1:{self.port}/tally")


def _create_key(project: Path, env: dict[str, str], name: str, claims: dict | None) -> str:
    argv = [str(TALLY), "keys", "create", name, "--scopes", "meta,query,sql",
            "--project-dir", str(project)]
    if claims:
        argv += ["--claims", json.dumps(claims)]
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
def pg(warehouse, tmp_path_factory) -> Iterator[PgServer]:
    root = tmp_path_factory.mktemp("pgwire")
    project = root / "project"
    project.mkdir()
    for name in ("dbt_project.yml", "profiles.yml"):
        shutil.copy(PROJECT_DIR / name, project / name)
    shutil.copytree(ROOT / "semantic" / "dashboards", root / "semantic" / "dashboards")
    (project / "tally.yml").write_text(TALLY_YML)
    served = root / "served" / "warehouse.duckdb"  # the server's copy; hand SQL reads the original
    served.parent.mkdir()
    shutil.copy(warehouse.duckdb_path, served)
    env = {"TALLY_PROJECT_DIR": str(project), "TALLY_MANIFEST_PATH": str(warehouse.manifest_path),
           "TALLY_DUCKDB_PATH": str(served)}
    key = _create_key(project, env, "pgwire-clients", None)
    tenant = _create_key(project, env, "pgwire-tenant",
                         {"roles": ["tenant"], "countries": list(TENANT_COUNTRIES)})
    port = free_port()
    server = start_server(root / "serve.log", env, flight=False, clean_env=True,
                          args=("--pg-port", str(port)))
    _wait_port(port, server)
    yield PgServer(server, port, key, tenant)
    stop_server(server)
