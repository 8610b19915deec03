"""The local PostgreSQL server (127.0.0.1:5432 unless TALLY_PG_* say otherwise): whether it is
there, and the PostgreSQL build of the session's raw data."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import shared
from tests.support.builds import BuiltWarehouse, run_dbt


def server_args() -> dict[str, object]:
    """Connection arguments of the local server's maintenance database."""
    return {"host": os.environ.get("PGHOST", "127.0.0.1"),
            "port": int(os.environ.get("PGPORT", "5432")),
            "user": os.environ.get("PGUSER", "postgres"),
            "dbname": "postgres"}


def postgres_or_skip() -> dict[str, object]:
    """Connection arguments of the local PostgreSQL server. Missing server: a failure in CI
    (CI=true), a skip with the reason on a developer machine."""
    from tally.errors import WarehouseUnavailable
    from tally.warehouse.postgres import PostgresWarehouse

    conn = server_args()
    try:
        PostgresWarehouse(**conn).ping()
    except WarehouseUnavailable as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI: {e}")
        pytest.skip(f"no PostgreSQL at {conn['host']}:{conn['port']} on this machine: {e}")
    return conn


@dataclass(frozen=True)
class BuiltPostgres:
    dbname: str
    target_dir: Path
    manifest_path: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "TALLY_TARGET": "postgres", "PGDATABASE": self.dbname}

    def conn(self) -> dict[str, object]:
        return {**server_args(), "dbname": self.dbname}


def _admin():
    import psycopg2

    admin = psycopg2.connect(**server_args())
    admin.autocommit = True
    return admin


def session_postgres(config: pytest.Config, warehouse: BuiltWarehouse) -> BuiltPostgres:
    """The same raw data as the DuckDB session warehouse, copied into a PostgreSQL database of
    its own, built there by `dbt build --target postgres` (every model and test) and parsed.
    Once per run; the database is dropped at the end of the run (drop_recorded)."""
    postgres_or_skip()  # in every process: skip or fail here, not inside the shared build

    def build(root: Path) -> dict[str, str]:
        built = private_postgres(config, warehouse, root)
        return {"dbname": built.dbname, "root": str(root)}

    info = shared.build_once(config, "postgres", build)
    target = Path(info["root"]) / "target"
    return BuiltPostgres(info["dbname"], target, target / "semantic_manifest.json")


def private_postgres(
    config: pytest.Config, warehouse: BuiltWarehouse, root: Path, prefix: str = "tally_test"
) -> BuiltPostgres:
    """A new database with the session's raw data, built by dbt into `root`/target: for tests
    that write to their warehouse (rollups, new data), never the shared one. Dropped at the
    end of the run."""
    from tally.warehouse.postgres_demo import copy_raw_to_postgres

    dbname = _new_database(config, prefix)
    copy_raw_to_postgres(warehouse.duckdb_path, {**server_args(), "dbname": dbname})
    built = BuiltPostgres(dbname, root / "target", root / "target" / "semantic_manifest.json")
    env = {**built.env(), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    for command in ("build", "parse"):
        result = run_dbt([command, "--log-path", str(root / "logs")], built.target_dir, env)
        if result.returncode != 0:
            pytest.fail(f"dbt {command} on PostgreSQL failed:\n{result.stdout[-6000:]}")
    return built


def clone_postgres(
    config: pytest.Config, source: BuiltPostgres, root: Path, prefix: str = "tally_test"
) -> BuiltPostgres:
    """A copy of a private database (CREATE DATABASE ... TEMPLATE: no session may be connected
    to it meanwhile), parsed by dbt into `root`/target: MetricFlow's SQL names the database,
    so the copy's manifest (and its rollups' versions) are its own."""
    dbname = _new_database(config, prefix, template=source.dbname)
    built = BuiltPostgres(dbname, root / "target", root / "target" / "semantic_manifest.json")
    env = {**built.env(), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    result = run_dbt(["parse", "--log-path", str(root / "logs")], built.target_dir, env)
    if result.returncode != 0:
        pytest.fail(f"dbt parse on PostgreSQL failed:\n{result.stdout[-6000:]}")
    return built


def _new_database(config: pytest.Config, prefix: str, template: str | None = None) -> str:
    dbname = f"{prefix}_{uuid.uuid4().hex[:12]}"
    shared.record(config, "postgres_database", dbname)  # before it exists: never leaked
    admin = _admin()
    try:
        with admin.cursor() as cur:
            cur.execute(f'create database "{dbname}"'
                        + (f' template "{template}"' if template else ""))
    finally:
        admin.close()
    return dbname


def drop_recorded(config: pytest.Config) -> None:
    """pytest_unconfigure on the controller: drop the databases this run's builds made."""
    names = [] if shared.is_worker(config) else shared.recorded(config, "postgres_database")
    if not names:
        return
    admin = _admin()
    try:
        with admin.cursor() as cur:
            for name in names:
                cur.execute(f'drop database if exists "{name}" with (force)')
    finally:
        admin.close()
