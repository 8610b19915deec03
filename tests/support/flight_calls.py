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


def prepare(client: fl.FlightClient, token: str | None, text: str) -> bytes:
    """CreatePreparedStatement: the prepared statement's handle."""
    request = proto.sql("ActionCreatePreparedStatementRequest", query=text)
    action = fl.Action("CreatePreparedStatement", proto.pack(request))
    result = next(iter(client.do_action(action, options(token)))).body.to_pybytes()
    return proto.unpack(result).prepared_statement_handle


def prepared_info(client: fl.FlightClient, token: str | None, handle: bytes) -> fl.FlightInfo:
    command = proto.sql("CommandPreparedStatementQuery", prepared_statement_handle=handle)
    return client.get_flight_info(fl.FlightDescriptor.for_command(proto.pack(command)),
                                  options(token))


class Cookies(fl.ClientMiddlewareFactory):
    """A client's cookie jar of one cookie (the session's), as the ADBC driver keeps it."""

    def __init__(self) -> None:
        self.cookie: str | None = None

    def start_call(self, info: Any) -> fl.ClientMiddleware:
        jar = self

        class Middleware(fl.ClientMiddleware):
            def sending_headers(self) -> dict[str, str]:
                return {"cookie": jar.cookie} if jar.cookie else {}

            def received_headers(self, headers: dict[str, list[str]]) -> None:
                for value in headers.get("set-cookie", []):
                    jar.cookie = value.split(";")[0]

        return Middleware()


def set_options(client: fl.FlightClient, token: str | None, **values: str) -> None:
    """SetSessionOptions with string values."""
    request = proto.flight("SetSessionOptionsRequest")
    for name, value in values.items():
        request.session_options[name].string_value = value
    list(client.do_action(fl.Action("SetSessionOptions", request.SerializeToString()),
                          options(token)))


def get_options(client: fl.FlightClient, token: str | None) -> dict[str, str]:
    """GetSessionOptions, string values."""
    action = fl.Action("GetSessionOptions", b"")
    body = next(iter(client.do_action(action, options(token)))).body.to_pybytes()
    result = proto.parse("GetSessionOptionsResult", body, proto.FLIGHT)
    return {k: v.string_value for k, v in result.session_options.items()}
