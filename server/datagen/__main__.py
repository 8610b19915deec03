"""``python -m server.datagen --seed 42 --scale 1 --out dbt_project/warehouse.duckdb``"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from server.datagen.generator import generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m server.datagen",
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
    args = parser.parse_args(argv)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    print(
        f"generating raw data into {args.out} (seed={args.seed}, scale={args.scale:g}, "
        f"{args.start}..{args.end})",
        flush=True,
    )
    t0 = time.perf_counter()
    counts = generate(
        args.out,
        seed=args.seed,
        scale=args.scale,
        start=args.start,
        end=args.end,
        progress=lambda msg: print("  " + msg, flush=True),
    )
    total = sum(counts.values())
    summary = ", ".join(f"{table}={rows:,}" for table, rows in counts.items())
    print(f"done: {total:,} rows in {time.perf_counter() - t0:.2f}s ({summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
