"""The same dashboard queries on each warehouse engine, in process, side by side in one run:
median time of each query uncached (compile + execute on the warehouse + shaping) and cached,
per engine, and each engine's ratio to DuckDB.

Each target is a dbt profile output with the demo built on it (`make warehouse`,
`make warehouse-postgres`, `make warehouse-spark`) and the semantic manifest dbt parsed for it
(a manifest is parsed per adapter: give each target's with --manifest TARGET=PATH when they
are not all in dbt_project/target/). Targets that are not built are reported and skipped.

    .venv/bin/python bench/engines.py --targets dev,postgres,spark \
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
]


def measure(target: str, manifest: Path | None, repeat: int) -> dict[str, tuple[float, float]]:
    settings = Settings(project_dir=ROOT / "dbt_project", target=target, manifest_path=manifest)
    service = TallyService(settings)
    t = time.perf_counter()
    service.ready()  # connects (a Spark session starts here) and builds the engine
    print(f"  {target}: ready in {time.perf_counter() - t:.1f} s ({service.engine.adapter_type}, "
          f"{service.engine.execution_path})", file=sys.stderr)
    out = {}
    try:
        for name, body in DASHBOARD:
            request = QueryRequest.create(**body)
            service.query(request, use_cache=False)  # warm: compiled SQL, warehouse caches
            cold = []
            for _ in range(repeat):
                t = time.perf_counter()
                service.query(request, use_cache=False)
                cold.append(time.perf_counter() - t)
            service.query(request)
            warm = []
            for _ in range(repeat):
                t = time.perf_counter()
                service.query(request)
                warm.append(time.perf_counter() - t)
            out[name] = (statistics.median(cold) * 1000, statistics.median(warm) * 1000)
            print(f"    {name}: {out[name][0]:.1f} ms", file=sys.stderr)
    finally:
        service.shutdown()
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", default="dev,postgres,spark")
    parser.add_argument("--manifest", action="append", default=[],
                        help="TARGET=PATH of that target's semantic_manifest.json")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    manifests = {k: Path(v) for k, v in (m.split("=", 1) for m in args.manifest)}
    results: dict[str, dict[str, tuple[float, float]]] = {}
    for target in args.targets.split(","):
        print(f"{target}...", file=sys.stderr)
        try:
            results[target] = measure(target, manifests.get(target), args.repeat)
        except TallyError as e:
            print(f"  {target}: skipped ({e.code}: {e.message})", file=sys.stderr)
    if not results:
        return 2
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
