"""psycopg2 (client-side parameters, the simple protocol) and asyncpg (prepared statements over
the extended protocol, binary results, its type introspection) against a real server."""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
import psycopg2
import pytest

from tests.pgwire.cases import CASES, check, placeholders
from tests.support.hand_sql import expected_rows


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_psycopg2(pg, raw, case):
    conn = psycopg2.connect(pg.dsn())
    try:
        with conn.cursor() as cur:
            cur.execute(case.template, case.params)
            columns = [d.name for d in cur.description]
            check(case, raw, cur.fetchall(), columns)
            cur.execute(case.sql)
            check(case, raw, cur.fetchall(), [d.name for d in cur.description])
        conn.rollback()
    finally:
        conn.close()


def test_psycopg2_error_keeps_the_connection(pg):
    conn = psycopg2.connect(pg.dsn())
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            with pytest.raises(psycopg2.Error) as raised:
                cur.execute("SELECT SUM(average_order_value) FROM metrics")
            assert raised.value.pgcode == "42803"
            cur.execute("SELECT SUM(order_count) FROM metrics")
            assert cur.fetchone()[0] > 0
    finally:
        conn.close()


async def _asyncpg_case(pg, case) -> tuple[list[str], list]:
    conn = await asyncpg.connect(host="127.0.0.1", port=pg.port, user="tally", database="tally",
                                 password=pg.key)
    try:
        statement = await conn.prepare(placeholders(case.template, "$"))
        columns = [a.name for a in statement.get_attributes()]
        # tally describes $1 in `metric_time >= $1` as DATE (as PostgreSQL infers it), so
        # asyncpg takes the case's datetime.date values and sends them in binary
        assert [t.name for t in statement.get_parameters()] == \
            [type(p).__name__ if type(p) is dt.date else "text" for p in case.params]
        rows = await statement.fetch(*case.params)
        again = await conn.fetch(case.sql)  # an unnamed statement, binary results too
        assert [tuple(r) for r in again] == [tuple(r) for r in rows]
        return columns, [tuple(r) for r in rows]
    finally:
        await conn.close()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_asyncpg(pg, raw, case):
    columns, rows = asyncio.run(_asyncpg_case(pg, case))
    check(case, raw, rows, columns)


def test_asyncpg_bad_password_is_28P01(pg):
    async def connect() -> None:
        await asyncpg.connect(host="127.0.0.1", port=pg.port, user="tally", database="tally",
                              password="tk_not_a_key", timeout=10)

    with pytest.raises(asyncpg.InvalidPasswordError) as raised:
        asyncio.run(connect())
    assert raised.value.sqlstate == "28P01"


def test_asyncpg_refused_then_usable(pg):
    async def run() -> int:
        conn = await asyncpg.connect(host="127.0.0.1", port=pg.port, user="tally",
                                     database="tally", password=pg.key)
        try:
            with pytest.raises(asyncpg.PostgresError) as raised:
                await conn.fetch("SELECT customer__countyr, SUM(revenue) FROM metrics GROUP BY 1")
            assert raised.value.sqlstate == "42703"
            assert "Did you mean" in str(raised.value)
            return await conn.fetchval("SELECT SUM(order_count) FROM metrics")
        finally:
            await conn.close()

    assert asyncio.run(run()) > 0


def test_asyncpg_cursor_fetches_a_portal_a_few_rows_at_a_time(pg, raw):
    # asyncpg's cursor binds a portal and executes it with a row limit again and again
    # (PortalSuspended between), as JDBC does with a fetch size.
    sql = ("SELECT metric_time__month, MEASURE(order_count) AS n FROM metrics "
           "GROUP BY 1 ORDER BY 1")

    async def run() -> tuple[list, list]:
        conn = await asyncpg.connect(host="127.0.0.1", port=pg.port, user="tally",
                                     database="tally", password=pg.key)
        try:
            async with conn.transaction():
                cursor = await conn.cursor(sql)
                pages = [await cursor.fetch(7) for _ in range(3)]
                rest = [r async for r in conn.cursor(sql, prefetch=5)]
            return pages, rest
        finally:
            await conn.close()

    pages, rest = asyncio.run(run())
    expected = expected_rows(raw, """
        select cast(date_trunc('month', order_date) as date) as m, count(*) as n
        from enriched_orders group by 1 order by 1""")
    want = [(r["m"], r["n"]) for r in expected]
    assert [len(p) for p in pages] == [7, 7, 7]
    assert [(r[0], r[1]) for p in pages for r in p] == want[:21]
    assert [(r[0], r[1]) for r in rest] == want
