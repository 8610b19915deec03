"""A load test on loopback, bounded in time: several callers mixing cached, cold, invalid,
unauthorised and over-limit requests against a real `tally serve`. Nothing but the intended
statuses, no 5xx, and the server's memory within the cache's bound plus a stated margin."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

DURATION = 20.0  # seconds of load
CACHE_BYTES = 16 * 1024 * 1024
# What the process may grow beyond the cache's bound while under load: request buffers,
# DuckDB's working memory for the cold queries, MetricFlow's plans for new query shapes.
MARGIN_BYTES = 200 * 1024 * 1024
COUNTRIES = ["US", "DE", "FR", "GB", "NL", "ES", "IT", "SE", "CA", "AU"]


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_mixed_load(secured, warehouse, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
    env.update(TALLY_PROJECT_DIR=str(secured.project_dir),
               TALLY_MANIFEST_PATH=str(warehouse.manifest_path),
               TALLY_DUCKDB_PATH=str(warehouse.duckdb_path), TALLY_JWT_SECRET=secured.jwt_secret,
               TALLY_CACHE_MAX_BYTES=str(CACHE_BYTES), TALLY_RATE_LIMIT_PER_MINUTE="300",
               TALLY_QUERY_WORKERS="4")  # fmt: skip
    log = (tmp_path / "serve.log").open("w+")
    server = subprocess.Popen([str(Path(sys.executable).parent / "tally"), "serve", "--port",
                               str(port), "--log-level", "warning"], env=env, stdout=log,
                              stderr=log)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    statuses: dict[str, Counter] = {}
    lock = threading.Lock()
    stop = threading.Event()
    try:
        with httpx.Client(base_url=base, timeout=60) as c:
            for _ in range(300):
                try:
                    if c.get("/health/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            reader = {"authorization": f"Bearer {secured.keys['reader']}"}
            c.post("/api/v1/query", json={"metrics": ["revenue"]}, headers=reader)  # warm up
        baseline = _rss(server.pid)
        peak = baseline

        def caller(kind: str, headers: dict, make_body) -> None:
            rng = random.Random(kind)
            with httpx.Client(base_url=base, timeout=60, headers=headers) as client:
                while not stop.is_set():
                    r = client.post("/api/v1/query", json=make_body(rng))
                    with lock:
                        statuses.setdefault(kind, Counter())[r.status_code] += 1

        def cold(rng):
            return {"metrics": [rng.choice(["revenue", "order_count", "active_customers"])],
                    "group_by": [rng.choice(["metric_time__day", "metric_time__week",
                                             "customer__country"])],
                    "where": [{"dimension": "customer__country", "op": "in",
                               "values": rng.sample(COUNTRIES, 3)}],
                    "limit": rng.randint(1, 5000)}  # fmt: skip

        tenant = {"authorization": f"Bearer {secured.tenant('DE')}"}
        workers = [
            ("cached", reader,
             lambda rng: {"metrics": ["revenue"], "group_by": ["metric_time__month"]}),
            ("cold", {"authorization": f"Bearer {secured.keys['sql-reader']}"}, cold),
            ("tenant", tenant, lambda rng: {"metrics": ["revenue"], "group_by": [
                rng.choice(["metric_time__month", "customer__country"])]}),
            ("invalid", {"authorization": f"Bearer {secured.hs(sub='typo-prone')}"},
             lambda rng: {"metrics": [f"revenu{rng.randint(0, 9)}"]}),
            ("unauthorised", {}, lambda rng: {"metrics": ["revenue"]}),
            ("over-limit", {"authorization": f"Bearer {secured.keys['hammer']}"},
             lambda rng: {"metrics": ["order_count"]}),
        ]  # fmt: skip
        threads = [threading.Thread(target=caller, args=w) for w in workers]
        for t in threads:
            t.start()
        deadline = time.monotonic() + DURATION
        while time.monotonic() < deadline:
            peak = max(peak, _rss(server.pid))
            time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(60)
        with httpx.Client(base_url=base, timeout=30) as c:
            live = c.get("/health/live").status_code
            cache = c.get("/api/v1/cache", headers={"authorization":
                                                    f"Bearer {secured.keys['admin']}"}).json()
    finally:
        server.terminate()
        server.wait(30)
        log.seek(0)
        server_log = log.read()
        log.close()
    total = sum(sum(c.values()) for c in statuses.values())
    print(f"load: {total} requests in {DURATION:.0f} s: {statuses}; RSS {baseline >> 20} MiB -> "
          f"peak {peak >> 20} MiB; cache {cache['bytes'] >> 10} KiB of {CACHE_BYTES >> 10} KiB")
    assert live == 200
    # Every caller hammers as fast as it can, so each meets its rate limit (429) too.
    intended = {"cached": 200, "cold": 200, "tenant": 200, "invalid": 400, "unauthorised": 401,
                "over-limit": 200}  # fmt: skip
    for kind, counter in statuses.items():
        assert set(counter) <= {intended[kind], 429}, (kind, counter)
        assert counter[intended[kind]] > 0, (kind, counter)
    assert statuses["over-limit"][429] > 0 and "unauthorised" in statuses
    assert total > 500
    assert cache["bytes"] <= CACHE_BYTES
    assert peak - baseline <= CACHE_BYTES + MARGIN_BYTES, (baseline, peak)
    assert "Traceback" not in server_log
