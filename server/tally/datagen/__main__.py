"""``python -m tally.datagen --seed 42 --scale 1 --out dbt_project/warehouse.duckdb``"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tally.datagen.generator import generate


def parser(prog: str = "python -m tally.datagen") -> argparse.ArgumentParser:
    """The generator's arguments (`tally generate` passes its own to it; the CLI reference of
    the docs is written from this parser)."""
    parser = argparse.ArgumentParser(
        prog=prog,
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
        help="write into this target of the dbt profile instead of --out, as its engine "
        "declares: a duckdb target's file directly; postgres and spark targets get schema raw "
        "(the data is generated in DuckDB, then copied)",
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
    return parser


def main(argv: list[str] | None = None, prog: str = "python -m tally.datagen") -> int:
    args = parser(prog).parse_args(argv)
    from tally.datagen.anomalies import inject, parse_anomalies

    anomalies = parse_anomalies(args.anomalies)  # a bad spec fails before generating

    # The DuckDB file generated into (None: a scratch one, then loaded into the warehouse).
    into: Path | None = args.out
    load = None
    where = str(args.out)
    if args.target:
        from tally.project import read_profile_target
        from tally.service.engines import engine_of_output

        output = read_profile_target(args.project_dir, args.project_dir, args.target)
        engine = engine_of_output(output)
        if engine.demo_target is None:
            raise ValueError(f"cannot write raw data into a {output.get('type')!r} warehouse")
        target = engine.demo_target(output, args.project_dir)  # checks it answers: fail fast
        into, load, where = target.file, target.load, target.where
    with tempfile.TemporaryDirectory() as tmp:
        out = into or Path(tmp) / "generated.duckdb"
        out.parent.mkdir(parents=True, exist_ok=True)
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
            progress=_say,
        )
        if anomalies:
            inject(out, anomalies, args.anomaly_day or args.end, progress=_say)
        if load is not None:
            load(out, _say)
    total = sum(counts.values())
    summary = ", ".join(f"{table}={rows:,}" for table, rows in counts.items())
    print(f"done: {total:,} rows in {time.perf_counter() - t0:.2f}s ({summary})")
    return 0


def _say(message: str) -> None:
    print("  " + message, flush=True)


if __name__ == "__main__":
    sys.exit(main())
