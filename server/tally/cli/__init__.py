"""The `tally` command: a thin adapter over TallyService (and the data generator). Each module
of this package registers its subcommands (`register(sub)`) and handles them; this one parses
and maps errors to exit codes.

Exit codes: 0 success, 1 a server-side or warehouse fault, 2 the caller's mistake (bad flags,
unknown metric, invalid filter, a --project-dir or --target that does not exist...). Errors are
one line on stderr, never a traceback (set TALLY_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from tally.errors import CallerError, ConfigurationError, TallyError


def __getattr__(name: str) -> object:
    if name == "FORMATS":  # `tally query --format` choices (cli/queries.py), loaded lazily
        from tally.cli.queries import FORMATS

        return FORMATS
    raise AttributeError(name)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["generate"]:
        # The generator has its own argument parser (also `python -m tally.datagen`).
        argv = ["generate", "--", *argv[1:]]
    argv = _attach_descending_order(argv)
    root = parser()
    args, extra = root.parse_known_args(argv)
    if extra and args.command != "build":
        root.error(f"unrecognized arguments: {' '.join(extra)}")
    args.dbt_args = [a for a in extra if a != "--"]
    if args.command != "serve":
        # MetricFlow logs the tracebacks of queries it cannot plan; tally reports them as one
        # line (TALLY_DEBUG=1 shows them).
        import logging

        for name in ("metricflow", "metricflow_semantics", "dbt_semantic_interfaces"):
            logging.getLogger(name).setLevel(
                logging.DEBUG if os.environ.get("TALLY_DEBUG") else logging.CRITICAL
            )
    try:
        return int(args.handler(args) or 0)
    except TallyError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 2 if isinstance(e, CallerError | ConfigurationError) else 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # the last line of defence: one line, not a traceback
        if os.environ.get("TALLY_DEBUG"):
            traceback.print_exc()
        print(
            f"internal error: {type(e).__name__}: {e} (TALLY_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1


def _attach_descending_order(argv: list[str]) -> list[str]:
    """`--order-by -revenue` (the documented spelling): argparse would read -revenue as an option,
    so the value is attached as `--order-by=-revenue` before parsing."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--order-by" and i + 1 < len(argv) and argv[i + 1].startswith("-") \
                and not argv[i + 1].startswith("--"):
            out.append(f"--order-by={argv[i + 1]}")
            i += 2
            continue
        out.append(token)
        i += 1
    return out


def parser() -> argparse.ArgumentParser:
    """Every subcommand, each registered by its module (`register(sub)`), in this order."""
    from tally.cli import admin, generate, mcp, queries, refresh, rollups, serve, validate

    root = argparse.ArgumentParser(
        prog="tally", description="Self-hosted semantic layer and metrics API server."
    )
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (queries, serve, refresh, generate, rollups, validate, admin, mcp):
        module.register(sub)
    return root


_parser = parser  # the name tests and tools have used
