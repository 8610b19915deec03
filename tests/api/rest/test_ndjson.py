"""NDJSON, added as one entry of tally/core/formats.py, on every REST path that answers in a
format: POST /api/v1/query and saved queries (Accept), dimension values, POST /api/v1/exports
(`"format": "ndjson"`, streamed past the row limit), GET /api/v1/queries/{id}/result. Each line
is the row as JSON's `data` has it (decimals exact, dates ISO); the numbers are checked against
the JSON answer and against SQL written by hand over raw.*. Also: the registry is the only
source of what the API offers (its OpenAPI document, its 406), and a format added to the table,
and nowhere else, is served (a toy TSV entry, in a process of its own)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from decimal import Decimal

import pytest

from tally.core import formats
from tests.support.assertions import assert_error
from tests.support.clients import SyncASGIClient
from tests.support.hand_sql import expected_rows, group_columns
from tests.support.mcp_clients import tally_env

pytestmark = pytest.mark.anyio

NDJSON = {"accept": "application/x-ndjson"}
Q = {"metrics": ["revenue", "order_count"], "group_by": ["metric_time__year"]}
NOWHERE = ["{{ Dimension('customer__country') }} = 'XX'"]  # no customer lives there


def lines(body: bytes) -> list[dict]:
    """NDJSON read strictly: every line (the last included) ends with a newline."""
    text = body.decode()
    assert text == "" or text.endswith("\n"), text[-80:]
    return [json.loads(line, parse_float=Decimal) for line in text.split("\n")[:-1]]


def hand(raw, group_by: list[str], where: str = "true") -> list[dict]:
    """revenue and order_count by `group_by` over raw.*, keys as the JSON rows spell them."""
    rows = expected_rows(raw, f"select {group_columns(group_by, 'order_date')}, "
                              "sum(net_amount) filter (where order_status = 'completed') "
                              "as revenue, count(*) as order_count from enriched_orders "
                              f"where {where} group by all order by all")
    return [{k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in r.items()}
            for r in rows]


async def test_query_in_ndjson_is_the_json_rows_and_the_hand_numbers(client, raw):
    js = await client.post("/api/v1/query", json=Q)
    nd = await client.post("/api/v1/query", json=Q, headers=NDJSON)
    assert nd.status_code == 200 and nd.headers["content-type"] == "application/x-ndjson"
    rows = lines(nd.content)
    assert rows == json.loads(js.text, parse_float=Decimal)["data"]
    # The same text as JSON's rows, one per line, no envelope.
    assert nd.text.splitlines()[0] in js.text and not nd.text.startswith('{"columns"')
    assert isinstance(rows[0]["revenue"], Decimal) and rows[0]["metric_time__year"] == "2022-01-01"
    assert rows == hand(raw, Q["group_by"])
    # Cache headers as for every format; another representation, another ETag.
    assert nd.headers["x-tally-cache"] == "hit" and nd.headers["vary"] == "Accept"
    assert nd.headers["etag"] != js.headers["etag"] and nd.headers["etag"].endswith('-ndjson"')
    again = await client.post("/api/v1/query", json=Q,
                              headers={**NDJSON, "if-none-match": nd.headers["etag"]})
    assert again.status_code == 304


async def test_saved_query_and_dimension_values_in_ndjson(client):
    path = "/api/v1/saved-queries/revenue_by_country_by_month/query"
    body = {"limit": 30}
    js = await client.post(path, json=body)
    nd = await client.post(path, json=body, headers=NDJSON)
    assert nd.status_code == 200, nd.text
    assert lines(nd.content) == json.loads(js.text, parse_float=Decimal)["data"]
    values = "/api/v1/dimension-values?dimension=customer__country"
    js_values = (await client.get(values)).json()
    nd_values = await client.get(values, headers=NDJSON)
    assert nd_values.headers["content-type"] == "application/x-ndjson"
    assert lines(nd_values.content) == [{js_values["column"]: v} for v in js_values["values"]]


async def test_no_rows_is_an_empty_body(client):
    r = await client.post("/api/v1/query", json={**Q, "where": NOWHERE}, headers=NDJSON)
    assert r.status_code == 200 and r.content == b""
    assert (await client.post("/api/v1/query", json={**Q, "where": NOWHERE})).json()["data"] == []


async def test_the_asynchronous_result_in_ndjson(client):
    r = await client.post("/api/v1/queries", json=Q)
    assert r.status_code == 202
    location = r.headers["location"]
    for _ in range(400):
        if (await client.get(location)).json()["status"] == "SUCCESSFUL":
            break
        await asyncio.sleep(0.02)
    nd = await client.get(f"{location}/result", headers=NDJSON)
    assert nd.status_code == 200 and nd.headers["content-type"] == "application/x-ndjson"
    js = await client.get(f"{location}/result")
    assert lines(nd.content) == json.loads(js.text, parse_float=Decimal)["data"]
    assert len(lines(nd.content)) == 4


async def test_an_unknown_media_type_is_a_406_naming_the_offered_ones(client):
    err = assert_error(
        await client.post("/api/v1/query", json=Q, headers={"accept": "application/ndjson"}),
        406, "not_acceptable", "application/x-ndjson", "Did you mean 'application/x-ndjson'?")
    assert err["details"]["supported"] == [f.media_type for f in formats.answers()]
    err = assert_error(
        await client.post("/api/v1/query", json=Q, headers={"accept": "application/jsonl"}),
        406, "not_acceptable", "Did you mean 'application/x-ndjson'?")
    # Parquet is a file format: exports only, as before.
    assert_error(await client.post("/api/v1/query", json=Q,
                                   headers={"accept": "application/vnd.apache.parquet"}),
                 406, "not_acceptable", "application/x-ndjson")


# Exports ------------------------------------------------------------------------------------

EXPORT = {"metrics": ["revenue", "order_count"],
          "group_by": ["metric_time__day", "customer__country"]}


@pytest.fixture(scope="module")
def limited(session_services):
    return SyncASGIClient(session_services.app(max_rows=50))


def test_an_ndjson_export_streams_every_row_past_the_limit(limited, raw):
    assert limited.post("/api/v1/query", json=EXPORT).status_code == 400  # over the limit
    r = limited.post("/api/v1/exports", json={**EXPORT, "format": "ndjson"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-ndjson"
    assert r.headers["content-disposition"] == 'attachment; filename="export.ndjson"'
    rows = lines(r.content)
    expected = hand(raw, EXPORT["group_by"])
    assert len(rows) == len(expected) > 50

    def keyed(rs):
        return {(r["metric_time__day"], r["customer__country"]):
                (r["revenue"] or 0, r["order_count"]) for r in rs}

    assert keyed(rows) == keyed(expected)
    assert list(rows[0]) == EXPORT["group_by"] + EXPORT["metrics"]


def test_an_empty_ndjson_export_is_an_empty_body(limited):
    r = limited.post("/api/v1/exports", json={**EXPORT, "where": NOWHERE, "format": "ndjson"})
    assert r.status_code == 200 and r.content == b""


@pytest.mark.parametrize("asked,needles", [
    ("jsonl", ["use one of csv, arrow, parquet, ndjson", "Did you mean 'ndjson'?"]),
    ("NDJSN", ["Unknown export format 'NDJSN'", "Did you mean 'ndjson'?"]),
    ("json", ["json is not offered as an export format here", "ndjson"]),
])  # fmt: skip
def test_an_unknown_export_format_is_a_400_naming_the_known_ones(limited, asked, needles):
    err = assert_error(limited.post("/api/v1/exports", json={**EXPORT, "format": asked}),
                       400, "invalid_request", *needles)
    assert err["details"]["supported"] == formats.names(formats.exports())


# The registry as the one source --------------------------------------------------------------


async def test_the_openapi_document_lists_the_registrys_formats(client):
    doc = (await client.get("/openapi.json")).json()
    answers = [f.media_type for f in formats.answers()]
    assert list(doc["paths"]["/api/v1/query"]["post"]["responses"]["200"]["content"]) == answers
    exported = doc["paths"]["/api/v1/exports"]["post"]["responses"]["200"]["content"]
    assert list(exported) == [f.content_type for f in formats.exports()]
    body = doc["components"]["schemas"]["ExportBody"]["properties"]["format"]
    assert all(name in body["description"] for name in formats.names(formats.exports()))
    assert "application/x-ndjson" in answers and "ndjson" in body["description"]


TOY = '''
import io, json, sys
import pyarrow as pa, pyarrow.csv as pacsv
from tally.core import formats

def tsv(table):
    out = io.BytesIO()
    pacsv.write_csv(table, out, pacsv.WriteOptions(delimiter="\\t", quoting_style="none"))
    return out.getvalue()

def tsv_stream(schema, batches):
    for i, batch in enumerate(batches):
        text = tsv(pa.Table.from_batches([batch], schema))
        yield text if i == 0 else text.split(b"\\n", 1)[1]

# The only change: one entry in the table.
formats.FORMATS = (*formats.FORMATS, formats.Format(
    "tsv", "text/tab-separated-values", (".tsv",), "tab-separated values", charset="utf-8",
    table=tsv, stream=tsv_stream))
'''


def test_one_entry_in_the_table_is_a_format_everywhere(warehouse, tmp_path):
    """A toy TSV format, added to the table before tally's transports are imported, and
    nowhere else: REST (Accept, exports, OpenAPI), the CLI and MCP serve it."""
    script = tmp_path / "toy.py"
    script.write_text(TOY + textwrap.dedent('''
        import asyncio, httpx
        from tally.server import create_app
        from tally.cli import _parser
        from tally.mcp.answers import FORMATS as MCP_FORMATS

        async def main():
            app = create_app()
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                q = {"metrics": ["order_count"], "group_by": ["metric_time__year"]}
                query = await c.post("/api/v1/query", json=q,
                                     headers={"accept": "text/tab-separated-values"})
                export = await c.post("/api/v1/exports", json={**q, "format": "tsv"})
                doc = (await c.get("/openapi.json")).json()
            app.state.service.shutdown()
            choices = next(a.choices for a in _parser()._subparsers._group_actions[0]
                           .choices["query"]._actions if a.dest == "format")
            print(json.dumps({
                "query": [query.status_code, query.headers["content-type"], query.text],
                "export": [export.status_code, export.headers.get("content-disposition"),
                           export.text],
                "openapi": list(doc["paths"]["/api/v1/query"]["post"]["responses"]["200"]
                                ["content"]),
                "cli": list(choices), "mcp": [f.name for f in MCP_FORMATS]}))

        asyncio.run(main())
    '''))
    out = subprocess.run([sys.executable, str(script)], env=tally_env(warehouse),
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    status, content_type, text = got["query"]
    assert status == 200 and content_type == "text/tab-separated-values; charset=utf-8"
    assert text.replace('"', "").splitlines()[0] == "metric_time__year\torder_count"
    assert len(text.splitlines()) == 5
    status, disposition, exported = got["export"]
    assert status == 200 and disposition == 'attachment; filename="export.tsv"'
    assert exported == text
    assert got["openapi"][-1] == "text/tab-separated-values"
    assert got["cli"][-1] == "tsv" and got["mcp"][-1] == "tsv"
