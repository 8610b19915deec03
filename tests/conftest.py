"""Shared fixtures. The warehouse is built once per session, for real: generated raw data in a
DuckDB file, `dbt build` (every model and data test) and `dbt parse`, in a temporary folder so
the developer's own dbt_project/warehouse.duckdb is never touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT_DIR = ROOT / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"
# Small enough to build in seconds, big enough that every edge case occurs (cancelled and
# returned orders, invalid customers, one-time and repeat buyers, empty cohort periods).
TEST_SCALE = float(os.environ.get("TALLY_TEST_SCALE", "0.3"))
TEST_SEED = 7


@dataclass(frozen=True)
class BuiltWarehouse:
    root: Path
    duckdb_path: Path
    target_dir: Path
    manifest_path: Path
    run_results: dict

    def env(self) -> dict[str, str]:
        return {**os.environ, "TALLY_DUCKDB_PATH": str(self.duckdb_path)}

    def connect(self) -> duckdb.DuckDBPyConnection:
        return duckdb.connect(str(self.duckdb_path), read_only=True)


def run_dbt(args: list[str], target_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(DBT), *args, "--profiles-dir", str(PROJECT_DIR), "--target-path", str(target_dir)],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="session")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> BuiltWarehouse:
    from tally.datagen import generate

    root = tmp_path_factory.mktemp("warehouse")
    # The file must be called warehouse.duckdb: dbt names the DuckDB catalog after the file and
    # MetricFlow's SQL refers to "warehouse"."analytics_marts"...
    db = root / "warehouse.duckdb"
    target = root / "target"
    generate(db, seed=TEST_SEED, scale=TEST_SCALE)
    env = {**os.environ, "TALLY_DUCKDB_PATH": str(db), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    build = run_dbt(["build", "--log-path", str(root / "logs")], target, env)
    if build.returncode != 0:
        pytest.fail(f"dbt build failed:\n{build.stdout[-6000:]}\n{build.stderr[-2000:]}")
    run_results = json.loads((target / "run_results.json").read_text())
    parse = run_dbt(["parse", "--log-path", str(root / "logs")], target, env)
    if parse.returncode != 0:
        pytest.fail(f"dbt parse failed:\n{parse.stdout[-4000:]}")
    return BuiltWarehouse(
        root=root,
        duckdb_path=db,
        target_dir=target,
        manifest_path=target / "semantic_manifest.json",
        run_results=run_results,
    )


@pytest.fixture(scope="session")
def service(warehouse: BuiltWarehouse):
    from tally.service import TallyService
    from tally.settings import Settings
    from tally.warehouse.duckdb import DuckDBWarehouse

    settings = Settings(project_dir=PROJECT_DIR, manifest_path=warehouse.manifest_path)
    return TallyService(settings, warehouse=DuckDBWarehouse(warehouse.duckdb_path))


@pytest.fixture(scope="session")
def raw(warehouse: BuiltWarehouse):
    """A read-only connection for hand-written SQL over raw.* (and nothing dbt built)."""
    con = warehouse.connect()
    yield con
    con.close()


@dataclass(frozen=True)
class BuiltPostgres:
    dbname: str
    target_dir: Path
    manifest_path: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "TALLY_TARGET": "postgres", "TALLY_PG_DATABASE": self.dbname}


def postgres_or_skip() -> dict[str, object]:
    """Connection arguments of the local PostgreSQL server. Missing server: a failure in CI
    (CI=true), a skip with the reason on a developer machine."""
    from tally.errors import WarehouseUnavailable
    from tally.warehouse.postgres import PostgresWarehouse

    conn = {"host": os.environ.get("TALLY_PG_HOST", "127.0.0.1"),
            "port": int(os.environ.get("TALLY_PG_PORT", "5432")),
            "user": os.environ.get("TALLY_PG_USER", "postgres"),
            "dbname": "postgres"}
    try:
        PostgresWarehouse(**conn).ping()
    except WarehouseUnavailable as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI: {e}")
        pytest.skip(f"no PostgreSQL at {conn['host']}:{conn['port']} on this machine: {e}")
    return conn


@pytest.fixture(scope="session")
def pg_warehouse(warehouse: BuiltWarehouse, tmp_path_factory: pytest.TempPathFactory):
    """The same raw data as the DuckDB session warehouse, copied into a PostgreSQL database of
    its own, built there by `dbt build --target postgres` (every model and test) and parsed;
    the database is dropped afterwards."""
    import psycopg2

    from tally.datagen.postgres_load import copy_raw_to_postgres

    conn = postgres_or_skip()
    dbname = f"tally_test_{os.getpid()}"
    admin = psycopg2.connect(**conn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'drop database if exists "{dbname}"')
        cur.execute(f'create database "{dbname}"')
    try:
        copy_raw_to_postgres(warehouse.duckdb_path, {**conn, "dbname": dbname})
        root = tmp_path_factory.mktemp("postgres")
        target = root / "target"
        built = BuiltPostgres(dbname, target, target / "semantic_manifest.json")
        env = {**built.env(), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
        for command in ("build", "parse"):
            result = run_dbt([command, "--log-path", str(root / "logs")], target, env)
            if result.returncode != 0:
                pytest.fail(f"dbt {command} on PostgreSQL failed:\n{result.stdout[-6000:]}")
        yield built
    finally:
        with admin.cursor() as cur:
            cur.execute(f'drop database if exists "{dbname}" with (force)')
        admin.close()
