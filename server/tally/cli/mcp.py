"""`tally mcp`: the MCP server over stdio, for a desktop assistant or IDE that launches it.
stdout carries the protocol only; logs go to stderr."""

from __future__ import annotations

import argparse
import os

from tally.cli.common import project_flags


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mcp", help="serve MCP (Model Context Protocol) tools over stdio")
    project_flags(p)
    p.add_argument(
        "--token",
        default=None,
        help="the API key or token whose access the agent gets (env TALLY_TOKEN; default: "
        "none, which the project's tally.yml may refuse)",
    )
    p.set_defaults(handler=_cmd_mcp)


def _cmd_mcp(args: argparse.Namespace) -> int:
    import logging
    import sys

    import anyio

    from tally.mcp.server import build_server
    from tally.service import TallyService
    from tally.settings import load_settings

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    settings = load_settings(
        project_dir=args.project_dir, profiles_dir=args.profiles_dir, target=args.target
    )
    settings.resolved_project_dir()  # a wrong --project-dir is one line now, not later
    service = TallyService(settings)
    token = args.token or os.environ.get("TALLY_TOKEN") or None
    # A bad token is the operator's mistake: one line and exit 2 now, not on every tool call.
    service.authenticate(token, transport="mcp")
    server = build_server(service, lambda: service.authenticate(token, transport="mcp"))
    try:
        anyio.run(server.run_stdio_async)
    finally:
        service.shutdown()
    return 0
