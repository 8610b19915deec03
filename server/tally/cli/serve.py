"""`tally serve`: every transport over one service, through the composition root
(tally.server)."""

from __future__ import annotations

import argparse

from tally.cli.common import project_flags
from tally.logs import LEVELS


def register(sub: argparse._SubParsersAction) -> None:
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
    s.add_argument(
        "--pg-port",
        type=int,
        default=None,
        help="also serve the PostgreSQL wire protocol (SQL over metrics: psql, JDBC, BI tools) "
        "on this port (env TALLY_PG_PORT; default: off)",
    )
    s.add_argument("--log-level", default=None, choices=LEVELS,
                   help="tally's own lines (env TALLY_LOG_LEVEL; default info); debug also "
                   "shows MetricFlow's and dbt's")  # fmt: skip
    s.add_argument(
        "--insecure",
        action="store_true",
        help="serve without authentication on a non-loopback address (anyone who reaches the "
        "port may query everything; logged loudly)",
    )
    s.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
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
        pg_port=args.pg_port,
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
