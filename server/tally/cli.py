"""The `tally` command: a thin adapter over TallyService (and the data generator).

Exit codes: 0 success, 1 a server-side or warehouse fault, 2 the caller's mistake (bad flags,
unknown metric, invalid filter, a --project-dir or --target that does not exist...). Errors are
one line on stderr, never a traceback (set TALLY_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from tally.core import formats
from tally.core.caller import Caller
from tally.errors import CallerError, ConfigurationError, TallyError

FORMATS = ("table", *formats.names())  # the terminal's table, then core/formats.py's

_CLI = Caller.local("cli")  # the CLI runs beside the project, with its files


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["generate"]:
        # The generator has its own argument parser (also `python -m tally.datagen`).
        argv = ["generate", "--", *argv[1:]]
    argv = _attach_descending_order(argv)
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "build":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
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
    """`--order-by -revenue` (DESIGN.md's spelling): argparse would read -revenue as an option,
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tally", description="Self-hosted semantic layer and metrics API server."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def project_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--project-dir",
            type=Path,
            default=None,
            help="dbt project folder (env TALLY_PROJECT_DIR or DBT_PROJECT_DIR; default: the "
            "current folder if it holds dbt_project.yml, else ./dbt_project)",
        )
        p.add_argument(
            "--profiles-dir",
            type=Path,
            default=None,
            help="folder of profiles.yml (env DBT_PROFILES_DIR; default: the project folder, "
            "then ~/.dbt)",
        )
        p.add_argument(
            "--target", default=None, help="dbt profile target (env TALLY_TARGET or DBT_TARGET)"
        )

    def query_flags(p: argparse.ArgumentParser) -> None:
        project_flags(p)
        p.add_argument(
            "--metrics", action="append", default=[], help="comma-separated metric names"
        )
        p.add_argument(
            "--group-by",
            action="append",
            default=[],
            help="comma-separated dimensions, e.g. metric_time__month,<entity>__<dimension>",
        )
        p.add_argument(
            "--where",
            action="append",
            default=[],
            help="filter, e.g. \"{{ Dimension('<entity>__<dimension>') }} = 'value'\" (repeatable)",
        )
        p.add_argument(
            "--order-by",
            action="append",
            default=[],
            help="comma-separated; prefix '-' for descending, e.g. -<metric>",
        )
        p.add_argument("--limit", default=None, help="most rows to return")
        p.add_argument("--saved-query", default=None, help="run a saved query by name")
        p.add_argument("--start", default=None, help="first metric_time to include (ISO date)")
        p.add_argument("--end", default=None, help="last metric_time to include (ISO date)")

    q = sub.add_parser("query", help="run a metric query")
    query_flags(q)
    q.add_argument("--format", choices=FORMATS, default="table")
    q.add_argument("--explain", action="store_true", help="print the SQL instead of running it")
    q.add_argument(
        "--output",
        type=Path,
        default=None,
        help=f"stream the whole result (no row limit) to FILE: "
        f"{formats.listed(formats.extensions(formats.exports()))} "
        f"(or --format {'|'.join(formats.names(formats.exports()))})",
    )
    q.set_defaults(handler=_cmd_query)

    c = sub.add_parser("compile", help="print the SQL of a metric query")
    query_flags(c)
    c.set_defaults(handler=_cmd_compile)

    lst = sub.add_parser("list", help="list metrics, dimensions, entities or saved queries")
    project_flags(lst)
    lst.add_argument("what", choices=("metrics", "dimensions", "entities", "saved-queries"))
    lst.add_argument(
        "--metrics", action="append", default=[], help="only what these metrics can be grouped by"
    )
    lst.add_argument("--format", choices=("table", "json"), default="table")
    lst.set_defaults(handler=_cmd_list)

    s = sub.add_parser("serve", help="serve the REST and GraphQL API")
    project_flags(s)
    s.add_argument("--host", default=None, help="default 127.0.0.1 (env TALLY_HOST)")
    s.add_argument("--port", type=int, default=None, help="default 8080 (env TALLY_PORT)")
    s.add_argument(
        "--flight-port",
        type=int,
        default=None,
        help="also serve Arrow Flight SQL (dbt Semantic Layer JDBC/ADBC clients) on this port "
        "(env TALLY_FLIGHT_PORT; default: off)",
    )
    s.add_argument("--log-level", default=None, choices=("debug", "info", "warning", "error"),
                   help="tally's own lines (env TALLY_LOG_LEVEL; default info); debug also "
                   "shows MetricFlow's and dbt's")
    s.add_argument(
        "--insecure",
        action="store_true",
        help="serve without authentication on a non-loopback address (anyone who reaches the "
        "port may query everything; logged loudly)",
    )
    s.set_defaults(handler=_cmd_serve)

    b = sub.add_parser(
        "build",
        help="rebuild safely while serving: dbt build + parse beside what is served, then "
        "swap in (other arguments go to dbt build: --select, --exclude, --full-refresh...)",
    )
    project_flags(b)
    b.add_argument("--vars", default=None, help="dbt vars (YAML), for dbt build and dbt parse")
    b.add_argument(
        "--from",
        dest="start_from",
        type=Path,
        default=None,
        help="DuckDB: start from this file (moved in) instead of a copy of the served one",
    )
    b.set_defaults(handler=_cmd_build)

    g = sub.add_parser("generate", add_help=False,
                       help="generate the raw demo data into a DuckDB file (--help for options)")
    g.add_argument("args", nargs=argparse.REMAINDER)
    g.set_defaults(handler=_cmd_generate)
    from tally.cli_admin import register as register_admin
    from tally.cli_refresh import register as register_refresh
    from tally.cli_rollups import register as register_rollups
    from tally.validate.cli import register

    register_rollups(sub, project_flags)
    register(sub)
    register_admin(sub, project_flags)
    from tally.mcp.cli import register as register_mcp

    register_mcp(sub, project_flags)
    register_refresh(sub, project_flags)
    return parser


def _service(args: argparse.Namespace):
    from tally.service import TallyService
    from tally.settings import load_settings

    settings = load_settings(
        project_dir=args.project_dir, profiles_dir=args.profiles_dir, target=args.target
    )
    settings.resolved_project_dir()  # a wrong --project-dir is one line now, not later
    return TallyService(settings)


def _request(args: argparse.Namespace):
    from tally.core.request import QueryRequest, split_csv

    return QueryRequest.create(
        metrics=split_csv(args.metrics),
        group_by=split_csv(args.group_by),
        where=args.where,
        order_by=split_csv(args.order_by),
        limit=args.limit,
        saved_query=args.saved_query,
        start=args.start,
        end=args.end,
    )


def _cmd_query(args: argparse.Namespace) -> int:
    from tally.core import encoding

    request = _request(args)
    service = _service(args)
    caller = _CLI
    if args.explain:
        print(_explained(service.compile(request, caller)))
        return 0
    if args.output is not None:
        from tally.cli_exports import export_to_file

        return export_to_file(service, request, caller, args.output, args.format)
    result = service.query(request, caller)

    if args.format != "table":  # a format of core/formats.py
        from tally.cli_exports import print_result

        return print_result(result, args.format)
    else:
        print(encoding.to_text_table(result.table))
        t = result.timing
        print(
            f"compile {t.compile_ms:.1f} ms, execute {t.execute_ms:.1f} ms, "
            f"total {t.total_ms:.1f} ms",
            file=sys.stderr,
        )
    return 0


def _cmd_compile(args: argparse.Namespace) -> int:
    print(_explained(_service(args).compile(_request(args), _CLI)))
    return 0


def _explained(compiled) -> str:
    """The SQL, preceded by which rollup it reads or, for each rollup, why it could not."""
    from tally.cli_rollups import explain_lines

    return "\n".join([*explain_lines(compiled.rollup), compiled.sql])


def _cmd_list(args: argparse.Namespace) -> int:
    from tally.core.request import split_csv

    service = _service(args)
    metrics = tuple(split_csv(args.metrics))
    items: Sequence[object]
    if args.what == "metrics":
        items = service.list_metrics(_CLI)
        columns = ("name", "type", "label", "description")
    elif args.what == "dimensions":
        items = service.list_dimensions(metrics, _CLI)
        columns = ("name", "type", "grains", "label", "description")
    elif args.what == "entities":
        items = service.list_entities(metrics, _CLI)
        columns = ("name", "type", "label", "description")
    else:
        items = service.list_saved_queries(_CLI)
        columns = ("name", "metrics", "group_by", "description")
    rows = [asdict(i) for i in items]  # type: ignore[call-overload]
    if args.format == "json":
        print(json.dumps(rows, indent=2, default=str))
        return 0
    import pyarrow as pa

    from tally.core.encoding import to_text_table

    def cell(v: object) -> str:
        text = ", ".join(v) if isinstance(v, tuple | list) else str(v)
        return text if len(text) <= 70 else text[:67] + "..."

    table = pa.table({c: [cell(r[c]) for r in rows] for c in columns})
    print(to_text_table(table, max_rows=10_000))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from tally import logs
    from tally.project import read_profile_target
    from tally.server import serve
    from tally.settings import load_settings

    settings = load_settings(
        project_dir=args.project_dir,
        profiles_dir=args.profiles_dir,
        target=args.target,
        host=args.host,
        port=args.port,
        flight_port=args.flight_port,
    )
    # A wrong project folder, profile or target is the caller's mistake: say so now (exit 2),
    # not as a server that never gets ready. A missing manifest is not: the server starts,
    # answers /health/ready with 503, and picks the manifest up when dbt parse writes it.
    output = read_profile_target(
        settings.resolved_project_dir(), settings.resolved_profiles_dir(), settings.target
    )
    log_level = logs.configure(args.log_level)
    banner = (f"{settings.resolved_project_dir()} (target {output['target_name']}, "
              f"{output.get('type')}) ")  # fmt: skip
    return serve(settings, insecure=args.insecure, log_level=log_level, banner=banner)


def _cmd_build(args: argparse.Namespace) -> int:
    from tally.cli_refresh import cmd_build  # the refresh pipeline: build, swap, warm, notify

    return cmd_build(args)


def _cmd_generate(args: argparse.Namespace) -> int:
    from tally.datagen.__main__ import main as generate_main

    rest = args.args[1:] if args.args[:1] == ["--"] else args.args
    try:
        return generate_main(rest)
    except ValueError as e:  # e.g. a scale of 0, an end before the start
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
