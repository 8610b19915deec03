"""Every MCP tool through the `mcp` SDK's client, over stdio (`tally mcp`) and over HTTP (a real
`tally serve` at /mcp): the catalog, numbers against SQL written by hand over raw.* at several
grains, group-bys and filters, errors an agent can correct in one step, and truncation that is
never silent."""

from __future__ import annotations

import csv
import io

import pytest

from tests.support.hand_sql import (
    assert_rows_match,
    dim_filter,
    expected_rows,
    group_columns,
    scalar,
)

TOL = 1e-9  # JSON carries money as a JSON number; CSV keeps every digit


def _served(body: dict) -> list[dict]:
    if body["format"] == "csv":
        rows = list(csv.DictReader(io.StringIO(body["csv"])))
        return rows
    return body["data"]


def _hand(raw, metric_sql: str, group_by: list[str], where: str = "true",
          table: str = "enriched_orders") -> list[dict]:
    cols = group_columns(group_by, "order_date")
    select = f"{cols}, " if cols else ""
    group = f"group by {', '.join(str(i + 1) for i in range(len(group_by)))}" if group_by else ""
    rows = expected_rows(raw, f"select {select}{metric_sql} from {table} where {where} {group}")
    return [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
            for r in rows]


REVENUE = "sum(case when order_status = 'completed' then net_amount end) as revenue"
ORDERS = "count(order_id) as order_count"


def test_the_client_lists_every_tool_resource_and_the_prompt(mcp):
    tools = {t.name for t in mcp.run(lambda c: c.list_tools()).tools}
    assert tools == {
        "list_metrics", "list_saved_queries", "get_dimensions", "get_entities",
        "get_dimension_values", "query_metrics", "get_metrics_compiled_sql", "explain_metric",
        "query_saved_query",
    }
    resources = {str(r.uri) for r in mcp.run(lambda c: c.list_resources()).resources}
    assert "tally://catalog" in resources
    templates = {t.uri_template for t in mcp.run(lambda c: c.list_resource_templates())
                 .resource_templates}
    assert "tally://metrics/{name}" in templates
    prompts = {p.name for p in mcp.run(lambda c: c.list_prompts()).prompts}
    assert prompts == {"answer_business_question"}


def test_catalog_tools(mcp):
    metrics = {m["name"]: m for m in mcp.ok("list_metrics")["metrics"]}
    assert metrics["revenue"]["unit"] == "currency" and metrics["revenue"]["type"] == "simple"
    assert metrics["order_count"]["unit"] == "count"
    assert metrics["gross_margin_pct"]["unit"] == "percentage"
    found = {m["name"] for m in mcp.ok("list_metrics", search="REVENUE")["metrics"]}
    assert "revenue" in found and "order_count" not in found
    assert found < set(metrics)
    dims = {d["name"]: d for d in mcp.ok("get_dimensions", metrics=["revenue"])["dimensions"]}
    assert "customer__country" in dims and "month" in dims["metric_time"]["grains"]
    only = mcp.ok("get_dimensions", metrics=["revenue"], search="country")["dimensions"]
    assert {d["name"] for d in only} == {n for n in dims if "country" in n}
    entities = {e["name"] for e in mcp.ok("get_entities", metrics=["revenue"])["entities"]}
    assert {"customer", "order"} <= entities
    saved = {q["name"]: q for q in mcp.ok("list_saved_queries")["saved_queries"]}
    assert saved["revenue_by_country_by_month"]["metrics"] == ["revenue", "completed_orders"]
    assert set(mcp.ok("list_saved_queries", search="cohort")["saved_queries"][0]) >= {"name"}


@pytest.mark.parametrize("grain", ["month", "quarter", "year"])
def test_revenue_by_grain_and_country_equals_hand_sql(mcp, raw, grain):
    group_by = [f"metric_time__{grain}", "customer__country"]
    body = mcp.ok("query_metrics", metrics=["revenue"], limit=10_000, group_by=[
        {"name": "metric_time", "type": "time_dimension", "grain": grain},
        {"name": "customer__country", "type": "dimension"}])
    assert not body["truncated"] and body["total_rows"] == body["row_count"]
    expected = _hand(raw, REVENUE, group_by)
    assert_rows_match(_served(body), expected, group_by, "revenue", tol=TOL, absent="zero",
                      min_rows=4)
    columns = {c["name"]: c for c in body["columns"]}
    assert columns["revenue"]["unit"] == "currency" and columns["revenue"]["role"] == "metric"
    assert columns[f"metric_time__{grain}"]["type"] == "date"
    assert body["time_range"]["in_data"]["column"] == f"metric_time__{grain}"


def test_a_ratio_metric_by_quarter_and_segment_equals_hand_sql(mcp, raw):
    group_by = ["metric_time__quarter", "customer__customer_segment"]
    body = mcp.ok("query_metrics", metrics=["average_order_value"], limit=10_000, group_by=[
        {"name": "metric_time", "grain": "quarter", "type": "time_dimension"},
        {"name": "customer__customer_segment"}])
    expected = _hand(raw, "sum(net_amount) / count(order_id) as average_order_value",
                     group_by, "order_status = 'completed'")
    assert_rows_match(body["data"], expected, group_by, "average_order_value", tol=TOL,
                      absent="null", min_rows=8)
    assert {c["name"]: c.get("unit") for c in body["columns"]}["average_order_value"] == (
        "currency")


def test_filtered_counts_and_the_echoed_filter(mcp, raw, small_country):
    where = dim_filter("customer__country", small_country)
    group_by = ["metric_time__month", "order__order_status"]
    body = mcp.ok("query_metrics", metrics=["order_count"], where=where, group_by=[
        {"name": "metric_time", "grain": "month", "type": "time_dimension"},
        {"name": "order__order_status"}], start="2024-01-01", end="2024-12-31")
    expected = _hand(raw, ORDERS, group_by, f"customer__country = '{small_country}' and "
                     "order_date between date '2024-01-01' and date '2024-12-31'")
    assert_rows_match(_served(body), expected, group_by, "order_count", absent="zero")
    assert body["filters"] == [{"filter": where, "from": "where"}]
    assert body["time_range"]["start"].startswith("2024-01-01")
    assert body["time_range"]["end"].startswith("2024-12-31")
    assert {c["name"]: c.get("unit") for c in body["columns"]}["order_count"] == "count"


def test_csv_keeps_every_digit(mcp, raw):
    body = mcp.ok("query_metrics", metrics=["revenue"], format="csv",
                  group_by=[{"name": "customer__country"}])
    rows = _served(body)
    expected = _hand(raw, REVENUE, ["customer__country"])
    from decimal import Decimal

    served = [{**r, "revenue": Decimal(r["revenue"])} for r in rows]
    assert_rows_match(served, expected, ["customer__country"], "revenue", min_rows=3)


def test_ndjson_rows_are_the_json_rows_with_every_digit(mcp, raw):
    import json
    from decimal import Decimal

    group_by = [{"name": "customer__country"}]
    nd = mcp.ok("query_metrics", metrics=["revenue"], format="ndjson", group_by=group_by)
    js = mcp.ok("query_metrics", metrics=["revenue"], group_by=group_by)
    assert nd["format"] == "ndjson" and "data" not in nd and nd["ndjson"].endswith("\n")
    rows = [json.loads(line, parse_float=Decimal) for line in nd["ndjson"].splitlines()]
    assert [r["customer__country"] for r in rows] == [r["customer__country"] for r in js["data"]]
    assert [float(r["revenue"]) for r in rows] == [r["revenue"] for r in js["data"]]
    # Exact: decimals against the hand SQL's, not through a float.
    expected = _hand(raw, REVENUE, ["customer__country"])
    assert_rows_match(rows, expected, ["customer__country"], "revenue", min_rows=3)
    assert nd["columns"] == js["columns"] and nd["total_rows"] == js["total_rows"]
    saved = mcp.ok("query_saved_query", name="revenue_by_country_by_month", format="NDJSON",
                   limit=5)
    assert saved["format"] == "ndjson" and len(saved["ndjson"].splitlines()) == 5


def test_the_format_parameter_is_the_registrys_text_formats(mcp):
    from tally.core import formats

    tools = {t.name: t for t in mcp.run(lambda c: c.list_tools()).tools}
    for name in ("query_metrics", "query_saved_query"):
        described = tools[name].input_schema["properties"]["format"]["description"]
        assert all(f.name in described for f in formats.answers() if f.text)
    is_error, body = mcp.call("query_metrics", metrics=["revenue"], format="jsonl")
    assert is_error and body["error"]["code"] == "invalid_request"
    assert "use one of json, csv, ndjson. Did you mean 'ndjson'?" in body["error"]["message"]
    is_error, body = mcp.call("query_metrics", metrics=["revenue"], format="arrow")
    assert is_error and "arrow is not offered as a format here" in body["error"]["message"]


def test_truncation_says_how_many_rows_there_are(mcp, raw):
    days = scalar(raw, "select count(distinct order_date) from enriched_orders "
                       "where order_status = 'completed'")
    body = mcp.ok("query_metrics", metrics=["revenue"], limit=10,
                  group_by=[{"name": "metric_time", "grain": "day", "type": "time_dimension"}],
                  order_by=[{"name": "revenue", "descending": True}])
    assert body["truncated"] is True and body["row_count"] == 10 and len(body["data"]) == 10
    assert body["total_rows"] >= days > 10 and "10 of" in body["note"]
    top = _hand(raw, REVENUE, ["metric_time__day"])
    best = sorted((r["revenue"] for r in top if r["revenue"] is not None), reverse=True)[:10]
    assert [pytest.approx(float(v), rel=TOL) for v in best] == [r["revenue"] for r in
                                                                  body["data"]]
    whole = mcp.ok("query_metrics", metrics=["revenue"], limit=100_000,
                   group_by=[{"name": "metric_time", "grain": "year", "type": "time_dimension"}])
    assert whole["truncated"] is False and whole["row_count"] == whole["total_rows"]


def test_dimension_values_with_truncation(mcp, raw):
    countries = sorted(r["c"] for r in expected_rows(
        raw, "select distinct customer__country as c from enriched_orders"))
    body = mcp.ok("get_dimension_values", dimension="customer__country", metrics=["revenue"])
    assert sorted(body["values"]) == countries and body["truncated"] is False
    cut = mcp.ok("get_dimension_values", dimension="customer__country", metrics=["revenue"],
                 limit=2)
    assert cut["truncated"] is True and cut["row_count"] == 2
    assert cut["total_values"] == len(countries) and set(cut["values"]) <= set(countries)


def test_saved_query_with_a_filter_equals_hand_sql(mcp, raw, small_country):
    where = dim_filter("customer__country", small_country)
    body = mcp.ok("query_saved_query", name="revenue_by_country_by_month", where=where)
    group_by = ["metric_time__month", "customer__country"]
    expected = _hand(raw, REVENUE, group_by, f"customer__country = '{small_country}'")
    assert_rows_match(_served(body), expected, group_by, "revenue", tol=TOL, absent="zero")
    assert {"filter": where, "from": "where"} in body["filters"]


def test_explain_metric_and_compiled_sql(mcp):
    explained = mcp.ok("explain_metric", name="revenue")
    assert explained["type"] == "simple" and explained["unit"] == "currency"
    assert "revenue" in explained["definition"].lower()
    assert any(m["dbt_model"] for m in explained["dbt_models"])
    assert "customer__country" in {d["name"] for d in explained["dimensions"]}
    assert "select" in explained["default_query"]["sql"].lower()
    ratio = mcp.ok("explain_metric", name="gross_margin_pct")
    assert ratio["unit"] == "percentage" and ratio["inputs"]
    sql = mcp.ok("get_metrics_compiled_sql", metrics=["revenue"],
                 group_by=[{"name": "customer__country"}], limit=5)["sql"]
    assert "customer" in sql.lower() and "5" in sql


def test_unknown_names_come_back_with_the_nearest_valid_ones(mcp):
    is_error, body = mcp.call("query_metrics", metrics=["revenu"])
    assert is_error and body["error"]["code"] == "unknown_metric"
    assert body["error"]["suggestions"][0] == "revenue"
    assert "order_count" in body["error"]["valid_metrics"]
    is_error, body = mcp.call("explain_metric", name="ordr_count")
    assert is_error and "order_count" in body["error"]["suggestions"]
    is_error, body = mcp.call("query_metrics", metrics=["revenue"],
                              group_by=[{"name": "customer__contry"}])
    assert is_error and body["error"]["code"] == "unknown_dimension"
    assert "customer__country" in body["error"]["suggestions"]
    assert "customer__country" in body["error"]["valid_dimensions"]
    is_error, body = mcp.call("query_saved_query", name="revenue_by_country")
    assert is_error and "revenue_by_country_by_month" in body["error"]["suggestions"]
    is_error, body = mcp.call("query_metrics", metrics=["revenue"], format="xml")
    assert is_error and body["error"]["code"] == "invalid_request"
    is_error, body = mcp.call("query_metrics", metrics=["revenue"],
                              where="{{ Dimension('customer__country') }} = ")
    assert is_error and body["error"]["code"] == "invalid_filter", body


def test_resources_and_prompt(mcp):
    import json

    catalog = mcp.run(lambda c: c.read_resource("tally://catalog"))
    data = json.loads(catalog.contents[0].text)
    assert "revenue" in {m["name"] for m in data["metrics"]} and data["saved_queries"]
    metric = json.loads(mcp.run(lambda c: c.read_resource("tally://metrics/revenue"))
                        .contents[0].text)
    assert metric["name"] == "revenue" and metric["unit"] == "currency"
    prompt = mcp.run(lambda c: c.get_prompt("answer_business_question",
                                            {"question": "Revenue in France last year?"}))
    text = prompt.messages[0].content.text
    assert "Revenue in France last year?" in text and "get_dimensions" in text


@pytest.fixture(scope="module")
def capped(warehouse):
    """`tally mcp` on a server that shows 10 rows without a limit and returns at most 100."""
    from tests.support.mcp_clients import stdio_session, tally_env

    session = stdio_session(tally_env(warehouse, TALLY_MCP_MAX_ROWS="10", TALLY_MAX_ROWS="100"))
    yield session
    session.close()


def test_no_cap_is_silent(capped, raw):
    months = _hand(raw, REVENUE, ["metric_time__month"])
    body = capped.ok("query_metrics", metrics=["revenue"],
                     group_by=[{"name": "metric_time", "grain": "month"}])
    assert 10 < len(months) <= 100
    assert body["row_count"] == 10 and body["truncated"] is True
    assert body["total_rows"] == len(months)
    served = {r["metric_time__month"]: r["revenue"] for r in body["data"]}
    hand = {r["metric_time__month"]: r["revenue"] for r in months}
    assert list(served) == sorted(hand)[:10]  # the first rows of the answer, in its order
    assert served == {k: pytest.approx(float(hand[k]), rel=TOL) for k in served}
    # More rows than the server returns at all: the first ones, and how many there are at least.
    days = capped.ok("query_metrics", metrics=["revenue"], limit=50,
                     group_by=[{"name": "metric_time", "grain": "day"}])
    assert days["truncated"] is True and days["row_count"] == 50
    assert days["total_rows"] is None and days["total_rows_at_least"] == 101
    assert "more than 100 rows" in days["note"]


def test_arguments_the_sdk_refuses_and_unknown_tools_in_the_one_error_shape(mcp):
    is_error, body = mcp.call("query_metrics", metrics="revenue", limit="many")
    assert is_error and body["error"]["code"] == "invalid_arguments"
    assert "metrics" in body["error"]["message"] and "limit" in body["error"]["message"]
    is_error, body = mcp.call("query_metric", metrics=["revenue"])
    assert is_error and body["error"]["code"] == "unknown_tool"
    assert body["error"]["suggestions"][0] == "query_metrics"
    assert "explain_metric" in body["error"]["valid_tools"]
