"""The published dbt Semantic Layer SDK, sync and async clients, unmodified, against a real
`tally serve --flight-port` (GraphQL at /api/graphql for metadata and compile_sql, Flight SQL
for query and dimension_values, and the GraphQL API's own polled query): every method works,
and every number equals SQL written by hand over raw.*."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest

from tally.core.caller import ANONYMOUS
from tests.support.hand_sql import assert_rows_match, expected_rows, scalar

COMPLETED = "order_status = 'completed'"
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module", params=["sync", "async"])
def sdk(request, sl_server, sdk_python, tmp_path_factory):
    """(results by call name, out dir) of one run of every SDK method."""
    out = tmp_path_factory.mktemp(f"sdk_{request.param}")
    env = {**os.environ,
           "DBT_SL_GRAPHQL_URL_FORMAT": f"http://{{server_host}}:{sl_server.http_port}/api/graphql",
           "DBT_SL_ADBC_URL_FORMAT": f"grpc://{{server_host}}:{sl_server.flight_port}"}
    run = subprocess.run(
        [str(sdk_python), str(HERE / "sdk_calls.py"), str(out), request.param, sl_server.host],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return json.loads((out / "results.json").read_text()), out


def table(sdk, name: str) -> pa.Table:
    results, out = sdk
    outcome = results[name]
    assert "table" in outcome, f"{name}: {outcome}"
    with pa.OSFile(str(out / outcome["table"]), "rb") as source:
        return pa.ipc.open_stream(source).read_all()


def value(sdk, name: str):
    outcome = sdk[0][name]
    assert "value" in outcome, f"{name}: {outcome}"
    return outcome["value"]


def error(sdk, name: str) -> dict:
    outcome = sdk[0][name]
    assert "error" in outcome, f"{name} should have failed: {outcome}"
    assert "Traceback" not in outcome["message"], outcome["message"]
    return outcome


# Metadata ------------------------------------------------------------------------------


def test_metrics_with_their_dimensions_measures_and_entities(sdk, service):
    metrics = {m["name"]: m for m in value(sdk, "metrics")}
    assert set(metrics) == {m.name for m in service.list_metrics(ANONYMOUS)}
    revenue = metrics["revenue"]
    assert revenue["type"] == "SIMPLE" and revenue["label"]
    assert revenue["queryable_time_granularities"][:5] == ["day", "week", "month", "quarter",
                                                            "year"]
    assert "customer__country" in {d["name"] for d in revenue["dimensions"]}
    assert [m["name"] for m in revenue["measures"]] == ["revenue"]
    assert {"customer", "order"} <= {e["name"] for e in revenue["entities"]}
    assert metrics["revenue_growth_mom"]["requires_metric_time"] is True


def test_dimensions_entities_measures(sdk):
    dims = {d["name"]: d for d in value(sdk, "dimensions")}
    assert dims["metric_time"]["type"] == "TIME"
    assert dims["metric_time"]["queryable_time_granularities"][:5] == [
        "day", "week", "month", "quarter", "year"]
    # The deprecated enum list (the SDK's TimeGranularity enum garbles its order when it
    # serialises a model back to a dict, so compared as a set).
    assert set(dims["metric_time"]["queryable_granularities"]) == {
        "DAY", "WEEK", "MONTH", "QUARTER", "YEAR"}
    assert dims["customer__country"]["type"] == "CATEGORICAL"
    assert {e["name"] for e in value(sdk, "entities")} >= {"customer", "order"}
    measures = {m["name"]: m for m in value(sdk, "measures")}
    assert set(measures) == {"item_revenue", "item_cost"}
    assert measures["item_revenue"]["agg"] == "SUM"


def test_saved_queries_and_environment(sdk):
    saved = {q["name"]: q for q in value(sdk, "saved_queries")}
    params = saved["customer_segments"]["query_params"]
    assert [m["name"] for m in params["metrics"]] == ["customers"]
    assert [g["name"] for g in params["group_by"]] == ["customer__customer_segment",
                                                       "customer__customer_status"]
    assert value(sdk, "environment_info")["dialect"] == "DUCKDB"


def test_compile_sql(sdk):
    sql = value(sdk, "compile_sql")
    assert "select" in sql.lower() and "limit 5" in sql.lower()
    assert "customer_segment" in value(sdk, "compile_sql_saved").lower()


# Numbers -------------------------------------------------------------------------------


def test_query_over_adbc_equals_hand_sql(sdk, raw):
    served = table(sdk, "query_revenue_by_month").to_pylist()
    expected = expected_rows(raw, f"""
        select cast(date_trunc('month', order_date) as date) as metric_time__month,
               sum(net_amount) filter (where {COMPLETED}) as revenue
        from enriched_orders group by all""")
    assert_rows_match(served, expected, ["metric_time__month"], "revenue", absent="zero",
                      min_rows=24)
    assert [r["metric_time__month"] for r in served] == sorted(r["metric_time__month"]
                                                               for r in served)


def test_where_order_by_and_limit(sdk, raw):
    served = table(sdk, "query_filtered_ordered").to_pylist()
    expected = expected_rows(raw, f"""
        select customer__country, sum(net_amount) filter (where {COMPLETED}) as revenue,
               count(*) as order_count
        from enriched_orders where customer__customer_segment = 'High Value'
        group by all order by revenue desc limit 3""")
    assert served == expected


def test_group_by_and_order_by_objects(sdk, raw):
    served = table(sdk, "query_grain_objects").to_pylist()
    expected = expected_rows(raw, """
        select cast(date_trunc('quarter', order_date) as date) as metric_time__quarter,
               count(*) as order_count
        from enriched_orders group by all order by 1 desc limit 4""")
    assert served == expected


@pytest.mark.parametrize("name", ["query_saved", "gql_query_saved"])
def test_saved_query(sdk, raw, name):
    served = table(sdk, name).to_pylist()
    keys = ["customer__customer_segment", "customer__customer_status"]
    expected = expected_rows(raw, """
        select customer__customer_segment, customer__customer_status, count(*) as customers
        from customer_dims group by all""")
    assert_rows_match(served, expected, keys, "customers", min_rows=10)


def test_dimension_values(sdk, raw):
    served = table(sdk, "dimension_values")
    assert served.column_names == ["customer__country"]
    expected = expected_rows(raw, "select distinct customer__country from enriched_orders")
    assert sorted(served.column(0).to_pylist()) == sorted(
        r["customer__country"] for r in expected)


def test_graphql_query_polled_over_pages(sdk, raw):
    served = table(sdk, "gql_query_pages")
    assert served.num_rows > 1024  # more than one page of 1024 rows, concatenated by the SDK
    expected = expected_rows(raw, f"""
        select order_date as metric_time__day, customer__country,
               sum(net_amount) filter (where {COMPLETED}) as revenue
        from enriched_orders group by all""")
    keys = ["metric_time__day", "customer__country"]
    assert_rows_match(served.to_pylist(), expected, keys, "revenue", absent="zero",
                      min_rows=1000)


# Errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["query_unknown_metric", "gql_unknown_metric"])
def test_unknown_metric_says_did_you_mean(sdk, name):
    failed = error(sdk, name)
    assert failed["error"] == "QueryFailedError"
    assert "Unknown metric 'revenu'" in failed["message"]
    assert "Did you mean 'revenue'?" in failed["message"]


@pytest.mark.parametrize("name", ["query_bad_grain", "gql_bad_grain"])
def test_bad_grain(sdk, name):
    failed = error(sdk, name)
    assert failed["error"] == "QueryFailedError"
    assert "fortnight" in failed["message"] and "month" in failed["message"]


def test_unknown_query_ids(sdk):
    assert "No query with id" in error(sdk, "gql_unknown_query_id")["message"]
    assert "No query with id" in error(sdk, "gql_cancel_unknown")["message"]


def test_the_server_keeps_serving(sdk, raw, sl_server):
    served = table(sdk, "after_errors").to_pylist()
    assert served == [{"order_count": scalar(raw, "select count(*) from enriched_orders")}]
    assert sl_server.alive()
