"""MCP's cost over REST for the same cached question, side by side in one run: REST
`POST /api/v1/query` (JSON) and the `query_metrics` tool through the `mcp` SDK's client, over
streamable HTTP (`/mcp` on the same `tally serve`) and over stdio (`tally mcp`, its own process
and cache, warmed the same way). Interleaved, so all three see the same load.

    make warehouse
    .venv/bin/python bench/mcp_latency.py [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time

import httpx
from serving import ROOT, TALLY, tally_serve

REST = {"metrics": ["revenue", "order_count", "average_order_value"],
        "group_by": ["metric_time__month"]}
TOOL = {"metrics": REST["metrics"],
        "group_by": [{"name": "metric_time", "type": "time_dimension", "grain": "month"}]}


async def run(base: str, env: dict[str, str], requests: int) -> dict[str, list[float]]:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    times: dict[str, list[float]] = {"REST /api/v1/query": [], "MCP over HTTP": [],
                                     "MCP over stdio": []}
    stdio = StdioServerParameters(command=str(TALLY), args=["mcp"], env=env)
    async with httpx.AsyncClient(base_url=base, timeout=60) as rest, \
            Client(f"{base}/mcp") as http, Client(stdio) as local:
        calls = {
            "REST /api/v1/query": lambda: rest.post("/api/v1/query", json=REST),
            "MCP over HTTP": lambda: http.call_tool("query_metrics", TOOL),
            "MCP over stdio": lambda: local.call_tool("query_metrics", TOOL),
        }
        for call in calls.values():  # warm: engine, compiled SQL, cache
            await call()
        for i in range(requests):
            for name, call in calls.items():
                t = time.perf_counter()
                await call()
                times[name].append(time.perf_counter() - t)
            if (i + 1) % 50 == 0:
                print(f"  {i + 1}/{requests} rounds", file=sys.stderr)
    return times


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    if not (ROOT / "dbt_project" / "warehouse.duckdb").exists():
        print("run `make warehouse` first", file=sys.stderr)
        return 2
    env = {**os.environ, "TALLY_PROJECT_DIR": str(ROOT / "dbt_project")}
    with tally_serve(env) as base:
        times = asyncio.run(run(base, env, args.requests))

    def ms(xs: list[float], q: float = 0.5) -> float:
        return (statistics.median(xs) if q == 0.5
                else statistics.quantiles(xs, n=100)[int(q * 100) - 1]) * 1000

    rest = ms(times["REST /api/v1/query"])
    print(f"{args.requests} rounds, one cached query each way (3 metrics by month)")
    print(f"{'':22}{'median ms':>10}{'p95 ms':>10}{'vs REST':>9}")
    for name, xs in times.items():
        print(f"{name:22}{ms(xs):10.3f}{ms(xs, 0.95):10.3f}{ms(xs) / rest:8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
