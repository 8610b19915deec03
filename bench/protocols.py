"""One large result (a day x country x segment grid, split by customer and order status: some
200,000 rows with `make warehouse SCALE=20`) through every protocol of a real
`tally serve --flight-port`, side by side with the floor: DuckDB producing the same Arrow table
in process from the same SQL.

    make warehouse SCALE=20
    .venv/bin/python bench/protocols.py [--repeat 5]

Every tally figure but one is for a cached result (each protocol is warmed once first), so it
measures the protocol: Flight SQL through the ADBC driver (what the dbt SDK uses), REST Arrow IPC,
REST JSON (parsed; both REST forms gzip-compressed, as httpx asks by default, and Arrow once
more without), and the dbt Semantic Layer GraphQL API's Arrow pages (createQuery, poll, one
request per 1024 rows); the one more is Flight SQL with read_cache=False, compile and warehouse
included. The floor is uncached: DuckDB has no result cache, and it is what a
caller would wait for without tally. Flight SQL's goal: within 1.5x of the floor."""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import duckdb
import httpx
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
DB = ROOT / "dbt_project" / "warehouse.duckdb"
QUERY = {"metrics": ["revenue", "order_count"],
         "group_by": ["metric_time__day", "customer__country", "customer__customer_segment",
                      "customer__customer_status", "order__order_status"]}
STATEMENT = ("{{ semantic_layer.query(metrics=['revenue', 'order_count'], group_by=["
             "'metric_time__day', 'customer__country', 'customer__customer_segment', "
             "'customer__customer_status', 'order__order_status']) }}")
GQL_CREATE = """mutation { createQuery(environmentId: 1, metrics: [{name: "revenue"},
    {name: "order_count"}], groupBy: [{name: "metric_time", grain: DAY},
    {name: "customer__country"}, {name: "customer__customer_segment"},
    {name: "customer__customer_status"}, {name: "order__order_status"}]) { queryId } }"""
GQL_PAGE = """query($q: String!, $p: Int!) { query(environmentId: 1, queryId: $q, pageNum: $p)
    { status error totalPages arrowResult } }"""
ARROW = "application/vnd.apache.arrow.stream"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def median_ms(fn: Callable[[], int], repeat: int) -> tuple[float, int]:
    times, rows = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        rows = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if not DB.exists():
        print("run `make warehouse SCALE=20` first", file=sys.stderr)
        return 2
    http_port, flight_port = free_port(), free_port()
    env = {**os.environ, "TALLY_PROJECT_DIR": str(ROOT / "dbt_project"),
           "TALLY_MAX_ROWS": "5000000", "TALLY_CACHE_MAX_BYTES": str(2**31),
           "TALLY_QUERY_TIMEOUT_SECONDS": "600"}
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "tally"), "serve", "--port", str(http_port),
         "--flight-port", str(flight_port), "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                print("tally serve did not become ready", file=sys.stderr)
                return 1
            time.sleep(0.3)
        http = httpx.Client(base_url=base, timeout=600)
        sql = http.post("/api/v1/compile", json=QUERY).json()["sql"]
        con = duckdb.connect(":memory:")
        con.execute(f"ATTACH '{DB}' AS warehouse (READ_ONLY)")
        con.execute("USE warehouse")
        adbc = flightsql.connect(f"grpc://127.0.0.1:{flight_port}")
        cursor = adbc.cursor()

        def floor() -> int:
            return con.sql(sql).to_arrow_table().num_rows

        def flight() -> int:
            cursor.execute(STATEMENT)
            return cursor.fetch_arrow_table().num_rows

        def flight_uncached() -> int:  # read_cache=False: the warehouse runs it each time
            cursor.execute(STATEMENT.replace("]) }}", "], read_cache=False) }}"))
            return cursor.fetch_arrow_table().num_rows

        def rest_arrow() -> int:
            r = http.post("/api/v1/query", json=QUERY, headers={"accept": ARROW})
            return pa.ipc.open_stream(io.BytesIO(r.content)).read_all().num_rows

        def rest_arrow_identity() -> int:  # the same without gzip (the client's choice)
            r = http.post("/api/v1/query", json=QUERY,
                          headers={"accept": ARROW, "accept-encoding": "identity"})
            return pa.ipc.open_stream(io.BytesIO(r.content)).read_all().num_rows

        def rest_json() -> int:
            return len(json.loads(http.post("/api/v1/query", json=QUERY).content)["data"])

        def graphql_pages() -> int:
            query_id = http.post("/api/graphql", json={"query": GQL_CREATE}).json()[
                "data"]["createQuery"]["queryId"]
            tables, page, pages = [], 1, 1
            while page <= pages:
                result = http.post("/api/graphql", json={
                    "query": GQL_PAGE, "variables": {"q": query_id, "p": page}}).json()[
                    "data"]["query"]
                if result["status"] not in ("SUCCESSFUL", "FAILED"):
                    time.sleep(0.01)
                    continue
                pages = result["totalPages"]
                data = base64.b64decode(result["arrowResult"])
                tables.append(pa.ipc.open_stream(io.BytesIO(data)).read_all())
                page += 1
            return pa.concat_tables(tables).num_rows

        contenders = {"duckdb in process (floor)": floor, "flight sql (adbc)": flight,
                      "flight sql, uncached": flight_uncached,
                      "rest arrow (gzip)": rest_arrow, "rest arrow (identity)": rest_arrow_identity,
                      "rest json (gzip)": rest_json,
                      "graphql arrow pages": graphql_pages}
        for fn in contenders.values():  # warm: the result is cached, connections open
            fn()
        print(f"{'protocol':28}{'median ms':>11}{'vs floor':>10}{'rows':>10}")
        # Interleaved, one round at a time, so every contender sees the same machine load.
        times: dict[str, list[float]] = {name: [] for name in contenders}
        rows: dict[str, int] = {}
        for _ in range(args.repeat):
            for name, fn in contenders.items():
                ms, rows[name] = median_ms(fn, 1)
                times[name].append(ms)
        results = {name: (statistics.median(t), rows[name]) for name, t in times.items()}
        floor_ms = results["duckdb in process (floor)"][0]
        for name, (ms, rows) in results.items():
            print(f"{name:28}{ms:11.1f}{ms / floor_ms:9.2f}x{rows:10}")
        ratio = results["flight sql (adbc)"][0] / floor_ms
        verdict = "within" if ratio <= 1.5 else "NOT within"
        print(f"(medians of {args.repeat}; tally results cached but 'uncached', floor uncached) "
              f"Flight SQL is "
              f"{ratio:.2f}x the floor: {verdict} the 1.5x goal")
        cursor.close()
        adbc.close()
        return 0
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    sys.exit(main())
