"""PostgreSQL protocol 3 messages: reading the frontend's, writing the backend's. Pure
functions over bytes; the connection (server.py) does the I/O."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from tally.sql.pgtypes import PgType

PROTOCOL_3 = 196608
SSL_REQUEST = 80877103
GSS_REQUEST = 80877104
CANCEL_REQUEST = 80877102
MAX_MESSAGE = 64 * 1024 * 1024  # a larger frame is a broken or hostile client


class ProtocolViolation(Exception):
    """The client sent something that is not protocol 3 (08P01)."""


class Reader:
    """The fields of one message body, in order."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def int16(self) -> int:
        return self._unpack("!h", 2)

    def int32(self) -> int:
        return self._unpack("!i", 4)

    def uint32(self) -> int:
        return self._unpack("!I", 4)

    def byte(self) -> bytes:
        if self.pos >= len(self.data):
            raise ProtocolViolation("message too short")
        self.pos += 1
        return self.data[self.pos - 1:self.pos]

    def cstring(self) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise ProtocolViolation("unterminated string in message")
        text = self.data[self.pos:end].decode("utf-8", "replace")
        self.pos = end + 1
        return text

    def bytes(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ProtocolViolation("message too short")
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def _unpack(self, fmt: str, size: int) -> int:
        if self.pos + size > len(self.data):
            raise ProtocolViolation("message too short")
        value = struct.unpack_from(fmt, self.data, self.pos)[0]
        self.pos += size
        return value


def startup_parameters(body: bytes) -> dict[str, str]:
    parts = body.split(b"\x00")
    params: dict[str, str] = {}
    for key, value in zip(parts[0::2], parts[1::2], strict=False):
        if key:
            params[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return params


def message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def cstr(text: str) -> bytes:
    return text.replace("\x00", "").encode() + b"\x00"


def authentication_ok() -> bytes:
    return message(b"R", struct.pack("!i", 0))


def authentication_cleartext() -> bytes:
    return message(b"R", struct.pack("!i", 3))


def parameter_status(name: str, value: str) -> bytes:
    return message(b"S", cstr(name) + cstr(value))


def backend_key(pid: int, secret: int) -> bytes:
    return message(b"K", struct.pack("!ii", pid, secret))


def ready(status: str) -> bytes:
    return message(b"Z", status.encode())


def row_description(columns: Sequence[tuple[str, PgType]], formats: Sequence[int]) -> bytes:
    body = [struct.pack("!h", len(columns))]
    for i, (name, pg) in enumerate(columns):
        body.append(cstr(name) + struct.pack("!ihihih", 0, 0, pg.oid, pg.size, -1,
                                             formats[i] if i < len(formats) else 0))
    return message(b"T", b"".join(body))


def data_row(values: Sequence[bytes | None]) -> bytes:
    parts = [struct.pack("!h", len(values))]
    for value in values:
        parts.append(b"\xff\xff\xff\xff" if value is None else
                     struct.pack("!i", len(value)) + value)
    return message(b"D", b"".join(parts))


def command_complete(tag: str) -> bytes:
    return message(b"C", cstr(tag))


def empty_query() -> bytes:
    return message(b"I")


def no_data() -> bytes:
    return message(b"n")


def parameter_description(oids: Sequence[int]) -> bytes:
    return message(b"t", struct.pack(f"!h{len(oids)}I", len(oids), *oids))


def error(severity: str, sqlstate: str, text: str, hint: str = "") -> bytes:
    fields = b"S" + cstr(severity) + b"V" + cstr(severity) + b"C" + cstr(sqlstate) + \
        b"M" + cstr(text)
    if hint:
        fields += b"H" + cstr(hint)
    return message(b"E", fields + b"\x00")


def notice(text: str) -> bytes:
    return message(b"N", b"S" + cstr("NOTICE") + b"V" + cstr("NOTICE") + b"C" +
                   cstr("00000") + b"M" + cstr(text) + b"\x00")


PARSE_COMPLETE = message(b"1")
BIND_COMPLETE = message(b"2")
CLOSE_COMPLETE = message(b"3")
PORTAL_SUSPENDED = message(b"s")
