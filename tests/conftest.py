"""The suite's fixtures and hooks, all built from tests/support. The warehouse is built once
per run, for real (generated raw data, `dbt build`, `dbt parse`), shared by every test process
(pytest-xdist workers included) and opened read-only."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest

from tests.support import builds, postgres, scheduling, shared
from tests.support.builds import BuiltWarehouse
from tests.support.clock import FakeClock
from tests.support.postgres import BuiltPostgres
from tests.support.services import ServiceFactory, SharedEngines


def pytest_configure(config: pytest.Config) -> None:
    shared.configure(config)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    shared.configure_node(node)


def pytest_unconfigure(config: pytest.Config) -> None:
    postgres.drop_recorded(config)
    shared.remove(config)


@pytest.hookimpl(trylast=True)  # after pytest orders the tests by fixture parameters
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    scheduling.heavy_first(items)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    return scheduling.make_scheduler(config, log)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def warehouse(request: pytest.FixtureRequest) -> BuiltWarehouse:
    return builds.session_warehouse(request.config)


@pytest.fixture(scope="session")
def raw_connection(warehouse: BuiltWarehouse) -> Iterator[duckdb.DuckDBPyConnection]:
    con = warehouse.connect()
    yield con
    con.close()


@pytest.fixture
def raw(raw_connection: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Read-only SQL over raw.* (and nothing dbt built), for hand-written expected values: a
    cursor of its own per test, so no test sees another's unfinished result."""
    cursor = raw_connection.cursor()
    yield cursor
    cursor.close()


@pytest.fixture(scope="session")
def engines() -> SharedEngines:
    return SharedEngines()


def _duckdb_factory(engines: SharedEngines, warehouse: BuiltWarehouse) -> ServiceFactory:
    from tally.warehouse.duckdb import DuckDBWarehouse

    return ServiceFactory(
        engines, warehouse.manifest_path, lambda: DuckDBWarehouse(warehouse.duckdb_path)
    )


@pytest.fixture(scope="session")
def session_services(engines: SharedEngines, warehouse: BuiltWarehouse) -> Iterator[ServiceFactory]:
    factory = _duckdb_factory(engines, warehouse)
    yield factory
    factory.close()


@pytest.fixture
def services(engines: SharedEngines, warehouse: BuiltWarehouse) -> Iterator[ServiceFactory]:
    """Services (and apps) made for one test: each new, with an empty cache and counters."""
    factory = _duckdb_factory(engines, warehouse)
    yield factory
    factory.close()


@pytest.fixture(scope="session")
def service(session_services: ServiceFactory):
    """One service for the whole session, for tests that only read (its cache fills up)."""
    return session_services.service()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def pg_warehouse(request: pytest.FixtureRequest, warehouse: BuiltWarehouse) -> BuiltPostgres:
    return postgres.session_postgres(request.config, warehouse)

