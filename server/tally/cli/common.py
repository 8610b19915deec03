"""What every `tally` subcommand shares: the project flags, the query flags, the service and
the request built from them, and the CLI's caller. A subcommand module registers its parsers
with `register(sub)` and reads these; `tally/cli/__init__.py` lists the modules."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tally.core.caller import Caller

# The CLI runs beside the project, with its files: every scope, no policy.
CLI = Caller.local("cli")


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
    p.add_argument("--metrics", action="append", default=[], help="comma-separated metric names")
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


def settings_of(args: argparse.Namespace, **extra: Any):
    """The settings of the project the flags name; a wrong --project-dir is one line now."""
    from tally.settings import load_settings

    settings = load_settings(project_dir=args.project_dir, profiles_dir=args.profiles_dir,
                             target=args.target, **extra)  # fmt: skip
    settings.resolved_project_dir()
    return settings


def service_of(args: argparse.Namespace, **extra: Any):
    """The service over the project the flags name."""
    from tally.service import TallyService

    return TallyService(settings_of(args, **extra))


def request_of(args: argparse.Namespace):
    """The query the query flags describe."""
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
