"""Speed at scale, side by side in one run, for each tile of the demo dashboard:

  duckdb    DuckDB running MetricFlow's SQL directly (same file, same memory limit)
  no-rollup tally, result cache off, routing off: compile (cached) + execute + shaping
  rollup    tally, result cache off, routing on: the same question from a rollup
  hit       tally, a result-cache hit

plus the rollups' build time and size, and MetricFlow's compile time for one query of every
metric against tally's compiled-SQL cache for the repeat (bench/compile_many.py measures that
with 50+ metrics, cold and warm).

    make warehouse SCALE=1370            # ~100 million order items
    .venv/bin/tally rollups build        # or `tally build` (builds them after dbt)
    .venv/bin/python bench/scale.py [--repeat 3] [--project-dir dbt_project] [--build]

Every tally timing is a cache miss unless it says hit: 'cold' is a fresh warehouse query.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import duckdb
from compile_many import compile_every_metric

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tally.core.request import QueryRequest  # noqa: E402
from tally.errors import QueryTimeout  # noqa: E402
from tally.service import TallyService  # noqa: E402
from tally.settings import Settings  # noqa: E402

TILES = {
    "revenue by month": dict(metrics=["revenue"], group_by=["metric_time__month"]),
    "KPIs by month x country": dict(
        metrics=["revenue", "order_count", "average_order_value"],
        group_by=["metric_time__month", "customer__country"]),
    "margin by category": dict(metrics=["gross_margin", "gross_margin_pct"],
                               group_by=["product__category"]),
    "retention grid": dict(metrics=["retention_rate"],
                           group_by=["cohort__cohort_month__month", "cohort__period_number"]),
    "repeat-purchase rate": dict(metrics=["repeat_purchase_rate_90d"],
                                 group_by=["metric_time__month"]),
    "cumulative revenue by country": dict(metrics=["cumulative_revenue"],
                                          group_by=["metric_time__month", "customer__country"]),
}


# A run slower than this is not repeated (the median of one): at 100 million rows MetricFlow's
# SQL for some tiles takes minutes.
REPEAT_UNDER_SECONDS = 20.0


def median_ms(fn, repeat: int) -> float | None:
    """Median wall time in ms, or None when a run went over the budget (it was stopped)."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        try:
            fn()
        except (QueryTimeout, duckdb.InterruptException):
            return None
        times.append(time.perf_counter() - t)
        if times[-1] > REPEAT_UNDER_SECONDS:
            break
    return statistics.median(times) * 1000


def run_within(con: duckdb.DuckDBPyConnection, sql: str, budget: float) -> None:
    """DuckDB runs the SQL; interrupted once the budget is spent, as tally's timeout does."""
    timer = threading.Timer(budget, con.interrupt)
    timer.start()
    try:
        con.sql(sql).to_arrow_table()
    finally:
        timer.cancel()


def fmt_ms(ms: float | None, budget: float) -> str:
    return f">{budget:.0f}s" if ms is None else f"{ms:.1f}ms"


def ratio(a: float | None, b: float | None, digits: int) -> str:
    return "n/a" if a is None or b is None else f"{a / b:.{digits}f}x"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--project-dir", type=Path, default=ROOT / "dbt_project")
    parser.add_argument("--build", action="store_true", help="(re)build the rollups first")
    parser.add_argument("--budget", type=float, default=600.0,
                        help="seconds one query may run before it is stopped (default 600)")
    parser.add_argument("--tile", action="append", default=[],
                        help="only the tiles whose name contains this (repeatable)")
    args = parser.parse_args()
    settings = Settings(project_dir=args.project_dir, query_timeout_seconds=args.budget)
    plain = TallyService(settings.model_copy(update={"cache_enabled": False,
                                                     "rollups_enabled": False}))
    routed = TallyService(settings.model_copy(update={"cache_enabled": False}))
    cached = TallyService(settings)
    output = plain.profile_output()
    db = plain.engine.data_file(output, settings.resolved_project_dir())
    if db is None or not db.exists():
        print("run `make warehouse` first (a DuckDB file)", file=sys.stderr)
        return 2
    target = settings.resolved_manifest_path().parent
    if args.build:
        from tally.rollups.build import build_rollups, open_writer

        writer = open_writer(plain.engine, output, settings.resolved_project_dir())
        try:
            build_rollups(plain.compiler, writer, target, full=True,
                          progress=lambda m: print(f"  build: {m}", flush=True))
        finally:
            writer.close()
    con = duckdb.connect(str(db), read_only=True)
    limit = (output.get("settings") or {}).get("memory_limit")
    if limit:
        con.execute(f"SET memory_limit = '{limit}'")
    rows = con.execute("select count(*) from raw.order_items").fetchone()[0]
    print(f"warehouse {db} ({db.stat().st_size / 1e9:.1f} GB): {rows:,} order items; "
          f"median of {args.repeat}\n")
    _rollup_sizes(con)
    print(f"\n{'tile':30}{'duckdb':>10}{'no-rollup':>11}{'ratio':>7}{'rollup':>10}"
          f"{'speedup':>9}{'hit':>9}  rollup used")
    slow = []
    for name, params in TILES.items():
        if args.tile and not any(part in name for part in args.tile):
            continue
        request = QueryRequest.create(**params)
        sql = plain.compile(request).sql
        routed.compile(request)  # its rewritten SQL compiled once, as for the others
        direct = median_ms(lambda sql=sql: run_within(con, sql, args.budget), args.repeat)
        no_rollup = median_ms(lambda r=request: plain.query(r), args.repeat)
        via = median_ms(lambda r=request: routed.query(r), args.repeat)
        used = routed.query(request).rollup if via is not None else None
        hit = median_ms(lambda r=request: cached.query(r), 1)  # fills the cache
        if hit is not None:
            hit = median_ms(lambda r=request: cached.query(r), max(args.repeat, 20))
        if direct is None or no_rollup is None:
            slow.append((name, sql))
        speedup = ratio(no_rollup, via, 0)
        if no_rollup is None and via is not None:  # the budget is a lower bound of no-rollup
            speedup = f">{args.budget * 1000 / via:.0f}x"
        shown_hit = fmt_ms(hit, args.budget) if hit is None else f"{hit:.2f}ms"
        print(f"{name:30}{fmt_ms(direct, args.budget):>10}{fmt_ms(no_rollup, args.budget):>11}"
              f"{ratio(no_rollup, direct, 2):>7}{fmt_ms(via, args.budget):>10}{speedup:>9}"
              f"{shown_hit:>9}  {(used.used if used else None) or 'none'}", flush=True)
    for name, sql in slow:
        _where_the_time_goes(con, name, sql)
    compile_every_metric(plain)
    return 0


def _where_the_time_goes(con: duckdb.DuckDBPyConnection, name: str, sql: str) -> None:
    """The plan of a tile that ran over the budget: its joins and scans with DuckDB's estimated
    rows (MetricFlow's SQL for a cumulative metric joins every row to every later day of the
    time spine, then aggregates)."""
    plan = json.loads(con.execute(f"EXPLAIN (FORMAT JSON) {sql}").fetchall()[0][1])
    print(f"\n{name}: over the budget. DuckDB's plan for MetricFlow's SQL, joins and scans "
          "with estimated rows:")

    def walk(node: dict, depth: int) -> None:
        kind = node.get("name", "")
        info = node.get("extra_info") or {}
        if "JOIN" in kind or "SCAN" in kind:
            what = info.get("Table") or info.get("Join Type") or ""
            rows = info.get("Estimated Cardinality", "?")
            print(f"  {'  ' * depth}{kind} {what}: ~{rows} rows")
            depth += 1
        for child in node.get("children", []):
            walk(child, depth)

    for root in plan:
        walk(root, 0)


def _rollup_sizes(con: duckdb.DuckDBPyConnection) -> None:
    try:
        built = con.execute("select rollup, row_count, build_seconds, relation "
                            "from tally_rollups.registry order by rollup").fetchall()
    except duckdb.Error:
        print("no rollups built (tally rollups build, or --build)")
        return
    print(f"{'rollup':32}{'rows':>12}{'build':>10}{'size':>10}")
    for name, count, seconds, relation in built:
        size = con.sql(f"select * from {relation}").to_arrow_table().nbytes
        print(f"{name:32}{count:>12,}{seconds:>9.1f}s{size / 1e6:>8.1f}MB")


if __name__ == "__main__":
    raise SystemExit(main())
