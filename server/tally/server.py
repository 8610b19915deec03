"""The composition root: builds the service and starts every transport over it, each an equal,
independent sibling that knows nothing of the others:

* the HTTP app (tally.api: REST, GraphQL, the dbt Semantic Layer's GraphQL API, dashboards),
  with MCP's streamable HTTP endpoint mounted at /mcp (tally.mcp);
* Arrow Flight SQL on its own port (tally.flight), when asked for;
* the PostgreSQL wire protocol on its own port (tally.pgwire), when asked for;
* the refresh runtime (tally.refresh: monitors, history, notifications, cache warming).

`tally serve` calls `serve`; tests and embedders call `create_app` for the same app without a
process of its own. A new transport is started here, nowhere else."""

from __future__ import annotations

import ipaddress
import logging
import sys
from collections.abc import Callable, Sequence

from fastapi import FastAPI

from tally.api.app import Hook, create_api
from tally.api.serve import serve as run_http
from tally.errors import ConfigurationError
from tally.mcp.http import mount as mount_mcp
from tally.refresh.runtime import RefreshRuntime
from tally.service import TallyService
from tally.settings import Settings

log = logging.getLogger("tally")
Stop = Callable[[], None]


def create_app(
    settings: Settings | None = None,
    service: TallyService | None = None,
    warm: bool = True,
    companions: Sequence[Callable[[TallyService], Stop]] = (),
) -> FastAPI:
    """The HTTP app over `service` (default: one built from `settings`), with MCP at /mcp and
    the refresh runtime started with it. `companions` start other servers over the same
    service when the app starts (each returns its stop function, called before the service
    shuts down): Flight SQL, for `tally serve --flight-port`."""
    settings = settings or (service.settings if service else Settings())
    service = service or TallyService(settings)

    def start_refresh(app: FastAPI) -> Stop:
        app.state.refresh = RefreshRuntime(service)  # monitors, history, notifications
        app.state.refresh.start(warm_at_start=settings.warm_on_start)
        return app.state.refresh.stop

    hooks: list[Hook] = [start_refresh]
    hooks += [lambda _app, start=start: start(service) for start in companions]
    app = create_api(settings, service, warm=warm, hooks=hooks)
    mount_mcp(app, service)  # MCP (streamable HTTP): the same service and authentication
    return app


def serve(settings: Settings, *, insecure: bool = False, log_level: str = "info",
          banner: str = "") -> int:  # fmt: skip
    """`tally serve`: the app (and Flight SQL when settings.flight_port is set) until stopped;
    the process's exit code. Refuses to serve openly off loopback unless `insecure`."""
    companions = []
    flight = ""
    if settings.flight_port:
        port = settings.flight_port

        def start_flight(service: TallyService) -> Stop:
            from tally.flight.server import start

            return start(service, settings.host, port).shutdown

        companions.append(start_flight)
        flight = f", Flight SQL on grpc://{settings.host}:{port}"
    pg = ""
    if settings.pg_port:
        pg_port = settings.pg_port

        def start_pg(service: TallyService) -> Stop:
            from tally.pgwire.server import start

            return start(service, settings.host, pg_port, settings).shutdown

        companions.append(start_pg)
        pg = (f", PostgreSQL on {settings.host}:{pg_port} (psql -h {settings.host} -p "
              f"{pg_port} -U tally tally)")
    app = create_app(settings, companions=companions)
    check_exposure(app.state.service, settings.host, insecure)
    print(
        f"tally serving {banner}on http://{settings.host}:{settings.port} "
        f"(REST /api/v1, GraphQL /graphql, dbt Semantic Layer GraphQL /api/graphql, MCP /mcp, "
        f"docs /docs{flight}{pg})",
        file=sys.stderr,
        flush=True,
    )
    return run_http(app, settings, log_level=log_level)


def check_exposure(service: TallyService, host: str, insecure: bool) -> None:
    """Without authentication, serve only on a loopback address (unless --insecure)."""
    auth_log = logging.getLogger("tally.auth")
    service.security.check_at_start()
    if service.security.configured:
        auth_log.info("authentication is on: every protocol needs a bearer token")
        return
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        auth_log.warning("no authentication configured: serving openly on %s (loopback only)",
                         host)  # fmt: skip
        return
    if not insecure:
        raise ConfigurationError(
            f"Refusing to serve on {host} without authentication: anyone who reaches it could "
            "query everything. Configure it (TALLY_JWT_SECRET, or `tally keys create`), serve "
            "on 127.0.0.1, or pass --insecure to accept the risk."
        )
    auth_log.warning(
        "INSECURE: serving on %s WITHOUT AUTHENTICATION (--insecure): anyone who reaches this "
        "port may query every metric and row",
        host,
    )
