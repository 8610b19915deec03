"""`tally query`, `tally compile` and `tally list`: questions to the semantic layer from the
terminal, as the CLI's caller (every scope)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from tally.cli.common import CLI, project_flags, query_flags, request_of, service_of
from tally.core import formats

FORMATS = ("table", *formats.names())  # the terminal's table, then core/formats.py's


def register(sub: argparse._SubParsersAction) -> None:
    q = sub.add_parser("query", help="run a metric query")
    query_flags(q)
    q.add_argument("--format", choices=FORMATS, default="table")
    q.add_argument("--explain", action="store_true", help="print the SQL instead of running it")
    q.add_argument(
        "--output",
        type=Path,
        default=None,
        help="stream the whole result (no row limit) to FILE: "
        f"{formats.listed(formats.extensions(formats.exports()))} "
        f"(or --format {'|'.join(formats.names(formats.exports()))})",
    )
    q.set_defaults(handler=_query)

    c = sub.add_parser("compile", help="print the SQL of a metric query")
    query_flags(c)
    c.set_defaults(handler=_compile)

    lst = sub.add_parser("list", help="list metrics, dimensions, entities or saved queries")
    project_flags(lst)
    lst.add_argument("what", choices=("metrics", "dimensions", "entities", "saved-queries"))
    lst.add_argument(
        "--metrics", action="append", default=[], help="only what these metrics can be grouped by"
    )
    lst.add_argument("--format", choices=("table", "json"), default="table")
    lst.set_defaults(handler=_list)


def _query(args: argparse.Namespace) -> int:
    from tally.core import encoding

    request = request_of(args)
    service = service_of(args)
    if args.explain:
        print(_explained(service.compile(request, CLI)))
        return 0
    if args.output is not None:
        from tally.cli.output import export_to_file

        return export_to_file(service, request, CLI, args.output, args.format)
    result = service.query(request, CLI)
    if args.format != "table":  # a format of core/formats.py
        from tally.cli.output import print_result

        return print_result(result, args.format)
    print(encoding.to_text_table(result.table))
    t = result.timing
    print(
        f"compile {t.compile_ms:.1f} ms, execute {t.execute_ms:.1f} ms, "
        f"total {t.total_ms:.1f} ms",
        file=sys.stderr,
    )
    return 0


def _compile(args: argparse.Namespace) -> int:
    print(_explained(service_of(args).compile(request_of(args), CLI)))
    return 0


def _explained(compiled) -> str:
    """The SQL, preceded by which rollup it reads or, for each rollup, why it could not."""
    from tally.cli.rollups import explain_lines

    return "\n".join([*explain_lines(compiled.rollup), compiled.sql])


def _list(args: argparse.Namespace) -> int:
    from tally.core.request import split_csv

    service = service_of(args)
    metrics = tuple(split_csv(args.metrics))
    items: Sequence[object]
    if args.what == "metrics":
        items = service.list_metrics(CLI)
        columns = ("name", "type", "label", "description")
    elif args.what == "dimensions":
        items = service.list_dimensions(metrics, CLI)
        columns = ("name", "type", "grains", "label", "description")
    elif args.what == "entities":
        items = service.list_entities(metrics, CLI)
        columns = ("name", "type", "label", "description")
    else:
        items = service.list_saved_queries(CLI)
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
