"""`tally generate`: the demo's raw data (tally.datagen, which has its own argument parser;
`python -m tally.datagen` is the same)."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser("generate", add_help=False,
                       help="generate the raw demo data into a DuckDB file (--help for options)")
    g.add_argument("args", nargs=argparse.REMAINDER)
    g.set_defaults(handler=_generate)


def _generate(args: argparse.Namespace) -> int:
    from tally.datagen.__main__ import main as generate_main

    rest = args.args[1:] if args.args[:1] == ["--"] else args.args
    try:
        return generate_main(rest, prog="tally generate")
    except ValueError as e:  # e.g. a scale of 0, an end before the start
        print(f"error: {e}", file=sys.stderr)
        return 2
