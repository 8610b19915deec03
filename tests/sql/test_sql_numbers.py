"""SQL over metrics, in process (tally.sql.SqlSession over the service): every answer against
SQL written by hand over raw.* (tests/support/hand_sql.py), on DuckDB and on PostgreSQL, at
several grains, group-bys and filters, the wrappers BI tools write, and every refusal with its
SQLSTATE. The wire protocols' own tests (tests/pgwire/, tests/flight/) run real clients."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from tally.core.caller import ANONYMOUS
from tally.sql.errors import sqlstate_of
from tally.sql.session import SqlEngine, SqlResult
from tests.support.hand_sql import expected_rows
from tests.support.services import ServiceFactory

COMPLETED = "order_status = 'completed'"
REVENUE = f"sum(net_amount) filter (where {COMPLETED})"
ORDERS = "count(*)"


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def engine(request: pytest.FixtureRequest, session_services: ServiceFactory,
           engines, ) -> Iterator[SqlEngine]:
    if request.param == "duckdb":
        yield SqlEngine(session_services.service())
        return
    from tally.warehouse.postgres import PostgresWarehouse

    pg = request.getfixturevalue("pg_warehouse")
    factory = ServiceFactory(engines, pg.manifest_path, lambda: PostgresWarehouse(**pg.conn()),
                             target="postgres")
    yield SqlEngine(factory.service())
    factory.close()


def run(engine: SqlEngine, sql: str) -> SqlResult:
    return asyncio.run(engine.session(ANONYMOUS).execute(sql))


def rows(engine: SqlEngine, sql: str) -> list[dict[str, Any]]:
    result = run(engine, sql)
    import pyarrow as pa

    table = pa.Table.from_batches(list(result.batches()), schema=None) \
        if result.table is not None and result.table.num_rows else result.table
    return table.to_pylist() if table is not None else []


def refusal(engine: SqlEngine, sql: str) -> tuple[str, str]:
    with pytest.raises(Exception) as caught:
        run(engine, sql)
    return sqlstate_of(caught.value), str(getattr(caught.value, "message", caught.value))


def same(served: list[dict], expected: list[dict], keys: list[str]) -> None:
    assert expected, "the hand computation is empty"
    assert len(served) == len(expected), (len(served), len(expected))
    index = {tuple(r[k] for k in keys): r for r in expected}
    for row in served:
        want = index[tuple(row[k] for k in keys)]
        for name, value in row.items():
            if isinstance(value, float) or isinstance(want[name], float):
                assert value == pytest.approx(float(want[name]), rel=1e-9), (name, row, want)
            else:
                assert Decimal(str(value)) == Decimal(str(want[name])) \
                    if isinstance(value, Decimal | int) and not isinstance(value, bool) \
                    else value == want[name], (name, row, want)


def test_the_issues_example_is_one_metric_query(engine, raw):
    served = rows(engine, "SELECT customer__country, SUM(revenue) FROM metrics WHERE "
                  "metric_time >= '2025-01-01' AND customer__country IN ('US', 'DE') "
                  "GROUP BY 1 ORDER BY 2 DESC LIMIT 10")
    expected = expected_rows(raw, f"""
        select customer__country, {REVENUE} as sum from enriched_orders
        where order_date >= date '2025-01-01' and customer__country in ('US', 'DE')
        group by 1 order by 2 desc limit 10""")
    same(served, expected, ["customer__country"])
    assert [r["customer__country"] for r in served] == \
        [r["customer__country"] for r in expected]  # ORDER BY 2 DESC kept


@pytest.mark.parametrize("grain", ["month", "quarter", "year"])
def test_date_trunc_is_a_grain_and_measure_is_the_metrics_own(engine, raw, grain):
    served = rows(engine, f"SELECT DATE_TRUNC('{grain}', metric_time) AS period, "
                  "MEASURE(revenue) AS revenue, MEASURE(average_order_value) AS aov "
                  "FROM metrics WHERE metric_time BETWEEN '2024-01-01' AND '2025-06-30' "
                  "GROUP BY 1 ORDER BY 1")
    expected = expected_rows(raw, f"""
        select cast(date_trunc('{grain}', order_date) as date) as period,
               {REVENUE} as revenue,
               cast({REVENUE} as double) / nullif(count(*) filter (where {COMPLETED}), 0) as aov
        from enriched_orders where order_date between date '2024-01-01' and date '2025-06-30'
        group by 1 order by 1""")
    same(served, expected, ["period"])
    assert [r["period"] for r in served] == sorted(r["period"] for r in served)


def test_extract_having_and_expressions_over_metric_columns(engine, raw):
    served = rows(engine, "SELECT EXTRACT(year FROM metric_time) AS y, "
                  "SUM(revenue) / SUM(order_count) AS per_order FROM metrics "
                  "GROUP BY 1 HAVING SUM(order_count) > 50 ORDER BY 1")
    expected = expected_rows(raw, f"""
        select extract(year from order_date) as y,
               cast({REVENUE} as double) / {ORDERS} as per_order
        from enriched_orders group by 1 having {ORDERS} > 50 order by 1""")
    same(served, expected, ["y"])


def test_or_conditions_become_a_checked_where_template(engine, raw):
    served = rows(engine, "SELECT customer__country, order_count FROM metrics WHERE "
                  "(customer__country = 'US' OR customer__country LIKE 'D%') "
                  "AND metric_time < '2023-01-01' GROUP BY customer__country")
    expected = expected_rows(raw, f"""
        select customer__country, {ORDERS} as order_count from enriched_orders
        where (customer__country = 'US' or customer__country like 'D%')
          and order_date < date '2023-01-01'
        group by 1""")
    same(served, expected, ["customer__country"])


def test_strings_take_the_date_columns_type_and_typed_instants_compare_as_instants(engine,
                                                                                    raw):
    # PostgreSQL casts an untyped string to the column's type ('2025-03-01 12:00' is the date
    # 2025-03-01); a typed timestamp compares with the date's midnight.
    served = rows(engine, "SELECT revenue FROM metrics WHERE metric_time >= "
                  "'2025-03-01 12:00:00' AND metric_time < TIMESTAMP '2025-03-31 08:00'")
    expected = expected_rows(raw, f"""
        select {REVENUE} as revenue from enriched_orders
        where order_date >= date '2025-03-01' and order_date <= date '2025-03-31'""")
    same(served, expected, [])
    served = rows(engine, "SELECT revenue FROM metrics WHERE metric_time >= "
                  "TIMESTAMP '2025-03-01 12:00:00' AND metric_time < '2025-04-01'")
    expected = expected_rows(raw, f"""
        select {REVENUE} as revenue from enriched_orders
        where order_date >= date '2025-03-02' and order_date < date '2025-04-01'""")
    same(served, expected, [])


def test_date_trunc_of_a_coarser_column_keeps_its_grain(engine, raw):
    served = rows(engine, "SELECT DATE_TRUNC('month', metric_time__year) AS y, "
                  "MEASURE(revenue) AS revenue FROM metrics GROUP BY 1")
    expected = expected_rows(raw, f"""
        select cast(date_trunc('year', order_date) as date) as y, {REVENUE} as revenue
        from enriched_orders group by 1""")
    same(served, expected, ["y"])


def test_between_symmetric_like_escapes_and_integer_division(engine, raw):
    served = rows(engine, "SELECT MEASURE(active_customers) / 7 AS q FROM metrics WHERE "
                  "metric_time BETWEEN SYMMETRIC '2025-03-31' AND '2025-03-01'")
    expected = expected_rows(raw, f"""
        select count(distinct customer_id) filter (where {COMPLETED}) // 7 as q
        from enriched_orders where order_date between date '2025-03-01' and date '2025-03-31'""")
    same(served, expected, [])
    assert isinstance(served[0]["q"], int)
    escaped = rows(engine, "SELECT customer__country, order_count FROM metrics "
                   "WHERE customer__country LIKE 'U\\_' GROUP BY 1")
    assert escaped == []  # 'U\_' is U and an underscore, which no country is
    plain = rows(engine, "SELECT customer__country FROM metrics "
                 "WHERE customer__country LIKE 'U_' GROUP BY 1")
    assert [r["customer__country"] for r in plain] == ["US"]


def test_constant_conditions_and_windows_over_the_groups(engine, raw):
    assert rows(engine, "SELECT SUM(revenue) AS r FROM metrics WHERE 1 = 0") == [{"r": None}]
    total = expected_rows(raw, f"select {REVENUE} as r from enriched_orders")[0]["r"]
    served = rows(engine, "SELECT customer__country, SUM(SUM(revenue)) OVER () AS total "
                  "FROM metrics WHERE 1 = 1 GROUP BY 1")
    assert served and all(Decimal(str(r["total"])) == Decimal(str(total)) for r in served)


def test_a_bare_metric_without_group_by_is_the_total(engine, raw):
    served = rows(engine, "SELECT revenue, order_count, active_customers FROM metrics")
    expected = expected_rows(raw, f"""
        select {REVENUE} as revenue, {ORDERS} as order_count,
               count(distinct customer_id) filter (where {COMPLETED}) as active_customers
        from enriched_orders""")
    same(served, expected, [])


def test_count_distinct_is_the_distinct_counts_own_aggregation(engine, raw):
    served = rows(engine, "SELECT metric_time__year, COUNT(DISTINCT active_customers) AS n "
                  "FROM metrics GROUP BY 1")
    expected = expected_rows(raw, f"""
        select cast(date_trunc('year', order_date) as date) as metric_time__year,
               count(distinct customer_id) filter (where {COMPLETED}) as n
        from enriched_orders group by 1""")
    same(served, expected, ["metric_time__year"])


def test_supersets_chart_query_and_virtual_table_wrapper(engine, raw):
    inner = ("SELECT DATE_TRUNC('month', metric_time) AS metric_time, SUM(revenue) AS revenue "
             "FROM metrics WHERE metric_time >= TO_TIMESTAMP('2025-01-01 00:00:00.000000', "
             "'YYYY-MM-DD HH24:MI:SS.US') AND metric_time < TO_TIMESTAMP('2026-01-01 "
             "00:00:00.000000', 'YYYY-MM-DD HH24:MI:SS.US') AND customer__country IN ('US') "
             "GROUP BY DATE_TRUNC('month', metric_time) ORDER BY revenue DESC LIMIT 10000")
    expected = expected_rows(raw, f"""
        select cast(date_trunc('month', order_date) as date) as metric_time,
               {REVENUE} as revenue from enriched_orders
        where order_date >= date '2025-01-01' and order_date < date '2026-01-01'
          and customer__country = 'US' group by 1""")
    same(rows(engine, inner), expected, ["metric_time"])
    wrapped = rows(engine, f"SELECT metric_time, revenue * 2 AS double_revenue FROM ({inner}) "
                   "AS virtual_table WHERE revenue > 0 ORDER BY metric_time LIMIT 5")
    assert [r["metric_time"] for r in wrapped] == sorted(r["metric_time"]
                                                         for r in expected)[:5]
    by_month = {r["metric_time"]: r["revenue"] for r in expected}
    assert all(Decimal(str(r["double_revenue"])) == 2 * Decimal(str(by_month[r["metric_time"]]))
               for r in wrapped)


def test_a_cte_and_a_union_of_two_metric_queries(engine, raw):
    served = rows(engine, "WITH us AS (SELECT revenue FROM metrics WHERE customer__country = "
                  "'US'), de AS (SELECT revenue FROM metrics WHERE customer__country = 'DE') "
                  "SELECT 'US' AS c, revenue FROM us UNION ALL SELECT 'DE', revenue FROM de "
                  "ORDER BY c")
    expected = expected_rows(raw, f"""
        select customer__country as c, {REVENUE} as revenue from enriched_orders
        where customer__country in ('US', 'DE') group by 1 order by 1""")
    same(served, expected, ["c"])


def test_a_saved_querys_table_is_its_result(engine, raw):
    served = rows(engine, "SELECT metric_time__month, revenue FROM revenue_by_country_by_month "
                  "WHERE customer__country = 'DE' AND metric_time__month >= '2025-01-01'")
    expected = expected_rows(raw, f"""
        select cast(date_trunc('month', order_date) as date) as metric_time__month,
               {REVENUE} as revenue from enriched_orders
        where customer__country = 'DE' and order_date >= date '2025-01-01' group by 1""")
    same(served, expected, ["metric_time__month"])


def test_shape_only_queries_run_nothing(engine):
    result = run(engine, "SELECT * FROM metrics LIMIT 0")
    assert result.table is not None and result.table.num_rows == 0
    names = [name for name, _ in result.columns]
    assert "revenue" in names and "metric_time__month" in names
    types = dict(result.columns)
    assert types["order_count"].name in ("numeric", "int8")
    assert types["average_order_value"].name == "float8"
    assert types["metric_time__month"].name == "date"


@pytest.mark.parametrize(("sql", "state", "words"), [
    ("SELECT SUM(average_order_value) FROM metrics", "42803", "MEASURE(average_order_value)"),
    ("SELECT AVG(revenue) FROM metrics", "42803", "SUM(revenue)"),
    ("SELECT SUM(DISTINCT revenue) FROM metrics", "42803", "MEASURE(revenue)"),
    ("SELECT SUM(revenue) OVER () FROM metrics", "0A000", "SUM(SUM(revenue)) OVER"),
    ("SELECT EXTRACT(month FROM metric_time__quarter), revenue FROM metrics GROUP BY 1",
     "0A000", "extract it from metric_time"),
    ("SELECT * FROM metrics", "0A000", "name the columns"),
    ("SELECT COUNT(*) FROM metrics", "0A000", "COUNT(*)"),
    ("SELECT revenue FROM metrcs", "42P01", 'Did you mean "metrics"?'),
    ("SELECT revenu FROM metrics", "42703", 'Did you mean "revenue"?'),
    ("SELECT a.revenue FROM metrics a JOIN metrics b ON true", "0A000", "join"),
    ("SELECT customer__country FROM metrics WHERE revenue > 10 GROUP BY 1", "42803", "HAVING"),
    ("INSERT INTO metrics VALUES (1)", "25006", "read-only"),
    ("DROP TABLE metrics", "25006", "read-only"),
    ("SELECT * FROM read_csv('/etc/passwd')", "0A000", "files or the network"),
    ("SELECT read_text('/etc/passwd')", "0A000", "files or the network"),
    ("SELECT DATE_TRUNC('fortnight', metric_time), revenue FROM metrics GROUP BY 1", "0A000",
     "grain"),
    ("SELECT customer__country, revenue FROM metrics GROUP BY metric_time__year", "42803",
     "GROUP BY"),
    ("SELEC 1", "42601", "syntax"),
])
def test_refusals_carry_postgresqls_sqlstate_and_say_what_to_write(engine, sql, state, words):
    got_state, message = refusal(engine, sql)
    assert got_state == state, (got_state, message)
    assert words.lower() in message.lower(), message


def test_session_commands_and_catalog_functions(engine):
    session = engine.session(ANONYMOUS)

    async def go() -> list[SqlResult]:
        return [await session.execute(s) for s in (
            "SET application_name TO 'probe'", "SHOW application_name", "BEGIN",
            "SELECT current_setting('application_name'), version(), current_schema()",
            "COMMIT", "DISCARD ALL", "SHOW application_name")]

    results = asyncio.run(go())
    assert [r.tag for r in results if r.table is None] == ["SET", "BEGIN", "COMMIT",
                                                           "DISCARD ALL"]
    assert results[1].table.to_pylist() == [{"application_name": "probe"}]
    row = results[3].table.to_pylist()[0]
    assert row["current_setting"] == "probe" and row["current_schema"] == "public"
    assert row["version"].startswith("PostgreSQL")
    assert results[6].table.to_pylist() == [{"application_name": ""}]


def test_information_schema_lists_the_tables_and_typed_columns(engine):
    tables = rows(engine, "SELECT table_name FROM information_schema.tables "
                  "WHERE table_schema = 'public' ORDER BY 1")
    assert "metrics" in [t["table_name"] for t in tables]
    assert "revenue_by_country_by_month" in [t["table_name"] for t in tables]
    columns = {r["column_name"]: r["data_type"] for r in rows(
        engine, "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'metrics'")}
    assert columns["metric_time__month"] == "date"
    assert columns["customer__country"] == "text"
    assert columns["average_order_value"] == "double precision"
    comments = rows(engine, "SELECT col_description(c.oid, a.attnum) AS d FROM pg_class c "
                    "JOIN pg_attribute a ON a.attrelid = c.oid WHERE c.relname = 'metrics' "
                    "AND a.attname = 'revenue'")
    assert comments and comments[0]["d"].startswith("Revenue")


def test_dates_come_back_as_dates(engine):
    served = rows(engine, "SELECT metric_time__month FROM metrics WHERE metric_time__month "
                  "BETWEEN '2025-01-01' AND '2025-03-01' GROUP BY 1 ORDER BY 1")
    assert [r["metric_time__month"] for r in served] == [
        dt.date(2025, 1, 1), dt.date(2025, 2, 1), dt.date(2025, 3, 1)]
