"""A real `tally serve` on loopback: median latency of /health/live, of a cached query and of
an uncached one (cache invalidated before each), interleaved so all three see the same load.

    .venv/bin/python bench/http_latency.py [--requests 500]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import httpx
from serving import ROOT, tally_serve

QUERY = {"metrics": ["revenue", "order_count", "average_order_value"],
         "group_by": ["metric_time__month"]}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--uncached", type=int, default=50)
    args = parser.parse_args()
    if not (ROOT / "dbt_project" / "warehouse.duckdb").exists():
        print("run `make warehouse` first", file=sys.stderr)
        return 2
    with tally_serve() as base, httpx.Client(base_url=base, timeout=30) as client:
        client.post("/api/v1/query", json=QUERY)  # warm: engine, compiled SQL, cache
        live, hit = [], []
        for i in range(args.requests):
            t = time.perf_counter()
            client.get("/health/live")
            live.append(time.perf_counter() - t)
            t = time.perf_counter()
            r = client.post("/api/v1/query", json=QUERY)
            hit.append(time.perf_counter() - t)
            assert r.headers["x-tally-cache"] == "hit"
            if (i + 1) % 100 == 0:
                print(f"  {i + 1}/{args.requests} live+cached pairs", file=sys.stderr)
        miss = []
        for _ in range(args.uncached):
            client.post("/api/v1/cache/invalidate")
            t = time.perf_counter()
            r = client.post("/api/v1/query", json=QUERY)
            miss.append(time.perf_counter() - t)
            assert r.headers["x-tally-cache"] == "miss"

    def ms(xs: list[float], q: float = 0.5) -> float:
        return statistics.quantiles(xs, n=100)[int(q * 100) - 1] * 1000 if q != 0.5 \
            else statistics.median(xs) * 1000

    print(f"requests: {args.requests} live + {args.requests} cached, {args.uncached} uncached; "
          f"result: {r.json()['row_count']} rows x 4 columns")
    print(f"{'':28}{'median ms':>10}{'p95 ms':>10}")
    for name, xs in (("GET /health/live", live), ("POST /query (cache hit)", hit),
                     ("POST /query (cache miss)", miss)):
        print(f"{name:28}{ms(xs):10.3f}{ms(xs, 0.95):10.3f}")
    print(f"cached query / health/live (median): {ms(hit) / ms(live):.2f}x")
    print(f"uncached / cached (median):          {ms(miss) / ms(hit):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
