"""No silent caps: a result over TALLY_MAX_ROWS is an error naming the export route, and
POST /api/v1/exports streams the whole result as CSV, Arrow IPC or Parquet; a multi-million
row export through a real server process holds far less memory than the data it sends."""

from __future__ import annotations

import io
import os
import subprocess
from decimal import Decimal

import duckdb
import httpx
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from tests.support.builds import copy_of
from tests.support.clients import SyncASGIClient
from tests.support.hand_sql import expected_rows, group_columns
from tests.support.paths import PROJECT_DIR, TALLY
from tests.support.processes import start_server

QUERY = {"metrics": ["revenue", "order_count"], "group_by": ["metric_time__day",
                                                             "customer__country"]}


@pytest.fixture(scope="module")
def client(session_services):
    return SyncASGIClient(session_services.app(max_rows=50))


def _hand(raw):
    body = (f"select {group_columns(QUERY['group_by'], 'order_date')}, "
            "sum(net_amount) filter (where order_status = 'completed') as revenue, "
            "count(*) as order_count from enriched_orders group by all")
    return {(r["metric_time__day"], r["customer__country"]): (r["revenue"] or 0, r["order_count"])
            for r in expected_rows(raw, body)}


def test_over_the_row_limit_the_error_names_the_export_route(client):
    r = client.post("/api/v1/query", json=QUERY)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "result_too_large"
    assert "POST /api/v1/exports" in error["message"] and "--output" in error["message"]


@pytest.mark.parametrize("fmt", ["csv", "arrow", "parquet"])
def test_export_streams_every_row_past_the_limit(client, raw, fmt):
    r = client.post("/api/v1/exports", json={**QUERY, "format": fmt})
    assert r.status_code == 200, r.text
    if fmt == "csv":
        assert r.headers["content-type"].startswith("text/csv")
        table = pacsv.read_csv(io.BytesIO(r.content))
    elif fmt == "arrow":
        table = pa.ipc.open_stream(r.content).read_all()
    else:
        table = pq.read_table(io.BytesIO(r.content))
    assert table.column_names == QUERY["group_by"] + QUERY["metrics"]
    expected = _hand(raw)
    assert table.num_rows == len(expected) > 50
    got = {}
    for row in table.to_pylist():
        day = row["metric_time__day"]
        day = day.date() if hasattr(day, "date") and not isinstance(day, type(day.today())) else day
        got[(str(day)[:10], row["customer__country"])] = (
            Decimal(str(row["revenue"] or 0)), row["order_count"])
    want = {(str(k[0]), k[1]): (Decimal(str(v[0])), v[1]) for k, v in expected.items()}
    assert got == want


def test_export_errors_have_the_error_shape(client):
    r = client.post("/api/v1/exports", json={**QUERY, "format": "xlsx"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    assert "csv, arrow, parquet" in r.json()["error"]["message"]
    r = client.post("/api/v1/exports", json={"metrics": ["revenu"], "format": "csv"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_metric"
    assert "Did you mean 'revenue'?" in r.json()["error"]["message"]


def test_cli_output_file_streams_the_whole_result(warehouse, raw, tmp_path):
    env = {**os.environ, "TALLY_DUCKDB_PATH": str(warehouse.duckdb_path),
           "TALLY_MANIFEST_PATH": str(warehouse.manifest_path),
           "TALLY_PROJECT_DIR": str(PROJECT_DIR), "TALLY_MAX_ROWS": "10"}
    out = tmp_path / "revenue.parquet"
    run = subprocess.run([str(TALLY), "query", "--metrics", "revenue,order_count", "--group-by",
                          "metric_time__day,customer__country", "--output", str(out)],
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "rows written to" in run.stderr
    assert pq.read_table(out).num_rows == len(_hand(raw)) > 10


# A multi-million row export through a real server ------------------------------------------

BIG_COPIES = 600  # each order copied this many times under new ids: millions of orders


def _peak_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.fixture(scope="module")
def big_server(warehouse, tmp_path_factory):
    folder = tmp_path_factory.mktemp("big_export")
    db, target = copy_of(warehouse, folder)
    con = duckdb.connect(str(db))
    con.execute("SET memory_limit = '1GB'")
    # fct_orders inflated in place: every order copied under new ids (a load test of the
    # export path; the numbers are checked against the inflated table itself).
    con.execute(f"""
        create or replace table analytics_marts.fct_orders as
        select * replace (order_id + k * 100000000 as order_id)
        from analytics_marts.fct_orders, range({BIG_COPIES}) as r(k)""")
    rows, orders = con.execute(
        "select sum(net_amount) filter (where order_status = 'completed'), count(*) "
        "from analytics_marts.fct_orders").fetchone()
    con.close()
    server = start_server(folder / "server.log", {
        "TALLY_DUCKDB_PATH": str(db),
        "TALLY_MANIFEST_PATH": str(target / "semantic_manifest.json"),
        "TALLY_PROJECT_DIR": str(PROJECT_DIR),
        # DuckDB's own working memory is bounded (the profile's settings: memory_limit):
        # what is measured is what tally holds.
        "TALLY_DUCKDB_MEMORY_LIMIT": "256MB"}, flight=False, ready_timeout=60)
    yield server.http, server.process, rows, orders
    server.process.kill()
    server.process.wait()


@pytest.mark.skipif(os.environ.get("TALLY_BIG_TESTS") != "1",
                    reason="about 3 minutes: `make test-big` runs it (TALLY_BIG_TESTS=1)")
def test_multi_million_row_export_in_bounded_server_memory(big_server):
    base, proc, revenue, orders = big_server
    assert orders >= 2_000_000
    # Warm: the engine built, a small export compiled and streamed (start-up costs aside).
    warm = httpx.post(f"{base}/api/v1/exports", timeout=120,
                      json={"metrics": ["revenue"], "group_by": ["metric_time__year"]})
    assert warm.status_code == 200
    before = _peak_kib(proc.pid)
    body = {"metrics": ["order_count", "gross_revenue", "discounts", "items_sold", "revenue"],
            "group_by": ["order", "metric_time__day", "customer__country", "order__order_status"],
            "format": "csv"}
    received, lines, total = 0, 0, Decimal(0)
    tail = b""
    with httpx.stream("POST", f"{base}/api/v1/exports", json=body, timeout=300) as r:
        assert r.status_code == 200
        for chunk in r.iter_bytes():
            received += len(chunk)
            data = tail + chunk
            *complete, tail = data.split(b"\n")
            for line in complete:
                lines += 1
                if lines > 1:
                    value = line.rsplit(b",", 1)[1]
                    total += Decimal(value.decode()) if value else 0
    assert tail == b""
    assert lines - 1 == orders  # one row per order, all of them: no cap
    assert total == revenue
    grew = (_peak_kib(proc.pid) - before) * 1024
    print(f"\nexport: {orders:,} rows, {received / 1e6:.0f} MB sent; server peak memory grew "
          f"{grew / 1e6:.0f} MB")
    # Measured on a 2-core machine: about as much as it sent, most of it DuckDB's hash table of
    # 5.4 million groups; tally's own share is one batch. A server that held the result (Arrow
    # table and its encoded body) would grow by at least twice what it sent.
    assert grew < 1.5 * received, (grew, received)
