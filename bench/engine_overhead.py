"""In process, side by side: DuckDB running MetricFlow's SQL directly vs tally's service
(compile from the compiled-SQL cache + execute + type shaping, result cache off), tally with
a cold compile, and a tally cache hit.

    .venv/bin/python bench/engine_overhead.py [--repeat 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tally.core.caller import Caller  # noqa: E402
from tally.core.request import QueryRequest  # noqa: E402
from tally.service import TallyService  # noqa: E402
from tally.settings import Settings  # noqa: E402

QUERIES = {
    "revenue by month": dict(metrics=["revenue"], group_by=["metric_time__month"]),
    "KPIs by month x country": dict(
        metrics=["revenue", "order_count", "average_order_value", "active_customers"],
        group_by=["metric_time__month", "customer__country"]),
    "gross margin % by category": dict(metrics=["gross_margin_pct"],
                                       group_by=["metric_time__quarter", "product__category"]),
    "retention grid": dict(metrics=["retention_rate"],
                           group_by=["cohort__cohort_month", "cohort__period_number"]),
    "repeat purchase rate by month": dict(metrics=["repeat_purchase_rate_90d"],
                                          group_by=["metric_time__month"]),
}


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    db = ROOT / "dbt_project" / "warehouse.duckdb"
    if not db.exists():
        print("run `make warehouse` first", file=sys.stderr)
        return 2
    settings = Settings(project_dir=ROOT / "dbt_project")
    uncached = TallyService(settings.model_copy(update={"cache_enabled": False}))
    cached = TallyService(settings)
    con = duckdb.connect(str(db), read_only=True)
    caller = Caller.local("bench")
    print(f"{'query':32}{'duckdb':>9}{'tally':>9}{'ratio':>7}{'cold':>9}{'hit':>8}{'miss/hit':>9}")
    ratios = []
    for name, q in QUERIES.items():
        request = QueryRequest.create(**q)
        sql = uncached.compile(request, caller).sql
        raw = median_ms(lambda sql=sql: con.sql(sql).to_arrow_table(), args.repeat)
        warm = median_ms(lambda r=request: uncached.query(r, caller), args.repeat)

        def cold(r=request) -> None:
            uncached.compiler._sql_cache.clear()
            uncached.query(r, caller)

        cold_ms = median_ms(cold, max(3, args.repeat // 3))
        cached.query(request, caller)
        hit = median_ms(lambda r=request: cached.query(r, caller), args.repeat)
        ratios.append(warm / raw)
        print(f"{name:32}{raw:9.2f}{warm:9.2f}{warm / raw:6.2f}x{cold_ms:9.2f}{hit:8.3f}"
              f"{warm / hit:8.0f}x", flush=True)
    print(f"(ms, medians of {args.repeat}; tally = service with result cache off, compiled SQL "
          f"cached; cold = MetricFlow compile each time; hit = result cache hit)")
    print(f"tally / duckdb overhead, median over queries: {statistics.median(ratios):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
