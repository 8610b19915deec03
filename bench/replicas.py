"""Several replicas: real `tally serve` processes on loopback, in one run, side by side.

1. Throughput of cached dashboard queries: one process vs three behind client-side round robin
   (the three share one Redis; every query is already cached in each, so this measures the
   serving path, not the warehouse).
2. A cold herd: the same uncached query sent at once by many clients spread over three
   replicas, with their own in-process caches vs one shared cache (TALLY_CACHE_URL): how many
   times the warehouse ran it, and how long the herd took.

Redis is a private `redis-server` this script starts on a free port (the machine's own is
untouched). Needs the demo warehouse (`make warehouse`).

    .venv/bin/python bench/replicas.py [--seconds 10] [--clients 16] [--herd 30] [--rounds 5]
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
TALLY = ROOT / ".venv" / "bin" / "tally"
DASHBOARD = [
    {"metrics": ["revenue", "order_count"], "group_by": ["metric_time__month"]},
    {"metrics": ["revenue"], "group_by": ["metric_time__month", "customer__country"]},
    {"metrics": ["average_order_value"], "group_by": ["metric_time__quarter"]},
    {"metrics": ["active_customers"], "group_by": ["metric_time__week"]},
    {"metrics": ["cancellation_rate"], "group_by": ["customer__customer_segment"]},
    {"metrics": ["order_count"], "group_by": ["metric_time__day"]},
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(count: int, env: dict[str, str]) -> list[tuple[subprocess.Popen, str]]:
    servers = []
    for _ in range(count):
        port = free_port()
        proc = subprocess.Popen(
            [str(TALLY), "serve", "--port", str(port), "--log-level", "warning"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "TALLY_PROJECT_DIR": str(ROOT / "dbt_project"),
                 "TALLY_RATE_LIMIT_PER_MINUTE": "0", **env})
        servers.append((proc, f"http://127.0.0.1:{port}"))
    for proc, base in servers:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None:
                raise SystemExit(f"tally serve at {base} exited")
            time.sleep(0.1)
    return servers


def executions(bases: list[str]) -> float:
    total = 0.0
    for base in bases:
        for line in httpx.get(f"{base}/metrics").text.splitlines():
            if line.startswith("tally_warehouse_executions_total "):
                total += float(line.split()[1])
    return total


def throughput(bases: list[str], clients: int, seconds: float) -> tuple[float, float]:
    """Requests a second and median latency (ms) of cached dashboard queries, round robin."""
    for base in bases:  # warm every replica's own memory
        for body in DASHBOARD:
            httpx.post(f"{base}/api/v1/query", json=body, timeout=60)
    counter = itertools.count()
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def worker() -> None:
        own: list[float] = []
        with httpx.Client(timeout=60) as client:
            while time.perf_counter() < stop:
                n = next(counter)
                t = time.perf_counter()
                r = client.post(f"{bases[n % len(bases)]}/api/v1/query",
                                json=DASHBOARD[n % len(DASHBOARD)])
                own.append(time.perf_counter() - t)
                assert r.status_code == 200, r.text
        with lock:
            latencies.extend(own)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return len(latencies) / elapsed, statistics.median(latencies) * 1000


def herd(bases: list[str], size: int, rounds: int, tag: int) -> tuple[float, float]:
    """Warehouse runs per herd and median herd time (ms): `size` identical cold queries at
    once, round robin over the replicas (a limit of its own per round keeps it cold)."""
    runs, times = [], []
    with httpx.Client(timeout=60) as client, ThreadPoolExecutor(size) as pool:
        for r in range(rounds):
            body = {**DASHBOARD[1], "limit": 100_000 + tag * 1000 + r}
            before = executions(bases)
            t = time.perf_counter()
            list(pool.map(lambda i, b=body: client.post(
                f"{bases[i % len(bases)]}/api/v1/query", json=b).raise_for_status(),
                range(size)))
            times.append(time.perf_counter() - t)
            runs.append(executions(bases) - before)
    return statistics.mean(runs), statistics.median(times) * 1000


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--herd", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not (ROOT / "dbt_project" / "warehouse.duckdb").exists():
        print("run `make warehouse` first", file=sys.stderr)
        return 2
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        print("needs redis-server", file=sys.stderr)
        return 2
    redis_port = free_port()
    redis = subprocess.Popen([redis_server, "--port", str(redis_port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shared_env = {"TALLY_CACHE_URL": f"redis://127.0.0.1:{redis_port}/0",
                  "TALLY_CACHE_PREFIX": "bench"}
    servers: list[tuple[subprocess.Popen, str]] = []
    try:
        print("starting 3 replicas with their own caches and 3 sharing Redis...",
              file=sys.stderr)
        own = start(3, {})
        shared = start(3, shared_env)
        servers = own + shared
        own_bases = [b for _, b in own]
        shared_bases = [b for _, b in shared]
        print(f"throughput, {args.seconds:g} s each, {args.clients} clients...", file=sys.stderr)
        one_rps, one_ms = throughput(own_bases[:1], args.clients, args.seconds)
        three_rps, three_ms = throughput(shared_bases, args.clients, args.seconds)
        print(f"cold herds: {args.rounds} rounds of {args.herd}...", file=sys.stderr)
        own_runs, own_herd_ms = herd(own_bases, args.herd, args.rounds, 1)
        shared_runs, shared_herd_ms = herd(shared_bases, args.herd, args.rounds, 2)
    finally:
        for proc, _ in servers:
            proc.terminate()
        for proc, _ in servers:
            proc.wait(15)
        redis.terminate()
        redis.wait(10)

    print(f"cores: {os.cpu_count()}; cached dashboard queries ({len(DASHBOARD)} shapes), "
          f"{args.clients} clients, {args.seconds:g} s")
    print(f"{'':40}{'req/s':>10}{'median ms':>11}")
    print(f"{'1 process (in-process cache)':40}{one_rps:10.0f}{one_ms:11.2f}")
    print(f"{'3 replicas, round robin (shared cache)':40}{three_rps:10.0f}{three_ms:11.2f}")
    print(f"throughput 3 replicas / 1 process: {three_rps / one_rps:.2f}x")
    print(f"cold herd: {args.herd} identical queries at once over 3 replicas, "
          f"{args.rounds} rounds")
    print(f"{'':40}{'warehouse runs':>15}{'median ms':>11}")
    print(f"{'own in-process caches':40}{own_runs:15.1f}{own_herd_ms:11.1f}")
    print(f"{'shared cache (Redis)':40}{shared_runs:15.1f}{shared_herd_ms:11.1f}")
    print(f"warehouse runs own / shared: {own_runs / max(shared_runs, 1e-9):.1f}x; "
          f"herd time own / shared: {own_herd_ms / shared_herd_ms:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
