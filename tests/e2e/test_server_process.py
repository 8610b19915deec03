"""The real `tally serve` process on a loopback socket: start-up, readiness, queries over HTTP,
a warehouse rebuild while it runs (the next query is a miss with fresh numbers, no restart),
and a graceful shutdown on SIGTERM that lets a request in flight finish."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import httpx
import pytest

from tests.support.builds import run_dbt
from tests.support.paths import PROJECT_DIR, TALLY

HAND_REVENUE = """
    select sum(i.unit_price * i.quantity - i.discount_amount)
    from raw.orders o
    join raw.customers c using (customer_id)
    join raw.order_items i using (order_id)
    where o.order_status = 'completed'
      and coalesce(lower(trim(c.email)) <> '' and lower(trim(c.email)) like '%@%', false)
      and coalesce(trim(c.first_name) <> '' and trim(c.last_name) <> '', false)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hand_revenue(path: Path):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(HAND_REVENUE).fetchone()[0]
    finally:
        con.close()


@pytest.fixture
def server(warehouse, tmp_path):
    served = tmp_path / "served" / "warehouse.duckdb"
    served.parent.mkdir()
    shutil.copy(warehouse.duckdb_path, served)
    port = free_port()
    env = {**os.environ, "TALLY_DUCKDB_PATH": str(served),
           "TALLY_MANIFEST_PATH": str(warehouse.manifest_path),
           "TALLY_PROJECT_DIR": str(PROJECT_DIR)}
    log = (tmp_path / "server.log").open("w+")
    proc = subprocess.Popen([str(TALLY), "serve", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            pytest.fail(f"tally serve did not become ready:\n{log.read()[-3000:]}")
        time.sleep(0.2)
    yield base, proc, served, tmp_path, log
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_serve_query_rebuild_and_shutdown(server, warehouse):
    base, proc, served, tmp_path, log = server
    with httpx.Client(base_url=base, timeout=30) as client:
        body = {"metrics": ["revenue"]}
        first = client.post("/api/v1/query", json=body)
        assert first.status_code == 200 and first.headers["x-tally-cache"] == "miss"
        assert first.json()["data"][0]["revenue"] == float(hand_revenue(served))
        again = client.post("/api/v1/query", json=body)
        assert again.headers["x-tally-cache"] == "hit"
        gql = client.post("/graphql", json={"query": "{ query(metrics: [\"revenue\"]) "
                                                     "{ rows cache { hit } } }"})
        assert gql.json()["data"]["query"]["cache"]["hit"] is True
        assert client.post("/api/v1/query", json={"metrics": ["revenu"]}).status_code == 400

        # Rebuild as `make warehouse` does: other raw data, a real dbt build into a new file,
        # renamed over the served one while the server runs.
        from tally.datagen import generate

        build = tmp_path / "build" / "warehouse.duckdb"
        build.parent.mkdir()
        generate(build, seed=99, scale=0.2)
        env = {**os.environ, "TALLY_DUCKDB_PATH": str(build)}
        result = run_dbt(["build", "--log-path", str(tmp_path / "logs")],
                         tmp_path / "build" / "target", env)
        assert result.returncode == 0, result.stdout[-3000:]
        os.replace(build, served)

        fresh = client.post("/api/v1/query", json=body)
        assert fresh.status_code == 200 and fresh.headers["x-tally-cache"] == "miss"
        new_value = fresh.json()["data"][0]["revenue"]
        assert new_value == float(hand_revenue(served))
        assert new_value != first.json()["data"][0]["revenue"]
        assert client.post("/api/v1/query", json=body).headers["x-tally-cache"] == "hit"

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0  # a requested stop is not a failure
    log.seek(0)
    output = log.read()
    assert "Traceback" not in output
    assert "Application shutdown complete" in output and "Finished server process" in output


# A large export: one row per order item (some twenty thousand rows at the test scale), a
# request the server takes a while on (compile, execute, encode and compress the JSON).
LARGE = {"metrics": ["item_revenue", "cost_of_goods_sold"],
         "group_by": ["order_item", "metric_time__day", "customer__country"]}


def in_flight(client: httpx.Client) -> float:
    """Requests the server is answering, this scrape included."""
    text = client.get("/metrics").text
    return float(re.search(r"^tally_http_requests_in_flight (\S+)$", text, re.M).group(1))


def test_sigterm_lets_a_request_in_flight_finish_then_exits_0(server):
    base, proc, _, _, log = server

    def export() -> tuple[httpx.Response, float]:
        with httpx.Client(base_url=base, timeout=60) as c:
            response = c.post("/api/v1/query", json=LARGE)
            return response, time.monotonic()

    with ThreadPoolExecutor(1) as pool, httpx.Client(base_url=base, timeout=10) as probe:
        assert in_flight(probe) == 1
        slow = pool.submit(export)
        deadline = time.monotonic() + 10
        while in_flight(probe) < 2:  # the export has reached the app and is being answered
            assert time.monotonic() < deadline and not slow.done(), "the export never started"
            time.sleep(0.002)
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        response, finished = slow.result(timeout=60)
    assert finished > signalled  # it was still in flight when the signal came
    assert response.status_code == 200
    body = response.json()
    assert body["row_count"] == len(body["data"]) > 5000
    assert proc.wait(timeout=30) == 0
    log.seek(0)
    output = log.read()
    assert "Traceback" not in output and "Application shutdown complete" in output
    with pytest.raises(httpx.TransportError):  # and it is gone
        httpx.get(f"{base}/health/live", timeout=2)
