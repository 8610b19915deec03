"""One real `tally serve --pg-port` on loopback for every test of this folder (they run on one
worker: tests/support/scheduling.py's group "pgwire"), over a copy of the session warehouse,
with API keys on and a tenant policy in its tally.yml: a row filter on the tenant's countries
and members denied (a metric, a dimension). Expected numbers come from SQL written by hand over
raw.* (tests/pgwire/cases.py), never from tally."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.paths import PROJECT_DIR, ROOT
from tests.support.processes import (
    Server,
    create_key,
    free_port,
    start_server,
    stop_server,
    wait_port,
)

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
    key = create_key(project, env, "pgwire-clients")
    tenant = create_key(project, env, "pgwire-tenant",
                         {"roles": ["tenant"], "countries": list(TENANT_COUNTRIES)})
    port = free_port()
    server = start_server(root / "serve.log", env, flight=False, clean_env=True,
                          args=("--pg-port", str(port)))
    wait_port(port, server)
    yield PgServer(server, port, key, tenant)
    stop_server(server)
