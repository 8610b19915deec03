"""psycopg 3 against a real `tally serve --pg-port`: the extended protocol with server-side
parameters ($1 ...), text and binary results, a tenant's rows and columns, refused statements
with their SQLSTATE (the connection usable afterwards), a bad password, a cancelled query."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors

from tests.pgwire.cases import BY_COUNTRY, CASES, by_country_expected, check
from tests.pgwire.conftest import DENIED_DIMENSION, DENIED_METRIC, TENANT_COUNTRIES
from tests.support.hand_sql import assert_rows_match


@pytest.fixture(scope="module")
def conn(pg) -> Iterator[psycopg.Connection]:
    with psycopg.connect(pg.dsn(), autocommit=True) as c:
        yield c


def _rows(cursor) -> tuple[list[str], list[tuple]]:
    return [d.name for d in cursor.description], cursor.fetchall()


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_cases_with_server_side_parameters(conn, raw, case, binary):
    with conn.cursor(binary=binary) as cur:
        cur.execute(case.template, case.params)  # psycopg 3 binds them server-side as $1...
        columns, rows = _rows(cur)
        assert cur.pgresult.fformat(0) == (1 if binary else 0)
    assert check(case, raw, rows, columns) > 0


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_cases_as_literal_sql(conn, raw, case):
    columns, rows = _rows(conn.execute(case.sql))
    check(case, raw, rows, columns)


def test_prepared_statement_reused(conn, raw):
    case = CASES[0]
    for _ in range(3):  # prepare=True: Parse once, then Bind/Execute by name
        cur = conn.execute(case.template, case.params, prepare=True)
        check(case, raw, *reversed(_rows(cur)))


def test_tenant_sees_its_rows_and_columns_cold_and_warm(pg, raw):
    expected = by_country_expected(raw, TENANT_COUNTRIES)
    for attempt in ("cold", "warm"):
        with psycopg.connect(pg.dsn(pg.tenant_key), autocommit=True) as c:
            columns, rows = _rows(c.execute(BY_COUNTRY))
            served = [dict(zip(columns, r, strict=True)) for r in rows]
            assert {r["customer__country"] for r in served} == set(TENANT_COUNTRIES), attempt
            assert_rows_match(served, expected, ["customer__country"], "revenue")
            # asking for another country's rows answers none of them
            other = c.execute("SELECT customer__country, SUM(revenue) FROM metrics "
                              "WHERE customer__country = 'US' GROUP BY 1").fetchall()
            assert other == [], attempt
            names = {r[0] for r in c.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'metrics'").fetchall()}
            assert "revenue" in names and "customer__country" in names
            assert DENIED_METRIC not in names and DENIED_DIMENSION not in names
            attnames = {r[0] for r in c.execute(
                "SELECT a.attname FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c "
                "ON c.oid = a.attrelid WHERE c.relname = 'metrics' AND a.attnum > 0")}
            assert attnames == names
            with pytest.raises(errors.UndefinedColumn):
                c.execute(f"SELECT SUM({DENIED_METRIC}) FROM metrics")
            with pytest.raises(errors.UndefinedColumn):
                c.execute(f"SELECT {DENIED_DIMENSION}, SUM(revenue) FROM metrics GROUP BY 1")
            assert c.execute("SELECT 1").fetchone() == (1,)


def test_full_key_sees_every_column(conn):
    names = {r[0] for r in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'metrics'")}
    assert DENIED_METRIC in names and DENIED_DIMENSION in names


def test_bad_password_is_refused(pg):
    # libpq does not expose a startup failure's SQLSTATE to psycopg (asyncpg's test checks 28P01)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(pg.dsn("tk_not_a_key"), connect_timeout=10)


REFUSED = [
    ("SELECT SUM(average_order_value) FROM metrics", "42803", None),
    ("SELECT SUM(revenue) FROM metricz", "42P01", "Did you mean"),
    ("SELECT customer__countyr, SUM(revenue) FROM metrics GROUP BY 1", "42703", "Did you mean"),
    ("INSERT INTO metrics (revenue) VALUES (1)", "25006", None),
    ("SELECT a.revenue, b.order_count FROM metrics a JOIN metrics b "
     "ON a.metric_time = b.metric_time", "0A000", None),
]


@pytest.mark.parametrize(("sql", "sqlstate", "hint"), REFUSED, ids=lambda v: str(v)[:20])
def test_refused_statements_keep_the_connection(conn, sql, sqlstate, hint):
    with pytest.raises(psycopg.Error) as raised:
        conn.execute(sql)
    assert raised.value.sqlstate == sqlstate, raised.value
    if hint:
        assert hint in str(raised.value), raised.value
    assert conn.execute("SELECT SUM(order_count) FROM metrics").fetchone()[0] > 0


# Slow for real in the outer layer: four metric queries' results joined (what tally allows:
# the results of metric queries joined, never the metrics table with itself), billions of rows
# for the sandbox's one thread; a cancel must interrupt it there.
_DAYS = "(SELECT metric_time__day AS d, SUM({m}) AS v FROM metrics GROUP BY 1) {a}"
SLOW = ("SELECT count(*) FROM " + " CROSS JOIN ".join(
    _DAYS.format(m=m, a=a) for m, a in (("order_count", "a"), ("revenue", "b"),
                                        ("revenue", "c"), ("order_count", "e")))
        + " WHERE a.v * b.v > c.v * e.v * 1000000")


def test_cancel_a_long_query(pg):
    with psycopg.connect(pg.dsn(), autocommit=True) as c:
        outcome: list[BaseException | None] = []

        def run() -> None:
            try:
                c.execute(SLOW)
                outcome.append(None)
            except BaseException as e:  # the test looks at it
                outcome.append(e)

        thread = threading.Thread(target=run)
        thread.start()
        time.sleep(2)
        assert thread.is_alive(), f"the slow query ended by itself: {outcome}"
        started = time.perf_counter()
        c.cancel()
        thread.join(20)
        assert not thread.is_alive()
        assert time.perf_counter() - started < 10
        assert isinstance(outcome[0], errors.QueryCanceled), outcome
        assert outcome[0].sqlstate == "57014"
        assert c.execute("SELECT SUM(order_count) FROM metrics").fetchone()[0] > 0
        # the sandbox stopped too: a catalog query (the same sandbox) answers at once
        started = time.perf_counter()
        assert c.execute("SELECT count(*) FROM information_schema.tables").fetchone()[0] > 0
        assert time.perf_counter() - started < 5
