"""Apache Superset 6.1 over tally's PostgreSQL wire endpoint, as an analyst sets it up: a database
registered with a tally API key as its password (psycopg2, Superset's postgres driver), its
schemas, tables and columns introspected, a dataset on table `metrics`, revenue by month for one
country through Superset's chart data API (a month time grain, so DATE_TRUNC; and the
metric_time__month column) equal to SQL written by hand over raw.*, a saved chart whose data and
whose drawing in headless Chromium (Superset's own explore page) show the same numbers, and its
screenshot written to bench/screenshots/superset_chart.png."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.bi.superset import ADMIN, Superset
from tests.support.hand_sql import expected_rows
from tests.support.paths import ROOT

COUNTRY = "DE"
REVENUE = {"expressionType": "SQL", "sqlExpression": "SUM(revenue)", "label": "revenue"}
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT = ROOT / "bench" / "screenshots" / "superset_chart.png"


def hand_revenue_by_month(raw, country: str) -> dict[dt.date, float]:
    """Revenue (net amount of completed orders, docs/data.md) by month of one country, by hand."""
    rows = expected_rows(raw, f"""
        select cast(date_trunc('month', order_date) as date) as month, sum(net_amount) as revenue
        from enriched_orders
        where order_status = 'completed' and customer__country = '{country}'
        group by 1""")
    assert rows, f"no completed orders in {country}"
    return {r["month"]: float(r["revenue"]) for r in rows}


def _day(value: Any) -> dt.date:
    """A date as Superset's JSON carries it: epoch milliseconds (pandas timestamps) or text."""
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC).date()
    return dt.date.fromisoformat(str(value)[:10])


def by_month(result: dict[str, Any], column: str) -> dict[dt.date, float]:
    """Revenue by month of a chart data result (a month of null revenue left out)."""
    assert result.get("status", "success") == "success", result
    months = [_day(row[column]) for row in result["data"]]
    assert len(set(months)) == len(months), f"a month twice: {months}"
    return {month: float(Decimal(str(row["revenue"])))
            for month, row in zip(months, result["data"], strict=True)
            if row["revenue"] is not None}


def assert_months_equal(served: dict[dt.date, float], expected: dict[dt.date, float],
                        context: str) -> None:
    """The same revenue in every month; otherwise a message naming each difference. A month
    with orders but none completed has no revenue: absent from the hand SQL, 0 from tally (its
    revenue measure sums net amounts of completed orders, 0 for the others), both zero here."""
    wrong = {m: (served.get(m), expected.get(m)) for m in sorted(set(served) | set(expected))
             if served.get(m, 0.0) != pytest.approx(expected.get(m, 0.0), rel=1e-9)}
    assert not wrong, (f"{len(wrong)} of {len(expected)} months differ (month: served, hand "
                       f"SQL): {wrong}\n{context}")


def x_axis(kind: str) -> tuple[dict[str, Any], str]:
    """The chart's x axis and the column of the result that holds it."""
    if kind == "time_grain":  # metric_time at a month grain: Superset writes DATE_TRUNC
        return {"timeGrain": "P1M", "columnType": "BASE_AXIS", "sqlExpression": "metric_time",
                "label": "metric_time", "expressionType": "SQL"}, "metric_time"
    return {"columnType": "BASE_AXIS", "sqlExpression": "metric_time__month",
            "label": "metric_time__month", "expressionType": "SQL"}, "metric_time__month"


def query_context(dataset: int, kind: str = "time_grain") -> dict[str, Any]:
    """What Superset's bar chart sends to /api/v1/chart/data: revenue by month, one country."""
    column, _ = x_axis(kind)
    return {
        "datasource": {"id": dataset, "type": "table"},
        "force": True,
        "form_data": form_data(dataset),
        "queries": [{"columns": [column], "metrics": [REVENUE],
                     "filters": [{"col": "customer__country", "op": "==", "val": COUNTRY}],
                     "orderby": [[REVENUE, False]], "row_limit": 10000,
                     "time_range": "No filter"}],
        "result_format": "json",
        "result_type": "full",
    }


def form_data(dataset: int) -> dict[str, Any]:
    """The saved chart's settings (its explore page's controls)."""
    return {
        "datasource": f"{dataset}__table", "viz_type": "echarts_timeseries_bar",
        "x_axis": "metric_time", "time_grain_sqla": "P1M", "metrics": [REVENUE], "groupby": [],
        "adhoc_filters": [{"clause": "WHERE", "expressionType": "SIMPLE",
                           "subject": "customer__country", "operator": "==",
                           "comparator": COUNTRY}],
        "row_limit": 10000, "time_range": "No filter", "x_axis_sort_asc": True,
        "show_legend": True, "y_axis_format": "SMART_NUMBER", "x_axis_time_format": "%Y-%m",
    }  # fmt: skip


@pytest.fixture(scope="module")
def database(superset: Superset, tally_pg) -> int:
    return superset.add_database("tally", tally_pg.uri())


@pytest.fixture(scope="module")
def dataset(superset: Superset, database: int) -> int:
    return superset.add_dataset(database, "public", "metrics")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing: `make browser` installs it (make test-bi does)")
        pytest.skip("no chromium: `make browser` installs Debian's package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def test_connection_needs_a_tally_api_key(superset: Superset, tally_pg):
    def check(password: str):
        return superset.api("POST", "/api/v1/database/test_connection/", json={
            "database_name": "tally", "sqlalchemy_uri": tally_pg.uri(password)})

    refused = check("tk_not-a-key")  # psycopg2's error, as PostgreSQL's own refusal reads
    assert refused.status_code == 400, refused.text
    assert "password authentication failed" in refused.text, refused.text
    accepted = check(tally_pg.api_key)
    assert accepted.status_code == 200, f"{accepted.text}\n{superset.log_tail()}"


def test_introspection_finds_the_metrics_table(superset: Superset, database: int):
    schemas = superset.ok("GET", f"/api/v1/database/{database}/schemas/")["result"]
    assert "public" in schemas
    tables = superset.ok("GET", f"/api/v1/database/{database}/tables/",
                         params={"q": "(schema_name:public)"})["result"]  # fmt: skip
    assert "metrics" in {t["value"] for t in tables}


def test_dataset_columns_are_metrics_and_dimensions(superset: Superset, dataset: int):
    columns = {c["column_name"]: c
               for c in superset.ok("GET", f"/api/v1/dataset/{dataset}")["result"]["columns"]}
    assert {"revenue", "order_count", "metric_time", "metric_time__month",
            "customer__country"} <= set(columns), sorted(columns)  # fmt: skip
    assert columns["metric_time"]["is_dttm"], columns["metric_time"]  # a time grain applies


@pytest.mark.parametrize("kind", ["time_grain", "month_column"])
def test_revenue_by_month_equals_hand_sql(superset: Superset, dataset: int, raw, kind):
    result = superset.ok("POST", "/api/v1/chart/data", json=query_context(dataset, kind))
    served = by_month(result["result"][0], x_axis(kind)[1])
    assert_months_equal(served, hand_revenue_by_month(raw, COUNTRY), result["result"][0]["query"])


def test_saved_chart_is_drawn_with_the_same_numbers(superset: Superset, dataset: int, raw,
                                                    browser):
    expected = hand_revenue_by_month(raw, COUNTRY)
    chart = superset.ok("POST", "/api/v1/chart/", json={
        "slice_name": f"Revenue by month, {COUNTRY} (tally)",
        "viz_type": "echarts_timeseries_bar", "datasource_id": dataset,
        "datasource_type": "table", "params": json.dumps(form_data(dataset)),
        "query_context": json.dumps(query_context(dataset))})["id"]  # fmt: skip
    saved = superset.ok("GET", f"/api/v1/chart/{chart}/data/",
                        params={"format": "json", "type": "full", "force": "true"})  # fmt: skip
    assert_months_equal(by_month(saved["result"][0], "metric_time"), expected,
                        saved["result"][0]["query"])

    page = browser.new_page(viewport={"width": 1400, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{superset.url}/login/")
        page.fill("input#username", ADMIN[0])
        page.fill("input#password", ADMIN[1])
        page.click("button[type=submit]")
        page.wait_for_url(lambda url: "/login" not in url, timeout=60_000)
        # The explore page asks for the chart's data itself, then draws it (ECharts: a canvas).
        with page.expect_response(lambda r: "/api/v1/chart/data" in r.url
                                  and r.request.method == "POST", timeout=120_000) as answer:
            page.goto(f"{superset.url}/explore/?slice_id={chart}")
        drawn = answer.value.json()
        assert answer.value.ok, drawn
        page.wait_for_selector("canvas", timeout=60_000)
        page.wait_for_timeout(1000)  # the bars' entry animation
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))
    finally:
        page.close()
    print(f"\nSuperset chart screenshot: {SCREENSHOT.relative_to(ROOT)}")
    assert_months_equal(by_month(drawn["result"][0], "metric_time"), expected,
                        drawn["result"][0].get("query", ""))
    assert not errors, errors
