"""The same dashboard queries on each warehouse engine, in process, side by side in one run:
median time of each query uncached (compile + execute on the warehouse + shaping) and cached,
per engine, and each engine's ratio to DuckDB. The engines take turns query by query, so load
from elsewhere on the machine falls on all of them alike.

Each target is a dbt profile output with the demo built on it (`make warehouse`,
`make warehouse-postgres`, `make warehouse-spark`) and the semantic manifest dbt parsed for it
(a manifest is parsed per adapter: give each target's with --manifest TARGET=PATH when they
are not all in dbt_project/target/). Targets that are not built are reported and skipped.
`TARGET:PATH` runs a target through a given execution path (TALLY_EXECUTION_PATH):
`postgres:native` is PostgreSQL through psycopg2, `postgres:adbc` through ADBC, same data.

    .venv/bin/python bench/engines.py --targets dev,postgres:native,postgres:adbc,spark \
        --manifest spark=/tmp/spark-target/semantic_manifest.json --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from tally.core.request import QueryRequest
from tally.errors import TallyError
from tally.service import TallyService
from tally.settings import Settings
from tally.warehouse.registry import PATHS

ROOT = Path(__file__).resolve().parent.parent

DASHBOARD = [
    ("revenue, orders by month", {"metrics": ["revenue", "order_count"],
                                  "group_by": ["metric_time__month"]}),
    ("revenue by month x country", {"metrics": ["revenue"],
                                    "group_by": ["metric_time__month", "customer__country"]}),
    ("AOV by quarter", {"metrics": ["average_order_value"],
                        "group_by": ["metric_time__quarter"]}),
    ("active customers by week", {"metrics": ["active_customers"],
                                  "group_by": ["metric_time__week"]}),
    ("cancellation rate by segment", {"metrics": ["cancellation_rate"],
                                      "group_by": ["customer__customer_segment"]}),
    # Thousands of rows: where converting rows to Arrow costs more than running the query.
    ("revenue by day x country", {"metrics": ["revenue", "order_count"],
                                  "group_by": ["metric_time__day", "customer__country"]}),
]


def open_service(column: str, manifest: Path | None) -> TallyService:
    target, _, path = column.partition(":")
    settings = Settings(project_dir=ROOT / "dbt_project", target=target, manifest_path=manifest,
                        execution_path=path or "auto")
    service = TallyService(settings)
    t = time.perf_counter()
    try:
        service.ready()  # connects (a Spark session starts here) and builds the engine
    except BaseException:
        service.shutdown()
        raise
    print(f"  {column}: ready in {time.perf_counter() - t:.1f} s ({service.engine.adapter_type}, "
          f"{service.engine.execution_path})", file=sys.stderr)
    return service


def measure(services: dict[str, TallyService], repeat: int) -> dict[str, dict]:
    """Median ms (uncached, cached) of each query on each target. The targets take turns
    within each repetition, so a machine's load drifting during the run weighs on every
    column alike instead of on whichever target ran at the time."""
    out: dict[str, dict[str, tuple[float, float]]] = {t: {} for t in services}
    for name, body in DASHBOARD:
        request = QueryRequest.create(**body)
        for service in services.values():
            service.query(request, use_cache=False)  # warm: compiled SQL, warehouse caches
            service.query(request)  # and the result cache
        cold: dict[str, list[float]] = {t: [] for t in services}
        warm: dict[str, list[float]] = {t: [] for t in services}
        for _ in range(repeat):
            for target, service in services.items():
                t = time.perf_counter()
                service.query(request, use_cache=False)
                cold[target].append(time.perf_counter() - t)
                t = time.perf_counter()
                service.query(request)
                warm[target].append(time.perf_counter() - t)
        for target in services:
            out[target][name] = (statistics.median(cold[target]) * 1000,
                                 statistics.median(warm[target]) * 1000)
        print(f"    {name}: " + ", ".join(f"{t} {out[t][name][0]:.1f} ms" for t in services),
              file=sys.stderr)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", default="dev,postgres:native,postgres:adbc,spark",
                        help="TARGET or TARGET:EXECUTION_PATH, comma-separated")
    parser.add_argument("--manifest", action="append", default=[],
                        help="TARGET=PATH of that target's semantic_manifest.json")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    manifests = {k: Path(v) for k, v in (m.split("=", 1) for m in args.manifest)}
    services: dict[str, TallyService] = {}
    try:
        for target in args.targets.split(","):
            print(f"{target}...", file=sys.stderr)
            path = target.partition(":")[2]
            if path and path not in PATHS:
                print(f"  {target}: skipped (execution paths: {', '.join(PATHS)})",
                      file=sys.stderr)
                continue
            try:
                services[target] = open_service(target, manifests.get(target.partition(":")[0]))
            except TallyError as e:
                print(f"  {target}: skipped ({e.code}: {e.message})", file=sys.stderr)
        if not services:
            return 2
        results = measure(services, args.repeat)
    finally:
        for service in services.values():
            service.shutdown()
    base = next(iter(results))
    targets = list(results)
    print(f"median ms of {args.repeat} runs, uncached (cached in brackets); ratio to {base}")
    print(f"{'query':32}" + "".join(f"{t:>24}" for t in targets))
    for name, _ in DASHBOARD:
        cells = []
        for t in targets:
            cold, warm = results[t][name]
            ratio = cold / results[base][name][0]
            cells.append(f"{cold:9.1f} ({warm:5.2f}) {ratio:5.1f}x")
        print(f"{name:32}" + "".join(f"{c:>24}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
