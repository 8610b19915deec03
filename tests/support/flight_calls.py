"""Flight SQL calls as a client makes them (pyarrow's Flight client), against a real server on
loopback: a statement's GetFlightInfo and DoGet with a bearer token, and the environment of a
secured `tally serve` (tests/security/conftest.py's project) with settings of a test's own."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.flight as fl

from tally.flight import proto


def options(token: str | None) -> fl.FlightCallOptions:
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    return fl.FlightCallOptions(headers=headers, timeout=120)


def statement(text: str) -> fl.FlightDescriptor:
    """The descriptor of a CommandStatementQuery (what a Flight SQL client sends)."""
    return fl.FlightDescriptor.for_command(
        proto.pack(proto.sql("CommandStatementQuery", query=text)))


def info(client: fl.FlightClient, token: str | None, text: str) -> fl.FlightInfo:
    """GetFlightInfo of a statement: the server runs it and keeps its result for a DoGet."""
    return client.get_flight_info(statement(text), options(token))


def fetch(client: fl.FlightClient, token: str | None, flight: fl.FlightInfo) -> pa.Table:
    """DoGet of the info's (one) endpoint."""
    return client.do_get(flight.endpoints[0].ticket, options(token)).read_all()


def secured_env(secured: Any, warehouse: Any, **settings: Any) -> dict[str, str]:
    """The environment of `tally serve` over the secured project (start_server(..., env,
    clean_env=True)); `settings` are more TALLY_* values, by setting name."""
    env = {"TALLY_PROJECT_DIR": str(secured.project_dir),
           "TALLY_MANIFEST_PATH": str(warehouse.manifest_path),
           "TALLY_DUCKDB_PATH": str(warehouse.duckdb_path),
           "TALLY_JWT_SECRET": secured.jwt_secret}
    env.update({f"TALLY_{k.upper()}": str(v) for k, v in settings.items()})
    return env
