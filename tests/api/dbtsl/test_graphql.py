"""The dbt Semantic Layer GraphQL API at /api/graphql, in process: the fields the SDK does not
use (paginated catalog, metricsForDimensions, queryableGranularities, savedQuery, jsonResult,
createSynchronousQuery, dimension values, cancel), pages of 1024 rows, the environment id, and
every error as a GraphQL error with its code; plus the REST form of asynchronous queries."""

from __future__ import annotations

import asyncio
import base64
import io
import json

import pyarrow as pa
import pytest

from tally.core.caller import ANONYMOUS
from tally.core.request import QueryRequest
from tally.errors import Unauthorized
from tests.support.assertions import assert_error

pytestmark = pytest.mark.anyio
ENV = 1


async def sl(client, query: str, **variables):
    r = await client.post("/api/graphql", json={"query": query, "variables": variables})
    assert r.status_code == 200, r.text
    return r.json()


async def poll(client, query_id: str, page: int = 1, fields: str = "status error totalPages"):
    for _ in range(400):
        body = await sl(client, f"""query($q: String!, $p: Int!) {{
            query(environmentId: {ENV}, queryId: $q, pageNum: $p) {{ status {fields} }} }}""",
                        q=query_id, p=page)
        if "errors" in body or body["data"]["query"]["status"] in ("SUCCESSFUL", "FAILED"):
            return body
        await asyncio.sleep(0.02)
    raise AssertionError("the query never finished")


async def create(client, args: str) -> str:
    body = await sl(client, f"mutation {{ createQuery(environmentId: {ENV}, {args}) "
                            "{ queryId } }")
    assert "errors" not in body, body
    return body["data"]["createQuery"]["queryId"]


async def test_paginated_catalog(client, service):
    body = await sl(client, """{
        metricsPaginated(environmentId: 1, pageNum: 2, pageSize: 5) {
            items { name } pageNum pageSize totalItems totalPages }
        search: metricsPaginated(environmentId: "1", search: "REVENUE") { items { name } }
        byGroupBy: metricsPaginated(environmentId: 1, groupBy: [{name: "product__category"}]) {
            items { name } totalItems }
        dimensionsPaginated(environmentId: 1, metrics: [{name: "revenue"}], search: "country")
            { items { name type } totalItems totalPages }
        entitiesPaginated(environmentId: 1, metrics: [{name: "revenue"}]) { totalItems }
        groupBysPaginated(environmentId: 1, metrics: [{name: "revenue"}], pageSize: 100)
            { items { name type } totalItems }
        savedQueriesPaginated(environmentId: 1, pageSize: 1) { items { name } totalPages }
    }""")
    assert "errors" not in body, body
    data = body["data"]
    names = [m.name for m in service.list_metrics(ANONYMOUS)]
    page = data["metricsPaginated"]
    assert [m["name"] for m in page["items"]] == names[5:10]
    assert page["totalItems"] == len(names) and page["totalPages"] == -(-len(names) // 5)
    assert {m["name"] for m in data["search"]["items"]} >= {"revenue", "gross_revenue"}
    assert all("revenue" in m["name"] for m in data["search"]["items"])
    item_metrics = {m["name"] for m in data["byGroupBy"]["items"]}
    assert "item_revenue" in item_metrics and "customers" not in item_metrics
    assert [d["name"] for d in data["dimensionsPaginated"]["items"]] == ["customer__country"]
    group_bys = {g["name"]: g["type"] for g in data["groupBysPaginated"]["items"]}
    assert group_bys["customer"] == "ENTITY" and group_bys["metric_time"] == "TIME"
    assert data["savedQueriesPaginated"]["totalPages"] == len(service.list_saved_queries(ANONYMOUS))


async def test_other_metadata(client):
    body = await sl(client, """{
        metricsForDimensions(environmentId: 1, dimensions: [{name: "cohort__period_number"}])
            { name }
        queryableGranularities(environmentId: 1, metrics: [{name: "revenue"}])
        savedQuery(environmentId: 1, savedQueryName: "cohort_retention") {
            name queryParams { metrics { name } groupBy { name grain timeGranularity } } }
        byName: savedQuery(environmentId: 1, name: "customer_segments") { name }
        metrics(environmentId: 1) { name typeParams { inputMeasures { name } } config { meta } }
    }""")
    assert "errors" not in body, body
    data = body["data"]
    assert "retention_rate" in {m["name"] for m in data["metricsForDimensions"]}
    assert data["queryableGranularities"] == ["DAY", "WEEK", "MONTH", "QUARTER", "YEAR"]
    group_by = data["savedQuery"]["queryParams"]["groupBy"][0]
    assert group_by == {"name": "cohort__cohort_month", "grain": "MONTH",
                        "timeGranularity": "month"}
    assert data["byName"]["name"] == "customer_segments"
    margin = next(m for m in data["metrics"] if m["name"] == "gross_margin")
    assert {i["name"] for i in margin["typeParams"]["inputMeasures"]} == {"item_revenue",
                                                                           "item_cost"}


async def test_environment_info_names_the_engine(client):
    """The dialect is the one the engine's module declares (its spec), here DuckDB's."""
    body = await sl(client, """{ environmentInfo(environmentId: 1) {
        sqlDialect dialect dialectSupportedBySlg hasMetricsDefined } }""")
    assert "errors" not in body, body
    assert body["data"]["environmentInfo"] == {
        "sqlDialect": "DUCKDB", "dialect": "DUCKDB", "dialectSupportedBySlg": True,
        "hasMetricsDefined": True}


async def test_pages_of_1024_rows_and_json_orients(client, service):
    query_id = await create(client, 'metrics: [{name: "order_count"}], groupBy: '
                                    '[{name: "metric_time", grain: DAY}]')
    done = await poll(client, query_id, fields="status totalPages sql")
    result = done["data"]["query"]
    total = service.query(QueryRequest.create(metrics=["order_count"],
                                              group_by=["metric_time__day"]), ANONYMOUS).table
    assert result["status"] == "SUCCESSFUL" and "select" in result["sql"].lower()
    assert result["totalPages"] == -(-total.num_rows // 1024) > 1
    tables = []
    for page in range(1, result["totalPages"] + 1):
        body = await poll(client, query_id, page, fields="arrowResult")
        data = base64.b64decode(body["data"]["query"]["arrowResult"])
        tables.append(pa.ipc.open_stream(io.BytesIO(data)).read_all())
    assert all(t.num_rows == 1024 for t in tables[:-1])
    assert pa.concat_tables(tables).equals(total)
    body = await poll(client, query_id, 1, fields="""
        records: jsonResult(orient: RECORDS, encoded: false)
        split: jsonResult(orient: SPLIT, encoded: false) table: jsonResult""")
    records = body["data"]["query"]["records"]
    assert records[0] == {"metric_time__day": total.column(0)[0].as_py().isoformat(),
                          "order_count": total.column(1)[0].as_py()}
    assert body["data"]["query"]["split"]["columns"] == ["metric_time__day", "order_count"]
    table = json.loads(base64.b64decode(body["data"]["query"]["table"]))
    assert table["schema"]["fields"][1] == {"name": "metric_time__day", "type": "datetime"}
    assert len(table["data"]) == 1024
    out_of_range = await poll(client, query_id, result["totalPages"] + 1)
    assert out_of_range["errors"][0]["extensions"]["code"] == "invalid_request"
    assert "does not exist" in out_of_range["errors"][0]["message"]


async def test_synchronous_query_aliases_and_dimension_values(client, service):
    body = await sl(client, """mutation {
        createSynchronousQuery(environmentId: 1, metrics: [{name: "order_count", alias: "n"}])
            { status arrowResult totalPages } }""")
    result = body["data"]["createSynchronousQuery"]
    assert result["status"] == "SUCCESSFUL" and result["totalPages"] == 1
    table = pa.ipc.open_stream(io.BytesIO(base64.b64decode(result["arrowResult"]))).read_all()
    assert table.column_names == ["n"]
    body = await sl(client, """mutation {
        createDimensionValuesQuery(environmentId: 1, groupBy: [{name: "customer__country"}],
                                   metrics: [{name: "revenue"}]) { queryId }
        compileDimensionValuesSql(environmentId: 1, groupBy: [{name: "customer__country"}])
            { sql } }""")
    assert "customer" in body["data"]["compileDimensionValuesSql"]["sql"].lower()
    done = await poll(client, body["data"]["createDimensionValuesQuery"]["queryId"], 1,
                      fields="status jsonResult(orient: VALUES, encoded: false)")
    values = [row[0] for row in done["data"]["query"]["jsonResult"]]
    assert "US" in values and len(values) == len(set(values))


async def test_errors_have_codes_and_a_failed_query_says_why(client):
    failed = await poll(client, await create(client, 'metrics: [{name: "revenu"}]'),
                        fields="status error")
    assert failed["data"]["query"] == {
        "status": "FAILED",
        "error": "unknown_metric: Unknown metric 'revenu'. Did you mean 'revenue'?"}
    bad_grain = await poll(client, await create(
        client, 'metrics: [{name: "revenue"}], groupBy: [{name: "metric_time", '
                'timeGranularity: "fortnight"}]'), fields="status error")
    assert bad_grain["data"]["query"]["error"].startswith("invalid_grain:")
    unknown = await poll(client, "deadbeef")
    assert unknown["errors"][0]["extensions"]["code"] == "unknown_query"
    shape = await sl(client, 'mutation { createQuery(environmentId: 1, orderBy: '
                             '[{descending: true}], metrics: [{name: "revenue"}]) { queryId } }')
    assert shape["errors"][0]["extensions"]["code"] == "invalid_request"
    compile_error = await sl(client, 'mutation { compileSql(environmentId: 1, metrics: '
                                     '[{name: "revenu"}]) { sql } }')
    assert compile_error["errors"][0]["extensions"] == {
        "code": "unknown_metric", "status": 400, "suggestion": "revenue"}
    wrong_type = await sl(client, '{ metrics(environmentId: "one") { name } }')
    assert "errors" in wrong_type and "Traceback" not in json.dumps(wrong_type)


async def test_cancel_a_running_query(make_app):
    import httpx

    app = make_app()
    svc = app.state.service
    gate = asyncio.Event()

    async def blocked(request, caller=None, finish=None, *, read_cache=True):
        await gate.wait()

    svc.query_async = blocked  # a query that only ends when cancelled
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://tally.test") as client:
        query_id = await create(client, 'metrics: [{name: "revenue"}]')
        body = await sl(client, f'mutation {{ cancelQuery(environmentId: 1, queryId: '
                                f'"{query_id}") {{ queryId }} }}')
        assert body["data"]["cancelQuery"]["queryId"] == query_id
        done = await poll(client, query_id, fields="status error")
    assert done["data"]["query"]["status"] == "FAILED"
    assert done["data"]["query"]["error"].startswith("query_cancelled:")


async def test_expired_query_id(make_app):
    import httpx

    app = make_app(job_retention_seconds=0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://tally.test") as client:
        query_id = await create(client, 'metrics: [{name: "order_count"}]')
        job = app.state.service.jobs._jobs[query_id]
        await job.task
        expired = await poll(client, query_id)
    assert expired["errors"][0]["extensions"]["code"] == "query_expired"
    assert "has expired" in expired["errors"][0]["message"]


async def test_environment_id_and_authentication(make_app):
    import httpx

    app = make_app(dbt_environment_id=42)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://tally.test") as client:
        wrong = await sl(client, "{ metrics(environmentId: 1) { name } }")
        assert wrong["errors"][0]["extensions"]["code"] == "unknown_environment"
        right = await sl(client, '{ metrics(environmentId: "42") { name } }')
        assert "errors" not in right

        def refuse(token, *, transport, request_id="-"):
            assert transport == "dbtsl-graphql" and token == "bad"
            raise Unauthorized("The token has expired.")

        app.state.service.authenticate = refuse
        r = await client.post("/api/graphql", headers={"Authorization": "BEARER bad"},
                              json={"query": "{ metrics(environmentId: 42) { name } }"})
    error = r.json()["errors"][0]
    assert error["message"] == "User is not authorized"  # what the SDK maps to AuthError
    assert error["extensions"]["code"] == "unauthorized"


async def test_rest_asynchronous_queries(client, service):
    r = await client.post("/api/v1/queries", json={"metrics": ["order_count"],
                                                    "group_by": ["metric_time__year"]})
    assert r.status_code == 202
    location = r.headers["location"]
    assert location == f"/api/v1/queries/{r.json()['id']}"
    for _ in range(400):
        status = (await client.get(location)).json()
        if status["status"] == "SUCCESSFUL":
            break
        await asyncio.sleep(0.02)
    assert status["row_count"] == 4 and status["sql"]
    csv = await client.get(f"{location}/result", headers={"accept": "text/csv"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert "metric_time__year" in csv.text.splitlines()[0] and len(csv.text.splitlines()) == 5
    body = (await client.get(f"{location}/result")).json()
    assert body["row_count"] == 4
    assert_error(await client.get("/api/v1/queries/nope"), 404, "unknown_query")
    failed = await client.post("/api/v1/queries", json={"metrics": ["revenu"]})
    for _ in range(400):
        if (await client.get(failed.headers["location"])).json()["status"] == "FAILED":
            break
        await asyncio.sleep(0.02)
    assert_error(await client.get(f"{failed.headers['location']}/result"), 400,
                 "unknown_metric", "Did you mean 'revenue'?")
    cancelled = await client.delete(location)  # already finished: stays SUCCESSFUL
    assert cancelled.json()["status"] == "SUCCESSFUL"
