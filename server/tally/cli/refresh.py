"""`tally build` (the refresh pipeline), `tally monitor` and `tally history`: thin adapters
over tally.refresh, tally.monitor and tally.history.

`tally build` builds and swaps in, then, when TALLY_SERVER_URL names a running server, asks it
to refresh (invalidate, warm its cache, run the monitors); without one it runs the monitors
itself. Exit 1 when dbt fails (nothing served changed) or the server's refresh fails.
`tally monitor` exits 1 when any check alerts or fails (for cron and CI)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tally.cli.common import project_flags, service_of
from tally.errors import CallerError, ServerFault


def register(sub: argparse._SubParsersAction) -> None:
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
    b.set_defaults(handler=cmd_build)
    m = sub.add_parser("monitor", help="run the monitors; exit 1 when any alerts")
    project_flags(m)
    m.add_argument("--format", choices=("table", "json"), default="table")
    m.add_argument("--as-of", default=None, help="latest complete day (default: the project's "
                   "as_of_date var, else yesterday)")
    m.set_defaults(handler=cmd_monitor)
    h = sub.add_parser("history", help="the most frequent or slowest query shapes")
    project_flags(h)
    h.add_argument("--order", choices=("frequent", "slow"), default="frequent")
    h.add_argument("--limit", type=int, default=20)
    h.add_argument("--hours", type=float, default=None, help="only shapes seen in the last N h")
    h.add_argument("--format", choices=("table", "json"), default="table")
    h.set_defaults(handler=cmd_history)


def _say(line: str) -> None:
    print(line, flush=True)


def cmd_build(args: argparse.Namespace) -> int:
    from tally.refresh.runtime import RefreshRuntime, build_step

    service = service_of(args)
    runtime = RefreshRuntime(service, history=False)
    server = service.settings.server_url
    if server:
        runtime.sources = []  # the server warms its own cache
        runtime.monitors = None  # type: ignore[assignment]  # ...and runs the monitors
    else:
        runtime.sources = []
        _say("refresh: no running server to warm (set TALLY_SERVER_URL to refresh one); a "
             "server started with TALLY_WARM_ON_START=true warms itself")
    try:
        step = build_step(service, args.dbt_args, args.vars, args.start_from)
        report = runtime.pipeline(_say).run(step)
        if report.ok and server:
            report.ok = _refresh_server(service.settings, server)
    finally:
        delivered = runtime.notifier.flush(service.settings.webhook_timeout_seconds * 3)
        if not delivered:
            print("warning: some notifications were not delivered yet", file=sys.stderr)
        runtime.notifier.close(1)
        service.shutdown()
    for stage in report.stages:
        _say(f"  {stage.name:<10} {stage.status:<7} {stage.seconds:7.1f} s  {stage.detail}")
    if not report.ok:
        print(f"error: {report.error or 'the server refresh failed'}", file=sys.stderr)
        return 1
    return 0


def _refresh_server(settings, url: str) -> bool:
    """POST /api/v1/refresh {"build": false} to the running server; print its stages."""
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/json"}
    if settings.admin_token is not None:
        headers["Authorization"] = f"Bearer {settings.admin_token.get_secret_value()}"
    request = urllib.request.Request(url.rstrip("/") + "/api/v1/refresh", method="POST",
                                     data=b'{"build": false}', headers=headers)  # fmt: skip
    _say(f"refresh: asking the server at {url} to invalidate, warm and monitor...")
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as e:
        print(f"error: the server refused the refresh: HTTP {e.code} {e.read()[:300]!r}",
              file=sys.stderr)  # fmt: skip
        return False
    except (urllib.error.URLError, OSError) as e:
        print(f"error: cannot reach the server at {url}: {getattr(e, 'reason', e)}",
              file=sys.stderr)  # fmt: skip
        return False
    for stage in body.get("stages", []):
        _say(f"  server {stage['name']:<10} {stage['status']:<7} {stage['seconds']:7.1f} s  "
             f"{stage['detail']}")
    return bool(body.get("ok"))


def cmd_monitor(args: argparse.Namespace) -> int:
    import datetime as dt

    from tally.monitor.runner import MonitorRunner
    from tally.notify import Notifier, load_notify_config

    as_of = None
    if args.as_of:
        try:
            as_of = dt.date.fromisoformat(args.as_of)
        except ValueError:
            raise CallerError(f"--as-of {args.as_of!r}: not a date (YYYY-MM-DD).") from None
    service = service_of(args, as_of_date=as_of)
    notifier = Notifier(load_notify_config(service.settings.resolved_project_dir()),
                        service.settings)  # fmt: skip
    try:
        results = MonitorRunner(service, notifier).run()
    finally:
        notifier.close(service.settings.webhook_timeout_seconds * 3)
        service.shutdown()
    if args.format == "json":
        print(json.dumps([r.to_dict() for r in results], indent=2, default=str))
    else:
        import pyarrow as pa

        from tally.core.encoding import to_text_table

        table = pa.table({
            "status": [r.status.upper() for r in results],
            "monitor": [r.key for r in results],
            "type": [r.type for r in results],
            "message": [r.message for r in results],
        })  # fmt: skip
        print(to_text_table(table, max_rows=100_000))
        bad = [r for r in results if r.status in ("alert", "error")]
        print(f"{len(results)} checks, {len(bad)} alerting or failing", file=sys.stderr)
    return 1 if any(r.status in ("alert", "error") for r in results) else 0


def cmd_history(args: argparse.Namespace) -> int:
    from tally.history import HISTORY_FILE, QueryHistory
    from tally.settings import load_settings

    settings = load_settings(project_dir=args.project_dir, profiles_dir=args.profiles_dir,
                             target=args.target)  # fmt: skip
    path: Path = settings.resolved_project_dir() / HISTORY_FILE
    if not path.exists():
        raise ServerFault(f"No query history yet at {path}: a server records it as it answers.")
    history = QueryHistory(path, settings.history_max_shapes, flush_seconds=0)
    try:
        shapes = history.shapes(args.order, args.limit, args.hours)
    finally:
        history.close()
    if args.format == "json":
        print(json.dumps([s.to_dict() for s in shapes], indent=2))
        return 0
    import pyarrow as pa

    from tally.core.encoding import to_text_table

    def describe(request: dict) -> str:
        if request.get("saved_query"):
            return f"saved query {request['saved_query']}"
        text = ",".join(request["metrics"]) + " by " + (",".join(request["group_by"]) or "-")
        return text if len(text) <= 70 else text[:67] + "..."

    print(to_text_table(pa.table({
        "shape": [describe(s.request) for s in shapes],
        "count": [s.count for s in shapes],
        "last_seen": [s.last_seen for s in shapes],
        "median_ms": [s.median_ms for s in shapes],
        "p95_ms": [s.p95_ms for s in shapes],
        "cache_hit_ratio": [s.cache_hit_ratio for s in shapes],
        "hint": ["rollup candidate" if s.rollup_candidate else "" for s in shapes],
    }), max_rows=100_000))  # fmt: skip
    return 0
