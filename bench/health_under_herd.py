"""A real `tally serve` on loopback: how `/health/live` answers while a herd of heavy cold
queries runs. Three phases in one run, each probing /health/live every few milliseconds: idle,
during a herd of N distinct cold queries fired at once (distinct, so single flight cannot fold
them), and idle again. Prints the probe's median, p95 and max per phase and the herd/idle ratio.

    .venv/bin/python bench/health_under_herd.py [--herd 30] [--probes 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time

import httpx
from serving import ROOT, tally_serve


def heavy_query(i: int) -> dict:
    # A grid by day and customer country over a distinct date window: cold and not foldable.
    return {"metrics": ["revenue", "order_count", "average_order_value", "gross_margin"],
            "group_by": ["metric_time__day", "customer__country"],
            "where": [f"{{{{ TimeDimension('metric_time', 'day') }}}} >= '2022-01-01'::date "
                      f"+ {i}"]}


def probe(client: httpx.Client, until: threading.Event | None, count: int) -> list[float]:
    samples: list[float] = []
    while (until is None and len(samples) < count) or (until is not None and not until.is_set()):
        t = time.perf_counter()
        assert client.get("/health/live").status_code == 200
        samples.append((time.perf_counter() - t) * 1000)
        time.sleep(0.005)
    return samples


def summary(name: str, samples: list[float]) -> float:
    median = statistics.median(samples)
    p95 = statistics.quantiles(samples, n=20)[-1]
    print(f"{name:<14} probes={len(samples):>4}  median={median:7.2f} ms  p95={p95:7.2f} ms  "
          f"max={max(samples):7.2f} ms", flush=True)
    return median


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--herd", type=int, default=30)
    parser.add_argument("--probes", type=int, default=200)
    args = parser.parse_args()
    if not (ROOT / "dbt_project" / "warehouse.duckdb").exists():
        print("run `make warehouse` first", file=sys.stderr)
        return 2
    with tally_serve() as base, httpx.Client(base_url=base, timeout=120) as client:
        client.post("/api/v1/query", json=heavy_query(-1))  # warm the engine
        idle = summary("idle", probe(client, None, args.probes))
        done = threading.Event()
        statuses: list[int] = []

        def fire(i: int) -> None:
            with httpx.Client(base_url=base, timeout=300) as c:
                statuses.append(c.post("/api/v1/query", json=heavy_query(i)).status_code)

        herd = [threading.Thread(target=fire, args=(i,)) for i in range(args.herd)]
        started = time.perf_counter()
        for t in herd:
            t.start()
        watcher = threading.Thread(target=lambda: ([t.join() for t in herd], done.set()))
        watcher.start()
        during = summary(f"herd of {args.herd}", probe(client, done, 0))
        print(f"herd finished in {time.perf_counter() - started:.1f} s; statuses "
              f"{sorted(set(statuses))}", flush=True)
        after = summary("idle again", probe(client, None, args.probes))
        print(f"ratio herd/idle median: {during / idle:.2f}x  (idle again: {after:.2f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
