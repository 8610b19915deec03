"""The session warehouse, built for real: generated raw data in a DuckDB file, `dbt build`
(every model and data test) and `dbt parse`, in the run's shared folder, so the developer's own
dbt_project/warehouse.duckdb is never touched. Built once per run (shared.build_once) and
opened read-only by every test process."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from tests.support import shared
from tests.support.paths import DBT, PROJECT_DIR

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


def _build(root: Path) -> dict[str, str]:
    from tally.datagen import generate

    # The file must be called warehouse.duckdb: dbt names the DuckDB catalog after the file and
    # MetricFlow's SQL refers to "warehouse"."analytics_marts"...
    db = root / "warehouse.duckdb"
    target = root / "target"
    generate(db, seed=TEST_SEED, scale=TEST_SCALE)
    env = {**os.environ, "TALLY_DUCKDB_PATH": str(db), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    build = run_dbt(["build", "--log-path", str(root / "logs")], target, env)
    if build.returncode != 0:
        pytest.fail(f"dbt build failed:\n{build.stdout[-6000:]}\n{build.stderr[-2000:]}")
    parse = run_dbt(["parse", "--log-path", str(root / "logs")], target, env)
    if parse.returncode != 0:
        pytest.fail(f"dbt parse failed:\n{parse.stdout[-4000:]}")
    return {"root": str(root)}


def session_warehouse(config: pytest.Config) -> BuiltWarehouse:
    """The run's warehouse: built by the first process that asks, reused by the others."""
    root = Path(shared.build_once(config, "warehouse", _build)["root"])
    target = root / "target"
    return BuiltWarehouse(
        root=root,
        duckdb_path=root / "warehouse.duckdb",
        target_dir=target,
        manifest_path=target / "semantic_manifest.json",
        run_results=json.loads((target / "run_results.json").read_text()),
    )


def copy_of(warehouse: BuiltWarehouse, folder: Path) -> tuple[Path, Path]:
    """The run's warehouse file and dbt target folder, copied into `folder` for a test that
    writes to them (rollups, a new data build). The file keeps its name: MetricFlow's SQL names
    the DuckDB catalog after it. Returns (file, target folder)."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "warehouse.duckdb"
    shutil.copyfile(warehouse.duckdb_path, db)
    target = folder / "target"
    shutil.copytree(warehouse.target_dir, target)
    return db, target
