"""`tally rollups build`: materialise (or refresh) the project's rollups in the served warehouse,
with progress, and the lines `tally query --explain` / `tally compile` print about rollups.

`tally build` builds rollups itself (in the side copy before it is swapped in, or in place on
PostgreSQL); this command is for building them alone (after a `dbt build` run directly, or a
changed definition). On a DuckDB file it writes to the served file, so a running server must
be idle (like `dbt run`); on PostgreSQL each rollup is swapped in by one transaction while the
server serves. Other engines: an error naming the engine.
"""

from __future__ import annotations

import argparse
import time

from tally.cli.common import project_flags, service_of
from tally.core.results import RollupStatus


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("rollups", help="build the rollups (saved queries with cache enabled)")
    rsub = r.add_subparsers(dest="rollups_command", required=True)
    b = rsub.add_parser("build", help="build or refresh every rollup (changed partitions only)")
    project_flags(b)
    b.add_argument("--select", action="append", default=[],
                   help="comma-separated rollup (saved query) names; default: all")
    b.add_argument("--full", action="store_true", help="rebuild whole, not only changed partitions")
    b.set_defaults(handler=_cmd_build)


def _cmd_build(args: argparse.Namespace) -> int:
    from tally.core.request import split_csv

    service = service_of(args)
    started = time.perf_counter()
    reports = service.build_rollups(only=tuple(split_csv(args.select)), full=args.full,
                                    progress=_say)  # fmt: skip
    built = sum(r.action != "up to date" for r in reports)
    _say(f"{len(reports)} rollup(s), {built} built or refreshed, in "
         f"{time.perf_counter() - started:.1f} s")
    return 0


def _say(message: str) -> None:
    print(f"tally rollups: {message}", flush=True)


def explain_lines(status: RollupStatus | None) -> list[str]:
    """SQL comments: the rollup read, or for each rollup the first reason it did not fit."""
    if status is None:
        return ["-- rollup: routing is off (TALLY_ROLLUPS_ENABLED=false)"]
    lines = [f"-- rollup: {status.used}" if status.used else "-- rollup: none"]
    for name, reason in status.misses:
        lines.append(f"--   not {name}: {reason}")
    return lines
