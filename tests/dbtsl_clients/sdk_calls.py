"""Every method of the published dbt Semantic Layer SDK (`dbt-sl-sdk`), unmodified, against a
tally server. Run by the SDK's own virtualenv (`make sdk-venv`: its graphql-core conflicts with
tally's), never imported by the tests:

    .venv-sdk/bin/python sdk_calls.py OUT_DIR sync|async HOST

with DBT_SL_GRAPHQL_URL_FORMAT and DBT_SL_ADBC_URL_FORMAT pointing at tally. Each call's
outcome goes to OUT_DIR/results.json (tables to OUT_DIR/<name>.arrow); the tests compare them
with SQL written by hand. A failing call is recorded, not raised, so every call runs."""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
import traceback
from pathlib import Path

import pyarrow as pa
from dbtsl import OrderByGroupBy, OrderByMetric, SemanticLayerClient
from dbtsl.api.shared.query_params import GroupByParam, GroupByType
from dbtsl.asyncio import AsyncSemanticLayerClient

OUT = Path(sys.argv[1])
MODE = sys.argv[2]
HOST = sys.argv[3]
RESULTS: dict[str, object] = {}


def _plain(value: object) -> object:
    """A model as JSON-able data (enums as their values)."""
    if hasattr(value, "to_dict"):
        return _plain(value.to_dict())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return getattr(value, "value", value)


async def record(name: str, call) -> None:
    try:
        value = call()
        if inspect.isawaitable(value):
            value = await value
    except Exception as e:
        RESULTS[name] = {"error": type(e).__name__, "message": str(e),
                         "trace": traceback.format_exc()[-2000:]}
        return
    if isinstance(value, pa.Table):
        with pa.OSFile(str(OUT / f"{name}.arrow"), "wb") as sink, \
                pa.ipc.new_stream(sink, value.schema) as writer:
            writer.write_table(value)
        RESULTS[name] = {"table": f"{name}.arrow", "rows": value.num_rows}
    else:
        RESULTS[name] = {"value": _plain(value)}


async def calls(client, gql) -> None:
    """The same calls for the sync and the async client (async ones are awaited)."""
    await record("metrics", lambda: client.metrics())
    await record("dimensions", lambda: client.dimensions(metrics=["revenue", "order_count"]))
    await record("measures", lambda: client.measures(metrics=["gross_margin"]))
    await record("entities", lambda: client.entities(metrics=["revenue"]))
    await record("saved_queries", lambda: client.saved_queries())
    await record("environment_info", lambda: client.environment_info())
    await record("compile_sql", lambda: client.compile_sql(
        metrics=["revenue"], group_by=["metric_time__month"], limit=5))
    await record("compile_sql_saved", lambda: client.compile_sql(saved_query="customer_segments"))
    # query goes over ADBC (Flight SQL) in the SDK's default client.
    await record("query_revenue_by_month", lambda: client.query(
        metrics=["revenue"], group_by=["metric_time__month"], order_by=["metric_time__month"]))
    await record("query_filtered_ordered", lambda: client.query(
        metrics=["revenue", "order_count"], group_by=["customer__country"],
        where=["{{ Dimension('customer__customer_segment') }} = 'High Value'"],
        order_by=[OrderByMetric(name="revenue", descending=True)], limit=3))
    await record("query_grain_objects", lambda: client.query(
        metrics=["order_count"],
        group_by=[GroupByParam(name="metric_time", type=GroupByType.TIME_DIMENSION,
                               grain="quarter")],
        order_by=[OrderByGroupBy(name="metric_time", grain="quarter", descending=True)],
        limit=4))
    await record("query_saved", lambda: client.query(saved_query="customer_segments"))
    await record("dimension_values", lambda: client.dimension_values(
        metrics=["revenue"], group_by="customer__country"))
    await record("query_unknown_metric", lambda: client.query(metrics=["revenu"]))
    await record("query_bad_grain", lambda: client.query(
        metrics=["revenue"], group_by=["metric_time__fortnight"]))
    # The GraphQL API's own query: createQuery, then polling query(queryId, pageNum).
    await record("gql_query_pages", lambda: gql.query(
        metrics=["revenue"], group_by=["metric_time__day", "customer__country"],
        order_by=["metric_time__day", "customer__country"]))
    await record("gql_query_saved", lambda: gql.query(saved_query="customer_segments"))
    await record("gql_unknown_metric", lambda: gql.query(metrics=["revenu"]))
    await record("gql_bad_grain", lambda: gql.query(
        metrics=["revenue"], group_by=["metric_time__fortnight"]))
    await record("gql_unknown_query_id", lambda: gql.get_query_result(
        query_id="0123456789abcdef", page_num=1))
    await record("gql_cancel_unknown", lambda: gql.cancel_query(query_id="feedface"))
    await record("after_errors", lambda: client.query(metrics=["order_count"]))


async def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    if MODE == "sync":
        client = SemanticLayerClient(environment_id=1, auth_token="test-token", host=HOST)
        with client.session():
            await calls(client, client._gql)
    else:
        client = AsyncSemanticLayerClient(environment_id=1, auth_token="test-token", host=HOST)
        async with client.session():
            await calls(client, client._gql)
    (OUT / "results.json").write_text(json.dumps(RESULTS, indent=1, default=str))


if __name__ == "__main__":
    asyncio.run(main())
