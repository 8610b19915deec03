"""Fixtures of the rollup tests: a private copy of the run's warehouse (file and dbt target) with
every rollup built in it, and services over it with routing on and off."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tally.core.compiler import Compiler
from tally.core.semantic_manifest import load_manifest
from tally.rollups.build import BuildReport
from tally.warehouse.duckdb import ENGINE, DuckDBWarehouse
from tests.support.builds import BuiltWarehouse, copy_of
from tests.support.rollups import build_duckdb
from tests.support.services import ServiceFactory, SharedEngines


@dataclass
class RollupWarehouse:
    duckdb_path: Path
    target_dir: Path
    reports: list[BuildReport]

    @property
    def manifest_path(self) -> Path:
        return self.target_dir / "semantic_manifest.json"

    def compiler(self) -> Compiler:
        return Compiler(load_manifest(self.manifest_path), ENGINE)


@pytest.fixture(scope="session")
def rollup_warehouse(warehouse: BuiltWarehouse, tmp_path_factory) -> RollupWarehouse:
    db, target = copy_of(warehouse, tmp_path_factory.mktemp("rollups"))
    reports = build_duckdb(db, target)
    return RollupWarehouse(db, target, reports)


@pytest.fixture(scope="session")
def rollup_services(
    engines: SharedEngines, rollup_warehouse: RollupWarehouse
) -> Iterator[ServiceFactory]:
    factory = ServiceFactory(
        engines, rollup_warehouse.manifest_path,
        lambda: DuckDBWarehouse(rollup_warehouse.duckdb_path),
    )
    yield factory
    factory.close()


@pytest.fixture(scope="session")
def routed(rollup_services: ServiceFactory):
    """Routing on, cache off: every answer is computed (from a rollup when one fits)."""
    return rollup_services.service(cache_enabled=False)


@pytest.fixture(scope="session")
def unrouted(rollup_services: ServiceFactory):
    """The same warehouse with routing off: MetricFlow's SQL over the source tables."""
    return rollup_services.service(cache_enabled=False, rollups_enabled=False)
