"""Fixtures of the correctness suite: the service under test once per transport (and once on
PostgreSQL), and the data's edge cases. (warehouse, raw and the factories: tests/conftest.py.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.hand_sql import expected_rows
from tests.support.paths import PROJECT_DIR
from tests.support.services import ServiceFactory, SharedEngines
from tests.support.spark import ENABLED as SPARK


@pytest.fixture(scope="session")
def small_country(raw_connection) -> str:
    """The country with the fewest months holding a valid order: months without any order
    exist there, the edge case of filtered queries."""
    cursor = raw_connection.cursor()
    rows = expected_rows(cursor, """
        select customer__country as country,
               count(distinct date_trunc('month', order_date)) as months
        from enriched_orders group by 1 order by months, country limit 1""")
    cursor.close()
    country, months = rows[0]["country"], rows[0]["months"]
    assert months < 48, f"every country has orders in every month (fewest: {country}, {months})"
    return country


@pytest.fixture(scope="session")
def core_service(session_services: ServiceFactory):
    """The core service itself, for the few tests that look beneath the transports."""
    return session_services.service()


@pytest.fixture(scope="session")
def postgres_services(engines: SharedEngines, pg_warehouse) -> Iterator[ServiceFactory]:
    """Services over the PostgreSQL copy of the warehouse (same raw data)."""
    from tally.warehouse.postgres import PostgresWarehouse

    factory = ServiceFactory(
        engines,
        pg_warehouse.manifest_path,
        lambda: PostgresWarehouse(**pg_warehouse.conn()),
        target="postgres",
    )
    yield factory
    factory.close()


@pytest.fixture(scope="session")
def postgres_adbc_services(engines: SharedEngines, pg_warehouse) -> Iterator[ServiceFactory]:
    """Services over the same PostgreSQL database through the ADBC driver (Arrow from the wire,
    NUMERIC converted from its text): the other execution path of the same engine."""
    from tally.warehouse.postgres_adbc import PostgresAdbcWarehouse

    factory = ServiceFactory(
        engines,
        pg_warehouse.manifest_path,
        lambda: PostgresAdbcWarehouse(**pg_warehouse.conn()),
        target="postgres",
    )
    yield factory
    factory.close()


@pytest.fixture(scope="session")
def spark_warehouse(warehouse, tmp_path_factory):
    """The Spark build of the session's raw data on a master and two workers (one process, -n 0:
    make test-spark)."""
    from tests.support.spark import build_spark

    built = build_spark(tmp_path_factory.mktemp("spark"), warehouse)
    yield built
    built.cluster.stop()


@pytest.fixture(scope="session")
def spark_services(engines: SharedEngines, spark_warehouse) -> Iterator[ServiceFactory]:
    """Services over the Spark build of the warehouse (make test-spark only)."""
    from tally.project import read_profile_target
    from tally.warehouse.spark import ENGINE, SparkWarehouse

    with pytest.MonkeyPatch.context() as mp:
        for name, value in spark_warehouse.env().items():
            mp.setenv(name, value)
        output = read_profile_target(PROJECT_DIR, PROJECT_DIR, "spark")
    factory = ServiceFactory(engines, spark_warehouse.manifest_path,
                             lambda: SparkWarehouse(ENGINE, output), target="spark")
    yield factory
    factory.close()


# The Spark build joins the transports with `make test-spark` (TALLY_TEST_SPARK=1) only.
@pytest.fixture(scope="session",
                params=["core", "rest", "graphql", "postgres", "postgres-adbc",
                        *(["spark"] if SPARK else [])])
def service(request: pytest.FixtureRequest, session_services: ServiceFactory) -> Iterator:
    """One service per transport, each with its own cache: REST and GraphQL results are
    computed through them, never served from another transport's cached rows. "postgres" is
    the core service on the second warehouse, the PostgreSQL build of the same raw data: the
    same hand SQL (over the DuckDB copy of raw.*) must give its numbers too; "postgres-adbc"
    the same database through the ADBC execution path."""
    from tally.server import create_app
    from tests.support.clients import SyncASGIClient
    from tests.support.transports import GraphQLAdapter, RestAdapter

    if request.param == "postgres":
        core = request.getfixturevalue("postgres_services").service()
    elif request.param == "postgres-adbc":
        core = request.getfixturevalue("postgres_adbc_services").service()
    elif request.param == "spark":
        core = request.getfixturevalue("spark_services").service()
    else:
        core = session_services.service()
    if request.param in ("core", "postgres", "postgres-adbc", "spark"):
        yield core
    else:
        client = SyncASGIClient(create_app(core.settings, service=core))
        yield RestAdapter(client) if request.param == "rest" else GraphQLAdapter(client)
    core.shutdown()  # pytest sets the next transport's service up after this one is done
