"""The PostgreSQL wire protocol (version 3) over tally's SQL: `tally serve --pg-port`.

A small asyncio server of tally's own (the reasons are in docs/sql.md): the startup packet,
SSLRequest (TLS with TALLY_PG_TLS_CERT / TALLY_PG_TLS_KEY), a cleartext password that is an API
key, a JWT or an embed token (refused off loopback without TLS), then the simple query protocol
and the extended one (Parse/Bind/Describe/Execute/Sync/Close/Flush, with parameters, portals
and row limits), text and binary results, CancelRequest (which stops the warehouse query),
idle and statement timeouts and a cap on connections. Each connection is a `SqlSession` over
the service; this module parses, calls and encodes."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import re
import secrets
import ssl
import struct
import threading
from dataclasses import dataclass, field
from typing import Any

from tally.errors import CallerError, QueryCancelled, TallyError, Unauthorized
from tally.pgwire import messages as m
from tally.pgwire.values import decode_parameter, encode_column
from tally.service import TallyService
from tally.settings import Settings
from tally.sql.errors import SqlError, sqlstate_of
from tally.sql.pgtypes import PgType
from tally.sql.session import DEFAULTS, SqlEngine, SqlResult, SqlSession

log = logging.getLogger("tally.pgwire")
_REPORTED = ("server_version", "server_encoding", "client_encoding", "DateStyle", "TimeZone",
             "integer_datetimes", "standard_conforming_strings", "IntervalStyle",
             "is_superuser", "session_authorization", "application_name")


@dataclass
class Prepared:
    text: str
    param_oids: list[int]
    described: SqlResult | None = None


@dataclass
class Portal:
    statement: Prepared
    params: list[Any]
    formats: list[int]
    result: SqlResult | None = None
    rows: Any = None  # an iterator of encoded rows, once executing
    sent: int = 0
    done: bool = False


@dataclass
class Connection:
    server: PgServer
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    pid: int = 0
    secret: int = 0
    session: SqlSession | None = None
    tls: bool = False
    statements: dict[str, Prepared] = field(default_factory=dict)
    portals: dict[str, Portal] = field(default_factory=dict)
    task: asyncio.Task | None = None
    skip_to_sync: bool = False

    # I/O -------------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def flush(self) -> None:
        await self.writer.drain()

    async def read_message(self, timeout: float) -> tuple[bytes, m.Reader]:
        head = await asyncio.wait_for(self.reader.readexactly(5), timeout)
        kind, length = head[:1], struct.unpack("!i", head[1:])[0]
        if length < 4 or length > m.MAX_MESSAGE:
            raise m.ProtocolViolation(f"invalid message length {length}")
        body = await self.reader.readexactly(length - 4)
        return kind, m.Reader(body)

    def fail(self, error: BaseException, severity: str = "ERROR") -> None:
        if isinstance(error, TallyError):
            text = error.message
        else:
            log.exception("internal error in a PostgreSQL connection", exc_info=error)
            text = "internal error (the server's log has the details)"
        self.send(m.error(severity, sqlstate_of(error), text))

    # Startup ---------------------------------------------------------------------------------

    async def start(self) -> bool:
        """Startup, TLS and authentication; False when the connection ends here."""
        while True:
            head = await asyncio.wait_for(self.reader.readexactly(8), 30)
            length, code = struct.unpack("!ii", head)
            if length < 8 or length > 10_000:
                raise m.ProtocolViolation("invalid startup packet length")
            body = await self.reader.readexactly(length - 8)
            if code == m.SSL_REQUEST:
                if self.tls or self.server.ssl_context is None:
                    self.send(b"N")
                    await self.flush()
                    continue
                self.send(b"S")
                await self.flush()
                await self.writer.start_tls(self.server.ssl_context)
                self.tls = True
                continue
            if code == m.GSS_REQUEST:
                self.send(b"N")
                await self.flush()
                continue
            if code == m.CANCEL_REQUEST:
                pid, secret = struct.unpack("!ii", body[:8])
                self.server.cancel(pid, secret)
                return False
            if code != m.PROTOCOL_3:
                self.send(m.error("FATAL", "08P01",
                                  f"unsupported frontend protocol {code >> 16}.{code & 0xFFFF}: "
                                  "tally speaks protocol 3.0"))
                return False
            return await self._authenticate(m.startup_parameters(body))

    async def _authenticate(self, params: dict[str, str]) -> bool:
        service = self.server.service
        cap = self.server.settings.pg_max_connections
        if len(self.server.connections) >= cap:  # after SSLRequest: the client reads it
            self.send(m.error("FATAL", "53300", f"sorry, too many clients already "
                              f"(TALLY_PG_MAX_CONNECTIONS={cap})"))
            return False
        token = None
        if service.security.configured:
            if not self.tls and not self.server.loopback(self.writer):
                self.send(m.error(
                    "FATAL", "28000", "tally refuses a password over an unencrypted connection "
                    "from another machine: connect with sslmode=require (the server needs "
                    "TALLY_PG_TLS_CERT and TALLY_PG_TLS_KEY)"))
                return False
            self.send(m.authentication_cleartext())
            await self.flush()
            kind, reader = await self.read_message(30)
            if kind != b"p":
                raise m.ProtocolViolation("expected a password message")
            token = reader.cstring().strip() or None
        try:
            caller = await service.run(lambda: service.authenticate(token, transport="pg"))
        except (Unauthorized, CallerError) as e:
            message = e.message if isinstance(e, TallyError) else str(e)
            self.send(m.error("FATAL", "28P01", f"password authentication failed: {message}"))
            return False
        user = params.get("user", "tally")
        settings = {"application_name": params.get("application_name", "")}
        for key in ("client_encoding", "datestyle", "timezone", "search_path"):
            if key in params:
                settings[key] = params[key]
        self.session = self.server.engine.session(caller, user, settings)
        self.send(m.authentication_ok())
        for name in _REPORTED:
            value = self.session.settings.get(name.lower(), DEFAULTS.get(name.lower(), ""))
            if name == "session_authorization":
                value = user
            self.send(m.parameter_status(name, value))
        self.pid, self.secret = self.server.register(self)
        self.send(m.backend_key(self.pid, self.secret))
        self.send(m.ready("I"))
        await self.flush()
        return True

    # The loop --------------------------------------------------------------------------------

    async def serve(self) -> None:
        timeout = self.server.settings.pg_idle_timeout_seconds
        while True:
            try:
                kind, reader = await self.read_message(timeout)
            except TimeoutError:
                self.send(m.error("FATAL", "57P05", "terminating connection due to idle "
                                  "timeout"))
                await self.flush()
                return
            if kind == b"X":
                return
            if self.skip_to_sync and kind not in (b"S", b"X"):
                continue
            try:
                await self.handle(kind, reader)
            except m.ProtocolViolation:
                raise
            except (TallyError, Exception) as e:
                self.fail(e)
                if kind != b"Q":
                    self.skip_to_sync = True
                else:
                    self.send(m.ready(self.status()))
            await self.flush()

    def status(self) -> str:
        assert self.session is not None
        return "T" if self.session.in_transaction else "I"

    async def handle(self, kind: bytes, reader: m.Reader) -> None:
        if kind == b"Q":
            await self.simple_query(reader.cstring())
        elif kind == b"P":
            self.parse(reader)
        elif kind == b"B":
            self.bind(reader)
        elif kind == b"D":
            await self.describe(reader.byte(), reader.cstring())
        elif kind == b"E":
            await self.execute(reader.cstring(), reader.int32())
        elif kind == b"S":
            self.skip_to_sync = False
            self.portals = {k: v for k, v in self.portals.items() if k and not v.done}
            self.portals.pop("", None)
            self.send(m.ready(self.status()))
        elif kind == b"H":
            pass  # flushed after every message
        elif kind == b"C":
            what, name = reader.byte(), reader.cstring()
            (self.statements if what == b"S" else self.portals).pop(name, None)
            self.send(m.CLOSE_COMPLETE)
        elif kind in (b"d", b"c", b"f"):
            raise SqlError("COPY is not supported by tally's SQL.")
        elif kind == b"F":
            raise SqlError("The function call protocol is not supported.")
        else:
            raise m.ProtocolViolation(f"unknown message type {kind!r}")

    # Simple query ----------------------------------------------------------------------------

    async def simple_query(self, text: str) -> None:
        statements = split_statements(text)
        if not statements:
            self.send(m.empty_query())
        for statement in statements:
            result = await self.run(statement, ())
            if result.empty_query:
                self.send(m.empty_query())
                continue
            if result.table is not None:
                self.send(m.row_description(result.columns, [0] * len(result.columns)))
                rows, chunk = 0, []
                for row in encoded_rows(result, [0]):
                    chunk.append(row)
                    rows += 1
                    if rows % 2048 == 0:  # one write per chunk, then wait for the socket
                        self.send(b"".join(chunk))
                        chunk.clear()
                        await self.flush()
                self.send(b"".join(chunk))
                self.send(m.command_complete(result.command_tag(rows)))
            else:
                self._after_command(result)
                self.send(m.command_complete(result.tag))
        self.send(m.ready(self.status()))

    def _after_command(self, result: SqlResult) -> None:
        if result.tag.startswith("DISCARD") or result.tag == "DEALLOCATE ALL":
            self.statements.clear()
            self.portals.clear()

    async def run(self, text: str, params: Any, describe_only: bool = False) -> SqlResult:
        """One statement under the statement timeout, cancellable by CancelRequest."""
        assert self.session is not None
        # The statement timeout (the session's, TALLY_PG_STATEMENT_TIMEOUT_SECONDS, the
        # warehouse's) is the session's to keep.
        self.task = asyncio.ensure_future(self.session.execute(text, params, describe_only))
        try:
            return await asyncio.shield(self.task)
        except asyncio.CancelledError:
            if self.task.cancelled():
                raise QueryCancelled("canceling statement due to user request") from None
            raise
        finally:
            self.task = None

    # Extended query --------------------------------------------------------------------------

    def parse(self, reader: m.Reader) -> None:
        name, text = reader.cstring(), reader.cstring()
        oids = [reader.uint32() for _ in range(reader.int16())]
        self.statements[name] = Prepared(text, oids)
        self.send(m.PARSE_COMPLETE)

    def bind(self, reader: m.Reader) -> None:
        portal, name = reader.cstring(), reader.cstring()
        statement = self.statements.get(name)
        if statement is None:
            raise SqlError(f'prepared statement "{name}" does not exist')
        formats = [reader.int16() for _ in range(reader.int16())]
        values = []
        count = reader.int16()
        for i in range(count):
            length = reader.int32()
            data = None if length < 0 else reader.bytes(length)
            binary = (formats[i] if len(formats) > 1 else formats[0] if formats else 0) == 1
            oid = statement.param_oids[i] if i < len(statement.param_oids) else 0
            values.append(decode_parameter(data, oid, binary))
        result_formats = [reader.int16() for _ in range(reader.int16())]
        self.portals[portal] = Portal(statement, values, result_formats)
        self.send(m.BIND_COMPLETE)

    async def describe(self, what: bytes, name: str) -> None:
        if what == b"S":
            statement = self.statements.get(name)
            if statement is None:
                raise SqlError(f'prepared statement "{name}" does not exist')
            result = await self.run(statement.text, (), describe_only=True)
            statement.described = result
            count = max(statement_params(statement.text), len(statement.param_oids))
            # the types inferred from the columns the parameters are compared with, kept for
            # Bind (a client then sends the values as described, in binary too)
            declared = [*statement.param_oids, *[0] * (count - len(statement.param_oids))]
            for i, t in result.parameter_types.items():
                if 0 < i <= count and not declared[i - 1]:
                    declared[i - 1] = t.oid
            statement.param_oids = declared
            self.send(m.parameter_description([oid or 25 for oid in declared]))
            self._describe_rows(result, [0])
            return
        portal = self.portals.get(name)
        if portal is None:
            raise SqlError(f'portal "{name}" does not exist')
        await self._start(portal)
        assert portal.result is not None
        self._describe_rows(portal.result, portal.formats)

    def _describe_rows(self, result: SqlResult, formats: list[int]) -> None:
        if result.table is None:
            self.send(m.no_data())
        else:
            self.send(m.row_description(result.columns, column_formats(formats,
                                                                       len(result.columns))))

    async def _start(self, portal: Portal) -> None:
        if portal.result is None:
            portal.result = await self.run(portal.statement.text, portal.params)
            if portal.result.table is not None:
                portal.rows = encoded_rows(portal.result, portal.formats)

    async def execute(self, name: str, max_rows: int) -> None:
        portal = self.portals.get(name)
        if portal is None:
            raise SqlError(f'portal "{name}" does not exist')
        await self._start(portal)
        result = portal.result
        assert result is not None
        if result.empty_query:
            self.send(m.empty_query())
            return
        if portal.rows is None:
            self._after_command(result)
            self.send(m.command_complete(result.tag))
            portal.done = True
            return
        chunk: list[bytes] = []
        for sent, row in enumerate(portal.rows, start=1):
            chunk.append(row)
            portal.sent += 1
            if sent % 2048 == 0:  # one write per chunk, then wait for the socket
                self.send(b"".join(chunk))
                chunk.clear()
                await self.flush()
            if max_rows > 0 and sent >= max_rows:
                self.send(b"".join(chunk))
                self.send(m.PORTAL_SUSPENDED)
                return
        self.send(b"".join(chunk))
        portal.done = True
        self.send(m.command_complete(result.command_tag(portal.sent)))


def column_formats(formats: list[int], count: int) -> list[int]:
    if not formats:
        return [0] * count
    if len(formats) == 1:
        return formats * count
    return formats[:count] + [0] * (count - len(formats))


def encoded_rows(result: SqlResult, formats: list[int]):
    """DataRow messages, a batch at a time, each column encoded as a whole."""
    columns: list[tuple[str, PgType]] = list(result.columns)
    kinds = column_formats(formats, len(columns))
    for batch in result.batches():
        encoded = [encode_column(batch.column(i), columns[i][1], kinds[i] == 1)
                   for i in range(len(columns))]
        for values in zip(*encoded, strict=True):
            yield m.data_row(values)
        if not columns:
            for _ in range(batch.num_rows):
                yield m.data_row(())


def statement_params(text: str) -> int:
    found = [int(n) for n in re.findall(r"\$(\d+)", text)]
    return max(found) if found else 0


def split_statements(text: str) -> list[str]:
    """The statements of a simple query, split at semicolons outside quotes and comments."""
    out, start, i, n = [], 0, 0, len(text)
    while i < n:
        c = text[i]
        if c in ("'", '"'):
            end = text.find(c, i + 1)
            while end != -1 and end + 1 < n and text[end + 1] == c:
                end = text.find(c, end + 2)
            i = n if end == -1 else end + 1
            continue
        if text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end == -1 else end + 1
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end == -1 else end + 2
            continue
        if c == "$":
            tag_end = text.find("$", i + 1)
            tag = text[i:tag_end + 1] if tag_end != -1 else ""
            if tag and all(ch.isalnum() or ch == "_" for ch in tag[1:-1]) and \
                    not tag[1:-1].isdigit():
                end = text.find(tag, tag_end + 1)
                i = n if end == -1 else end + len(tag)
                continue
        if c == ";":
            piece = text[start:i].strip()
            if piece:
                out.append(piece)
            start = i + 1
        i += 1
    piece = text[start:].strip()
    if piece and piece.strip(";"):
        out.append(piece)
    return out


class PgServer:
    """The listening socket and the connections it holds."""

    def __init__(self, service: TallyService, settings: Settings) -> None:
        self.service = service
        self.settings = settings
        # One connection carries many statements: each metric statement is a request against
        # the caller's rate limit (session commands and catalog queries are not).
        self.engine = SqlEngine(service, settings.pg_statement_timeout_seconds,
                                admit_statements=True)
        self.connections: dict[int, Connection] = {}
        self.ssl_context = tls_context(settings)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None

    def register(self, connection: Connection) -> tuple[int, int]:
        pid = secrets.randbelow(2**31 - 1) + 1
        while pid in self.connections:
            pid = secrets.randbelow(2**31 - 1) + 1
        secret = secrets.randbelow(2**31 - 1) + 1
        self.connections[pid] = connection
        return pid, secret

    def cancel(self, pid: int, secret: int) -> None:
        connection = self.connections.get(pid)
        if connection is None or not secrets.compare_digest(
                str(connection.secret).encode(), str(secret).encode()):
            return
        if connection.session is not None:
            connection.session.cancel()
        if connection.task is not None:
            connection.task.cancel()

    @staticmethod
    def loopback(writer: asyncio.StreamWriter) -> bool:
        peer = writer.get_extra_info("peername")
        if not peer:
            return True  # a Unix socket
        try:
            return ipaddress.ip_address(peer[0]).is_loopback
        except ValueError:
            return False

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = Connection(self, reader, writer)
        try:
            if await connection.start():
                await connection.serve()
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, ssl.SSLError):
            pass
        except m.ProtocolViolation as e:
            with contextlib.suppress(Exception):
                writer.write(m.error("FATAL", "08P01", f"protocol violation: {e}"))
                await writer.drain()
        except Exception:
            log.exception("a PostgreSQL connection failed")
        finally:
            if connection.pid:
                self.connections.pop(connection.pid, None)
            if connection.session is not None:
                connection.session.cancel()
            with contextlib.suppress(Exception):
                writer.close()

    async def start(self, host: str, port: int) -> None:
        self.loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self.handle, host, port, reuse_address=True)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for connection in list(self.connections.values()):
                with contextlib.suppress(Exception):
                    connection.writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    if not settings.pg_tls_cert and not settings.pg_tls_key:
        return None
    from tally.errors import ConfigurationError

    if not (settings.pg_tls_cert and settings.pg_tls_key):
        raise ConfigurationError("Set both TALLY_PG_TLS_CERT and TALLY_PG_TLS_KEY (PEM files) "
                                 "for the PostgreSQL endpoint's TLS, or neither.")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(settings.pg_tls_cert), str(settings.pg_tls_key))
    except (OSError, ssl.SSLError) as e:
        raise ConfigurationError(f"Cannot load the PostgreSQL endpoint's TLS certificate "
                                 f"{settings.pg_tls_cert} / key {settings.pg_tls_key}: {e}. "
                                 "Fix TALLY_PG_TLS_CERT / TALLY_PG_TLS_KEY.") from None
    return context


@dataclass
class Running:
    """A PostgreSQL endpoint served from a thread of its own (its own event loop)."""

    server: PgServer
    thread: threading.Thread
    loop: asyncio.AbstractEventLoop

    def shutdown(self) -> None:
        future = asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop)
        with contextlib.suppress(Exception):
            future.result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def start(service: TallyService, host: str, port: int,
          settings: Settings | None = None) -> Running:
    """Listen on host:port in a thread of its own; a port in use is a ConfigurationError."""
    from tally.errors import ConfigurationError

    settings = settings or service.settings
    server = PgServer(service, settings)
    loop = asyncio.new_event_loop()
    started: list[BaseException | None] = []
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start(host, port))
            started.append(None)
        except BaseException as e:
            started.append(e)
            ready.set()
            return
        ready.set()
        loop.run_forever()
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    thread = threading.Thread(target=run, name="tally-pgwire", daemon=True)
    thread.start()
    ready.wait(30)
    if started and started[0] is not None:
        error = started[0]
        if isinstance(error, OSError):
            raise ConfigurationError(
                f"Cannot serve PostgreSQL on {host}:{port}: {error.strerror or error}. Choose "
                "another --pg-port (TALLY_PG_PORT) or stop what uses it."
            ) from None
        raise error
    log.info("PostgreSQL wire protocol on %s:%s (pid %s)", host, port, os.getpid())
    return Running(server, thread, loop)
