"""The ADBC execution path of PostgreSQL against the real local server (127.0.0.1:5432): the
same tables as the psycopg2 engine (NUMERIC exact, as the same decimal types), the same
guarantees (read-only, UTC, timeouts, errors, interrupt), and chosen with
TALLY_EXECUTION_PATH=adbc. Every metric against hand SQL through this path: the correctness
suite's "postgres-adbc" transport. In CI a missing server fails; elsewhere these tests skip,
saying why."""

from __future__ import annotations

import datetime as dt
import decimal
import os
import sys
import uuid

import pyarrow as pa
import pytest

from tally.core.caller import ANONYMOUS
from tally.core.request import QueryRequest
from tally.errors import (
    ConfigurationError,
    InvalidFilter,
    QueryDataError,
    QueryTimeout,
    WarehouseError,
    WarehouseUnavailable,
)
from tally.project import read_profile_target
from tally.service import TallyService
from tally.settings import Settings
from tally.warehouse import postgres, registry
from tally.warehouse.postgres import PostgresWarehouse
from tally.warehouse.postgres_adbc import ENGINE, PostgresAdbcWarehouse, connection_uri
from tests.support.interrupts import assert_interrupt_stops
from tests.support.paths import PROJECT_DIR
from tests.support.postgres import postgres_or_skip

PG = {"host": os.environ.get("PGHOST", "127.0.0.1"),
      "port": int(os.environ.get("PGPORT", "5432")),
      "user": os.environ.get("PGUSER", "postgres"),
      "dbname": os.environ.get("PGDATABASE", "test")}


@pytest.fixture(scope="module")
def adbc():
    postgres_or_skip()  # fails in CI without a server, skips (saying why) elsewhere
    warehouse = PostgresAdbcWarehouse(**PG)
    yield warehouse
    warehouse.close()


@pytest.fixture(scope="module")
def psycopg():
    postgres_or_skip()
    return PostgresWarehouse(**PG)


@pytest.fixture
def scratch_table(psycopg):
    """A table of the test database, made and dropped outside tally (psycopg2, read-write)."""
    import psycopg2

    name = f"tally_adbc_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(**PG)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"create table {name} (x int)")
    yield name
    with admin.cursor() as cur:
        cur.execute(f"drop table {name}")
    admin.close()


def assert_same_table(adbc_table: pa.Table, psycopg_table: pa.Table) -> None:
    assert adbc_table.schema == psycopg_table.schema
    assert adbc_table.to_pylist() == psycopg_table.to_pylist()


# The same answer as psycopg2 -------------------------------------------------------------------

_EVERY_TYPE = """null::date as d, null::timestamp as ts, null::timestamptz as tz,
    null::smallint as i2, null::int as i4, null::bigint as i8, null::real as f4,
    null::float8 as f8, null::numeric as n, null::numeric(12, 2) as n2, null::numeric(50, 3) as n3,
    null::boolean as b, null::text as t, null::varchar(5) as v, null::char(2) as c,
    null::uuid as u, null::bytea as by, null::time as tm"""

SAME_AS_PSYCOPG2 = {
    "numeric, declared and not": """
        select 12345.67::numeric(12, 2) as revenue, 0.10::numeric(5, 2) as small,
               1.5::numeric as plain
        union all select 0.5, 0.00, 0 union all select -7.25, -0.01, 100""",
    "sums, averages and divisions of numerics": """
        select sum(x::numeric(12, 2)) as total, avg(x::numeric(12, 2)) as mean,
               sum(x::numeric(12, 2)) / 7 as seventh, count(*) as n
        from generate_series(1, 1000) x""",
    "tiny, huge and whole numerics": """
        select '1e-20'::numeric as tiny, 10::numeric ^ 45 as huge, 0::numeric as zero,
               123.4500::numeric(10, 4) as trailing""",
    "numerics beyond a float's 17 digits": """
        select 12345678901234567.89::numeric as exact, -0.000000000000000123::numeric as neg""",
    "numerics with nulls between values": """
        select x as k, case when x % 3 = 0 then null else x::numeric / 4 end as quarter
        from generate_series(1, 12) x""",
    "dates, booleans, integers, floats, text": """
        select date '2025-01-01' as day, true as flag, 42::bigint as big, 7::int as int,
               3::smallint as small, 1.5::real as single, 2.5::float8 as double,
               'US'::text as country, 'x'::varchar(3) as code, null::bigint as sometimes
        union all select date '2024-02-29', false, -1, 0, 0, -0.25, 1e300, '', 'yz', 5""",
    "uuids, as text": """
        select 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid as id union all select null""",
    # No value to infer a type from: psycopg2's columns take PostgreSQL's declared types.
    "no rows, every common type": f"select {_EVERY_TYPE} where false",
    "nulls only, every common type": f"select {_EVERY_TYPE} from generate_series(1, 3)",
    "timestamps, zoned and not": """
        select timestamptz '2025-03-30 01:30:00+02' as zoned,
               timestamp '2025-03-30 01:30:00' as plain,
               date_trunc('month', date '2025-03-30') as truncated""",
}


@pytest.mark.parametrize("sql", list(SAME_AS_PSYCOPG2.values()), ids=list(SAME_AS_PSYCOPG2))
def test_the_same_table_as_psycopg2(adbc, psycopg, sql):
    assert_same_table(adbc.execute(sql), psycopg.execute(sql))


def test_numeric_is_exact_and_sized_like_psycopg2s_decimals(adbc):
    table = adbc.execute("select 12345.67::numeric(12, 2) as revenue union all select 0.10")
    assert table.schema.field("revenue").type == pa.decimal128(7, 2)
    assert table.column("revenue").to_pylist() == [decimal.Decimal("12345.67"),
                                                   decimal.Decimal("0.10")]
    exact = adbc.execute("select 12345678901234567.89::numeric as v").column("v")[0].as_py()
    assert exact == decimal.Decimal("12345678901234567.89")  # a float would end in ...68
    assert adbc.execute("select 10::numeric ^ 45 as v").schema.field("v").type.precision == 62


def test_timestamptz_comes_back_as_naive_utc(adbc):
    table = adbc.execute("select timestamptz '2025-03-30 01:30:00+02' as t")
    assert table.schema.field("t").type == pa.timestamp("us")
    assert table.column("t")[0].as_py() == dt.datetime(2025, 3, 29, 23, 30)
    assert adbc.execute("select current_setting('TimeZone') as tz").column("tz")[0].as_py() \
        == "UTC"


def test_the_result_carries_no_driver_metadata(adbc):
    table = adbc.execute("select 1.5::numeric as n, 'x'::text as s")
    assert table.schema.metadata is None
    assert all(f.metadata is None for f in table.schema)


def test_empty_and_all_null_results_keep_their_columns(adbc):
    table = adbc.execute("select 1 as a, 'x'::text as b, 1.5::numeric(4, 2) as c, "
                         "2.5::numeric as d where false")
    assert table.column_names == ["a", "b", "c", "d"] and table.num_rows == 0
    # psycopg2 sees no value to infer from (null columns); PostgreSQL's own types are kept.
    assert table.schema.types == [pa.int64(), pa.string(), pa.decimal128(4, 2),
                                  pa.decimal128(38, 0)]
    nulls = adbc.execute("select null::numeric as n from generate_series(1, 3)")
    assert nulls.column("n").to_pylist() == [None] * 3
    assert pa.types.is_decimal(nulls.schema.field("n").type)


def test_nan_numerics_are_a_clear_error(adbc):
    with pytest.raises(WarehouseError, match="NaN or Infinity"):
        adbc.execute("select 'NaN'::numeric as n")
    adbc.ping()


# Guarantees ------------------------------------------------------------------------------------

def test_queries_cannot_write(adbc, scratch_table):
    with pytest.raises(WarehouseError, match="read-only"):
        adbc.execute("create table tally_should_not_exist (x int)")
    with pytest.raises(WarehouseError, match="read-only"):
        adbc.execute(f"insert into {scratch_table} values (1) returning x")
    with pytest.raises(WarehouseError, match="read-only"):
        adbc.execute(f"with w as (insert into {scratch_table} values (2) returning x) "
                     "select * from w")
    # One statement per query: nothing can commit the read-only transaction and go on.
    with pytest.raises(WarehouseError, match="multiple commands"):
        adbc.execute(f"commit; insert into {scratch_table} values (3)")
    assert adbc.execute(f"select count(*) as n from {scratch_table}").column("n")[0].as_py() == 0


def test_a_query_cannot_unlock_writes_for_the_next_one(adbc, scratch_table):
    """Connections are pooled: a setting one query changes is rolled back with it."""
    warehouse = PostgresAdbcWarehouse(**PG)  # one idle connection, reused by every query
    try:
        warehouse.execute("select set_config('default_transaction_read_only', 'off', false)")
        warehouse.execute("select set_config('statement_timeout', '1', false)")
        assert warehouse.execute("select current_setting('default_transaction_read_only') "
                                 "as ro").column("ro")[0].as_py() == "on"
        warehouse.execute("select pg_sleep(0.05) is null as slept")  # no 1 ms timeout left
        with pytest.raises(WarehouseError, match="read-only"):
            warehouse.execute(f"insert into {scratch_table} values (1) returning x")
    finally:
        warehouse.close()


def test_timeout_and_errors(adbc):
    with pytest.raises(QueryTimeout, match=r"0\.2 s"):
        adbc.execute("select pg_sleep(3)", timeout_seconds=0.2)
    # The pooled connection keeps no timeout from the query before.
    assert adbc.execute("select current_setting('statement_timeout') as t").column(
        "t")[0].as_py() == "0"
    with pytest.raises(WarehouseError, match=r"PostgreSQL failed.*no_such_table_anywhere"):
        adbc.execute("select * from no_such_table_anywhere")
    adbc.ping()  # the warehouse is still fine afterwards


@pytest.mark.parametrize("sql", [
    "select 'not a date'::date as d",  # 22007 invalid_datetime_format
    "select 1 / (x - 3) as v from generate_series(1, 5) x",  # 22012, while rows stream
    "select 'US'::text > 1 as v",  # 42883 undefined_function (operator does not exist)
    "select case when true then 1 else 'a'::text end as v",  # 42804 datatype_mismatch
], ids=["bad-date", "division-by-zero", "text-vs-integer", "datatype-mismatch"])
def test_a_refused_value_is_a_data_error(adbc, sql):
    with pytest.raises(QueryDataError, match="PostgreSQL refused a value"):
        adbc.execute(sql)


def test_unreachable_server_is_unavailable():
    with pytest.raises(WarehouseUnavailable, match="Cannot connect"):
        PostgresAdbcWarehouse(host="127.0.0.1", port=1, user="postgres", dbname="test").ping()


def test_concurrent_queries_each_get_a_connection(adbc):
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> list:
        sql = f"select {i}::numeric / 4 as q, pg_backend_pid() as pid from pg_sleep(0.05)"
        return adbc.execute(sql, timeout_seconds=30).to_pylist()

    with ThreadPoolExecutor(12) as pool:
        rows = [r[0] for r in pool.map(one, range(48))]
    assert [r["q"] for r in rows] == [decimal.Decimal(i) / 4 for i in range(48)]
    assert len({r["pid"] for r in rows}) > 1  # ran side by side, not one after another
    assert len(adbc._idle) <= 8  # idle connections kept afterwards are bounded


def test_a_pooled_connection_the_server_closed_is_replaced(psycopg):
    """A server restart or an idle timeout closes the connections waiting in the pool: the
    next query runs on a new one instead of failing."""
    import psycopg2

    warehouse = PostgresAdbcWarehouse(**PG)
    admin = psycopg2.connect(**PG)
    admin.autocommit = True
    try:
        pid = warehouse.execute("select pg_backend_pid() as pid").column("pid")[0].as_py()
        with admin.cursor() as cur:
            cur.execute("select pg_terminate_backend(%s, 5000)", (pid,))  # waits until gone
        again = warehouse.execute("select pg_backend_pid() as pid").column("pid")[0].as_py()
        assert again != pid
    finally:
        admin.close()
        warehouse.close()


def test_interrupt_cancels_a_running_query(adbc):
    """At shutdown the server interrupts what still runs (a warehouse of its own here: once
    interrupted, a warehouse treats cancelled queries as the server shutting down)."""
    assert_interrupt_stops(PostgresAdbcWarehouse(**PG), "select pg_sleep(30)")


# Connecting ------------------------------------------------------------------------------------

def test_user_password_and_database_names_are_escaped(psycopg):
    """A role and a database whose names hold every character a URI gives a meaning to."""
    import psycopg2

    odd, password = "tally user@x:y/z%20?#", "p@ss:w/rd %?#"
    admin = psycopg2.connect(**PG)
    admin.autocommit = True
    with admin.cursor() as cur:  # no parameters: psycopg2 leaves the % signs alone
        cur.execute(f"create role \"{odd}\" login password '{password}'")
        cur.execute(f'create database "{odd}"')
    try:
        warehouse = PostgresAdbcWarehouse(host=PG["host"], port=PG["port"], user=odd,
                                          password=password, dbname=odd)
        try:
            row = warehouse.execute("select current_user as u, current_database() as d")
            assert row.to_pylist() == [{"u": odd, "d": odd}]
        finally:
            warehouse.close()
    finally:
        with admin.cursor() as cur:
            cur.execute(f'drop database "{odd}" with (force)')
            cur.execute(f'drop role "{odd}"')
        admin.close()


def test_connection_uri():
    uri = connection_uri(host="db.internal", port=6432, user="a@b", password="p:/w",
                         dbname="an alytics", sslmode="require", search_path="ignored")
    assert uri.startswith("postgresql://a%40b:p%3A%2Fw@db.internal:6432/an%20alytics?")
    assert "sslmode=require" in uri and "search_path" not in uri
    assert "options=-c%20TimeZone%3DUTC%20-c%20default_transaction_read_only%3Don" in uri
    socket = connection_uri(host="/var/run/postgresql", dbname="d")
    assert socket.startswith("postgresql:///d?") and "host=%2Fvar%2Frun%2Fpostgresql" in socket
    assert connection_uri(host="::1", port=5432).startswith("postgresql://[::1]:5432/?")


def test_bad_connection_settings_are_clear_and_keep_the_password_out():
    with pytest.raises(ConfigurationError, match="port is not a number: 'abc'"):
        PostgresAdbcWarehouse(host="127.0.0.1", port="abc", user="u", dbname="d")
    # libpq quotes a URI it cannot parse, password included: tally masks it.
    with pytest.raises(WarehouseUnavailable) as refused:
        PostgresAdbcWarehouse(host="fe80::1]x", port=5432, user="u", password="s3cr:et/",
                              dbname="d").ping()
    assert "Cannot connect" in refused.value.message and "***" in refused.value.message
    assert "s3cr" not in refused.value.message and refused.value.__cause__ is None


def test_a_missing_driver_is_one_configuration_error(monkeypatch):
    """Asked for by name, a missing driver is one line naming the package; auto falls back to
    psycopg2 without it."""
    monkeypatch.setitem(sys.modules, "adbc_driver_postgresql", None)  # import fails
    monkeypatch.setitem(sys.modules, "adbc_driver_postgresql.dbapi", None)
    with pytest.raises(ConfigurationError, match="pip install adbc-driver-postgresql"):
        registry.connect({"type": "postgres", "host": "127.0.0.1", "dbname": "test"},
                         PROJECT_DIR, "adbc")
    assert registry.engine_for("postgres") is postgres.ENGINE
    assert {r["adapter"]: r["path"] for r in registry.execution_paths()}["postgres"] == "native"


# Choosing the path -----------------------------------------------------------------------------

def test_the_paths_of_postgres():
    assert registry.engine_for("postgres") is ENGINE  # auto, the driver being installed
    assert registry.engine_for("postgres", "adbc") is ENGINE
    assert registry.engine_for("postgres", "native") is postgres.ENGINE
    assert registry.engine_for("postgres", "dbt-adapter").execution_path == "dbt-adapter"
    assert ENGINE.execution_path == "adbc" and ENGINE.dialect == "postgres"
    with pytest.raises(ConfigurationError, match="no ADBC path for dbt adapter type 'duckdb'"):
        registry.engine_for("duckdb", "adbc")
    with pytest.raises(ConfigurationError, match=r"no engine module for .* 'snowflake'"):
        registry.engine_for("snowflake", "native")
    with pytest.raises(ConfigurationError, match="Unknown execution path 'odbc'"):
        registry.engine_for("postgres", "odbc")
    paths = {row["adapter"]: row for row in registry.execution_paths()}
    assert paths["postgres"] == {"adapter": "postgres", "path": "adbc",
                                 "also": "native, dbt-adapter"}
    assert paths["duckdb"] == {"adapter": "duckdb", "path": "native", "also": ""}
    assert paths["snowflake"]["path"] == "dbt-adapter"


def test_profile_target_postgres_with_the_adbc_path(monkeypatch, adbc):
    monkeypatch.setenv("PGDATABASE", PG["dbname"])
    output = read_profile_target(PROJECT_DIR, PROJECT_DIR, target="postgres")
    engine, warehouse = registry.connect(output, PROJECT_DIR)  # auto
    try:
        assert engine is ENGINE and isinstance(warehouse, PostgresAdbcWarehouse)
        assert warehouse.execute("select 1 as one").column("one").to_pylist() == [1]
    finally:
        warehouse.close()


def test_the_adbc_path_serves_the_psycopg2_numbers(monkeypatch, pg_warehouse):
    """Services configured as a user would (the profile, TALLY_EXECUTION_PATH) answer the same
    through ADBC (auto) and psycopg2 (native), to the type; a bad filter value stays the
    caller's mistake."""
    monkeypatch.setenv("PGDATABASE", pg_warehouse.dbname)
    monkeypatch.setenv("TALLY_EXECUTION_PATH", "native")
    base = {"project_dir": PROJECT_DIR, "manifest_path": pg_warehouse.manifest_path,
            "target": "postgres", "cache_enabled": False}
    through_psycopg2 = TallyService(Settings(**base))
    through_adbc = TallyService(Settings(**base, execution_path="auto"))
    try:
        assert through_adbc.engine.execution_path == "adbc"
        assert isinstance(through_adbc.warehouse, PostgresAdbcWarehouse)
        assert isinstance(through_psycopg2.warehouse, PostgresWarehouse)
        request = QueryRequest.create(
            metrics=["revenue", "order_count", "average_order_value"],
            group_by=["metric_time__month", "customer__country"])
        served = through_adbc.query(request, ANONYMOUS).table
        assert served.num_rows > 0
        assert_same_table(served, through_psycopg2.query(request, ANONYMOUS).table)
        with pytest.raises(InvalidFilter):
            through_adbc.query(QueryRequest.create(metrics=["revenue"], where=[
                "{{ TimeDimension('metric_time', 'day') }} > 'not a date'"]), ANONYMOUS)
    finally:
        through_adbc.shutdown()
        through_psycopg2.shutdown()
