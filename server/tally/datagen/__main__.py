"""``python -m tally.datagen --seed 42 --scale 1 --out dbt_project/warehouse.duckdb``"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tally.datagen.generator import generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tally.datagen",
        description="(Re)create schema raw in a DuckDB file with deterministic fake shop data.",
    )
    parser.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="1.0 = 10,000 customers; customers and orders grow linearly (default: 1.0)",
    )
    parser.add_argument("--start", default="2022-01-01", help="first day of history")
    parser.add_argument("--end", default="2025-12-31", help="last day of history")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("dbt_project/warehouse.duckdb"),
        help="DuckDB file to write (default: dbt_project/warehouse.duckdb)",
    )
    parser.add_argument(
        "--target",
        default=None,
        help="write into this target of the dbt profile instead of --out: a postgres target "
        "gets schema raw in its database (the data is generated in DuckDB, then copied)",
    )
    parser.add_argument(
        "--project-dir",
        type=Path,
        default=Path("dbt_project"),
        help="the dbt project whose profiles.yml names --target (default: dbt_project)",
    )
    parser.add_argument(
        "--anomalies",
        action="append",
        default=[],
        help="inject anomalies for the monitors to catch, comma-separated: half_day[:DATE], "
        "country_stops:<CC>[:DAYS], stale:<customers|orders>[:DAYS] (see tally.datagen.anomalies)",
    )
    parser.add_argument(
        "--anomaly-day",
        default=None,
        help="the day the anomalies are relative to (default: --end)",
    )
    args = parser.parse_args(argv)
    from tally.datagen.anomalies import inject, parse_anomalies

    anomalies = parse_anomalies(args.anomalies)  # a bad spec fails before generating

    postgres = None
    spark = None  # a dbt-spark output: raw data goes into its SparkSession
    if args.target:
        from tally.project import read_profile_target

        output = read_profile_target(args.project_dir, args.project_dir, args.target)
        if output.get("type") == "duckdb":
            path = Path(str(output.get("path", "warehouse.duckdb")))
            args.out = path if path.is_absolute() else args.project_dir / path
        elif output.get("type") == "postgres":
            from tally.datagen.postgres_load import ping, postgres_args

            postgres = postgres_args(output)
            ping(postgres)  # before generating: fail fast
        elif output.get("type") == "spark":
            from tally.project import spark_session_paths

            spark = spark_session_paths(output, args.project_dir)
        else:
            raise ValueError(f"cannot write raw data into a {output.get('type')!r} warehouse")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "generated.duckdb" if postgres or spark else args.out
        out.parent.mkdir(parents=True, exist_ok=True)
        where = f"PostgreSQL database {postgres['dbname']!r}" if postgres else str(out)
        print(
            f"generating raw data into {where} (seed={args.seed}, scale={args.scale:g}, "
            f"{args.start}..{args.end})",
            flush=True,
        )
        t0 = time.perf_counter()
        counts = generate(
            out,
            seed=args.seed,
            scale=args.scale,
            start=args.start,
            end=args.end,
            progress=lambda msg: print("  " + msg, flush=True),
        )
        if anomalies:
            inject(out, anomalies, args.anomaly_day or args.end,
                   progress=lambda msg: print("  " + msg, flush=True))
        if postgres:
            from tally.datagen.postgres_load import copy_raw_to_postgres

            copy_raw_to_postgres(out, postgres, progress=lambda msg: print("  " + msg, flush=True))
        if spark:
            from tally.datagen.spark_load import load_raw_into_spark

            load_raw_into_spark(out, spark, progress=lambda msg: print("  " + msg, flush=True))
    total = sum(counts.values())
    summary = ", ".join(f"{table}={rows:,}" for table, rows in counts.items())
    print(f"done: {total:,} rows in {time.perf_counter() - t0:.2f}s ({summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
