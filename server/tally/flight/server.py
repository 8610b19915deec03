"""Arrow Flight SQL on its own port (`tally serve --flight-port N`): the protocol of the dbt
Semantic Layer's JDBC driver and of its Python SDK's ADBC client, so they (and the plain ADBC
Flight SQL driver) query tally with statements in the dbt Semantic Layer's dialect.

Served: GetSqlInfo; statements (CommandStatementQuery: GetFlightInfo runs the statement
through the service and keeps the result for its DoGet, which streams it as record batches),
in the dbt Semantic Layer's dialect or, for any other text, tally's SQL over metrics (the
PostgreSQL endpoint's: `SELECT customer__country, SUM(revenue) FROM metrics GROUP BY 1`,
tally.flight.sql); prepared statements (CreatePreparedStatement, GetFlightInfo, DoGet,
ClosePreparedStatement); sessions (SetSessionOptions, GetSessionOptions, CloseSession; the
session id travels in the `arrow_flight_session_id` cookie); the database-metadata commands
from the caller's SQL catalog (GetCatalogs, GetDbSchemas, GetTables, GetTableTypes,
GetXdbcTypeInfo: tally.flight.tables; GetPrimaryKeys empty). Everything else is
UNIMPLEMENTED; updates are refused (tally is read-only).

Every call is authenticated by the service from `authorization: Bearer <token>`, and may name
the environment in an `environmentid` header (as dbt's clients do)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.flight as fl

from tally.core.caller import Caller
from tally.errors import NotFound
from tally.flight import commands, errors, proto, sqlinfo, tables
from tally.flight import sql as flight_sql
from tally.flight import statement as st
from tally.flight.errors import InvalidArgument, NotFoundError, Unimplemented, handler
from tally.flight.state import Bounds, Owner, Prepared, ServerState, Session, owner_of
from tally.service import TallyService
from tally.settings import Settings
from tally.sql.session import SqlEngine

log = logging.getLogger("tally.flight")
COOKIE = "arrow_flight_session_id"
_SESSION_BYTES = 16
MAX_OPTIONS = 64
MAX_OPTIONS_BYTES = 16 * 1024
TRANSPORT = "flight"
ACTIONS = {
    "CreatePreparedStatement": "Prepare a statement (ActionCreatePreparedStatementRequest).",
    "ClosePreparedStatement": "Release a prepared statement.",
    "SetSessionOptions": "Set options of the caller's session (creating it).",
    "GetSessionOptions": "The options of the caller's session.",
    "CloseSession": "End the caller's session.",
}


class _Call(fl.ServerMiddleware):
    """One call's authenticated caller and session id. A call without a session cookie gets
    a fresh id in a set-cookie header (headers leave before the handler runs, so the id is
    chosen now); the session itself is made under that id only when a handler needs one."""

    def __init__(self, caller: Caller, session: bytes | None) -> None:
        self.caller = caller
        self.owner: Owner = owner_of(caller)
        self.new_session = None if session else secrets.token_bytes(_SESSION_BYTES)
        self.session: bytes = session or self.new_session  # type: ignore[assignment]

    def sending_headers(self) -> dict[str, str]:
        if self.new_session is None:
            return {}
        return {"set-cookie": f"{COOKIE}={self.new_session.hex()}; Path=/; HttpOnly"}


class _Authenticate(fl.ServerMiddlewareFactory):
    def __init__(self, service: TallyService) -> None:
        self.service = service

    def start_call(self, info: Any, headers: dict[str, list[Any]]) -> _Call:
        with errors.mapped():  # a refused caller gets its status before any handler runs
            served = self.service.settings.dbt_environment_id
            env = _header(headers, "environmentid")
            if served is not None and env is not None and env.strip() != str(served):
                raise NotFound(
                    f"Environment {env.strip()[:40]} is not served here (this server serves "
                    f"environment {served}).", code="unknown_environment",
                )
            caller = self.service.authenticate(
                _bearer(headers), transport=TRANSPORT,
                request_id=_header(headers, "x-request-id") or secrets.token_hex(6),
            )
        return _Call(caller, _session_cookie(headers))


class FlightSqlServer(fl.FlightServerBase):
    def __init__(self, service: TallyService, host: str = "127.0.0.1", port: int = 0) -> None:
        errors.install()
        super().__init__(f"grpc://{host}:{port}", middleware={"tally": _Authenticate(service)})
        self.service = service
        self.state = state_for(service.settings)
        self.sql = SqlEngine(service)

    # Queries ---------------------------------------------------------------------------

    @handler
    def get_flight_info(self, context: Any, descriptor: fl.FlightDescriptor) -> fl.FlightInfo:
        command = self._command(descriptor)
        table, ticket = self._prepare_ticket(context, command)
        return fl.FlightInfo(
            table.schema, descriptor, [fl.FlightEndpoint(ticket, [])],
            table.num_rows, table.nbytes,
        )

    @handler
    def get_schema(self, context: Any, descriptor: fl.FlightDescriptor) -> fl.SchemaResult:
        # No DoGet follows a GetSchema: nothing is kept for one.
        table, _ = self._prepare_ticket(context, self._command(descriptor), keep=False)
        return fl.SchemaResult(table.schema)

    @handler
    def do_get(self, context: Any, ticket: fl.Ticket) -> fl.RecordBatchStream:
        command = proto.unpack(ticket.ticket)
        name = proto.name_of(command)
        if name == "TicketStatementQuery":
            table = self.state.results.pop(command.statement_handle, self._call(context).owner)
            if table is None:
                raise NotFoundError(
                    "This statement's result is gone (a result waits 300 s for its DoGet, "
                    "and is read once): run the statement again.", "unknown_ticket",
                )
            return fl.RecordBatchStream(table)
        return fl.RecordBatchStream(self._fixed(command, self._call(context)))

    def _prepare_ticket(self, context: Any, command: Any,
                        keep: bool = True) -> tuple[pa.Table, bytes]:
        """(the answer's table, the ticket of its DoGet); the answer kept for that DoGet
        unless not `keep`."""
        name = proto.name_of(command)
        call = self._call(context)
        if name in ("CommandStatementQuery", "CommandPreparedStatementQuery"):
            text = command.query if name == "CommandStatementQuery" else self._prepared(
                call, command.prepared_statement_handle).query
            if flight_sql.is_semantic_layer(text):
                table = commands.run(self.service, st.parse(text), call.caller).table
            else:  # no DoGet follows a GetSchema: its statement is described, not run
                table = flight_sql.run(self.sql, call.caller, text, describe_only=not keep)
            handle = self.state.results.put(table, call.owner) if keep else b""
            return table, proto.pack(proto.sql("TicketStatementQuery",
                                               statement_handle=handle))
        table = self._fixed(command, call)
        return table, proto.pack(command)

    def _fixed(self, command: Any, call: _Call) -> pa.Table:
        """The answer to a command whose ticket is the command itself."""
        name = proto.name_of(command)
        if name == "CommandGetSqlInfo":
            return sqlinfo.sql_info(list(command.info),
                                    self.service.settings.query_timeout_seconds)
        if name == "CommandGetCatalogs":
            return tables.catalogs()
        if name == "CommandGetDbSchemas":
            return tables.db_schemas(command)
        if name == "CommandGetTableTypes":
            return tables.table_types()
        if name == "CommandGetXdbcTypeInfo":
            return tables.xdbc_type_info(command)
        if name == "CommandGetTables":
            return tables.tables(command, self.sql.catalogs.get(call.caller))
        table = sqlinfo.metadata(command)
        if table is None:
            raise Unimplemented(f"Flight SQL {proto.name_of(command)} is not served by tally.")
        return table

    @handler
    def do_put(self, context: Any, descriptor: fl.FlightDescriptor, reader: Any,
               writer: Any) -> None:
        name = proto.name_of(self._command(descriptor))
        if name in ("CommandStatementUpdate", "CommandPreparedStatementUpdate"):
            raise InvalidArgument("tally is read-only: statements query the semantic layer.",
                                  "read_only")
        raise Unimplemented(f"Flight SQL {name} (DoPut) is not served by tally: statements "
                            "take no parameters.")

    @handler
    def list_flights(self, context: Any, criteria: bytes) -> Iterator[fl.FlightInfo]:
        return iter(())

    # Actions ---------------------------------------------------------------------------

    def list_actions(self, context: Any) -> list[tuple[str, str]]:
        return list(ACTIONS.items())

    @handler
    def do_action(self, context: Any, action: fl.Action) -> list[fl.Result]:
        kind = action.type
        body = action.body.to_pybytes() if action.body is not None else b""
        call = self._call(context)
        if kind == "CreatePreparedStatement":
            request = proto.unpack(body)
            if flight_sql.is_semantic_layer(request.query):
                self._validate(st.parse(request.query), call.caller)
            else:  # described now (not run), so a mistake fails at prepare time
                flight_sql.run(self.sql, call.caller, request.query, describe_only=True)
            handle = self.state.prepared.put(Prepared(request.query, call.session), call.owner)
            result = proto.sql("ActionCreatePreparedStatementResult",
                               prepared_statement_handle=handle)
            return [fl.Result(proto.pack(result))]
        if kind == "ClosePreparedStatement":
            request = proto.unpack(body)
            self.state.prepared.pop(request.prepared_statement_handle, call.owner)
            return []
        if kind == "SetSessionOptions":
            request = proto.parse("SetSessionOptionsRequest", body, proto.FLIGHT)
            session = self._session(call)
            options = dict(session.options)
            for name, value in request.session_options.items():
                which = value.WhichOneof("option_value")
                option = getattr(value, which) if which else None
                if which == "string_list_value":
                    option = list(option.values)
                options[name] = option
            _check_options(options)
            session.options = options
            return [fl.Result(proto.flight("SetSessionOptionsResult").SerializeToString())]
        if kind == "GetSessionOptions":
            session = self._session(call)
            result = proto.flight("GetSessionOptionsResult")
            for name, option in session.options.items():
                _set_option(result.session_options[name], option)
            return [fl.Result(result.SerializeToString())]
        if kind == "CloseSession":
            if not self.state.close_session(call.session, call.owner):
                raise NotFoundError("No session to close (no valid session cookie).",
                                    "unknown_session")
            closed = proto.flight("CloseSessionResult", status=1)  # CLOSED
            return [fl.Result(closed.SerializeToString())]
        raise Unimplemented(f"Flight action {kind[:60]!r} is not served by tally; it serves "
                            f"{', '.join(ACTIONS)}.")

    # Helpers ---------------------------------------------------------------------------

    def _call(self, context: Any) -> _Call:
        return context.get_middleware("tally")

    def _command(self, descriptor: fl.FlightDescriptor) -> Any:
        if descriptor.descriptor_type != fl.DescriptorType.CMD:
            raise Unimplemented("tally serves Flight SQL commands, not path descriptors.")
        try:
            return proto.unpack(descriptor.command)
        except proto.UnknownCommand as e:
            raise Unimplemented(f"Flight SQL command {e.type_url[:100]} is not served by "
                                "tally.") from None

    def _prepared(self, call: _Call, handle: bytes) -> Prepared:
        prepared = self.state.prepared.get(handle, call.owner)
        if prepared is None:
            raise NotFoundError("Unknown or closed prepared statement: prepare it again.",
                                "unknown_prepared_statement")
        return prepared

    def _session(self, call: _Call) -> Session:
        """The caller's session, made now under its cookie's id if there is none yet."""
        session = self.state.sessions.get(call.session, call.owner)
        if session is None:
            session = Session(options={})
            if not self.state.sessions.put_new(call.session, session, call.owner):
                raise NotFoundError("Unknown session: drop the session cookie.",
                                    "unknown_session")
        return session

    def _validate(self, statement: st.Statement, caller: Caller) -> None:
        """A prepared query's names are checked now, so a typo fails at prepare time."""
        if statement.call != "query":
            return
        saved = statement.get("saved_query")
        group_bys = self.service.saved_query_group_bys(saved, caller) \
            if isinstance(saved, str) else ()
        self.service.check(st.to_request(statement, group_bys), caller)


def _check_options(options: dict[str, Any]) -> None:
    """A session's options within bounds (a session lives an hour and a caller may hold
    many): at most MAX_OPTIONS, at most MAX_OPTIONS_BYTES of names and values in all."""
    if len(options) > MAX_OPTIONS:
        raise InvalidArgument(f"A session holds at most {MAX_OPTIONS} options; this would make "
                              f"{len(options)}.", "too_many_session_options")
    size = sum(len(name) + len(repr(value)) for name, value in options.items())
    if size > MAX_OPTIONS_BYTES:
        raise InvalidArgument(f"A session's options hold at most {MAX_OPTIONS_BYTES:,} "
                              f"characters; these would make {size:,}.",
                              "too_many_session_options")


def _set_option(target: Any, value: Any) -> None:
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int64_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, list):
        target.string_list_value.values.extend(str(v) for v in value)
    elif value is not None:
        target.string_value = str(value)


def _header(headers: dict[str, list[Any]], name: str) -> str | None:
    values = headers.get(name) or []
    if not values:
        return None
    value = values[0]
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _bearer(headers: dict[str, list[Any]]) -> str | None:
    """The token of `authorization: Bearer <token>` (scheme in any case), or None."""
    scheme, _, token = (_header(headers, "authorization") or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _session_cookie(headers: dict[str, list[Any]]) -> bytes | None:
    """The session id of the `arrow_flight_session_id` cookie, or None (also for an id that is
    not one tally issued: 16 bytes in hex). Read by hand, in one pass: http.cookies' parser
    takes time quadratic in a quoted value's backslashes (CVE-2024-7592), on the caller's
    header."""
    for raw in headers.get("cookie") or []:
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        for pair in text.split(";"):
            name, equals, value = pair.partition("=")
            if equals and name.strip() == COOKIE:
                value = value.strip().strip('"')
                if len(value) != 2 * _SESSION_BYTES:
                    return None
                try:
                    return bytes.fromhex(value)
                except ValueError:
                    return None
    return None


def state_for(settings: Settings) -> ServerState:
    """The server's stores, bounded by the settings (TALLY_FLIGHT_*)."""
    return ServerState(
        results=Bounds(settings.flight_pending_results,
                       settings.flight_pending_results_per_caller,
                       settings.flight_pending_results_bytes,
                       settings.flight_pending_results_bytes_per_caller),
        prepared=Bounds(settings.flight_prepared_statements,
                        settings.flight_prepared_statements_per_caller),
        sessions=Bounds(settings.flight_sessions, settings.flight_sessions_per_caller),
    )


def start(service: TallyService, host: str, port: int) -> FlightSqlServer:
    """The Flight SQL server, serving (pyarrow serves it on threads of its own) until its
    shutdown()."""
    server = FlightSqlServer(service, host, port)
    log.info("Flight SQL serving on grpc://%s:%s", host, server.port)
    return server
