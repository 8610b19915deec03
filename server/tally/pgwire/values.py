"""Values on the wire: Arrow columns as PostgreSQL's text and binary formats (a column at a
time, so a million rows cost a few vectorized casts, not a million Python conversions), and
bound parameters from either format."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
import struct
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tally.sql import pgtypes
from tally.sql.errors import InvalidParameter
from tally.sql.pgtypes import PgType

EPOCH_DATE = dt.date(2000, 1, 1)
EPOCH = dt.datetime(2000, 1, 1)
_EPOCH_DAYS = EPOCH_DATE.toordinal()


# Results ------------------------------------------------------------------------------------

def encode_column(array: pa.Array, pg: PgType, binary: bool) -> list[bytes | None]:
    """Each value of a column in the format asked for; None for SQL NULL."""
    if binary and pg.name in _FIXED and (pa.types.is_integer(array.type) or
                                         pa.types.is_floating(array.type) or
                                         pa.types.is_date32(array.type)):
        return _fixed_binary(array, pg)
    if binary:
        encode = _BINARY.get(pg.name)
        if encode is None:
            encode = _binary_array(pg) if pg.name.startswith("_") else _text_bytes(pg)
        return [None if v is None else encode(v) for v in array.to_pylist()]
    return _text_column(array, pg)


_FIXED = {"int2": ">i2", "int4": ">i4", "int8": ">i8", "float4": ">f4", "float8": ">f8",
          "date": ">i4"}


def _fixed_binary(array: pa.Array, pg: PgType) -> list[bytes | None]:
    """Fixed-size binary values at numpy's speed: big-endian bytes cut per value."""
    import numpy as np

    if pa.types.is_date32(array.type):
        numbers = array.cast(pa.int32()).fill_null(0).to_numpy(zero_copy_only=False) \
            - (_EPOCH_DAYS - dt.date(1970, 1, 1).toordinal())
    else:
        numbers = array.fill_null(0).to_numpy(zero_copy_only=False)
    raw = np.asarray(numbers).astype(_FIXED[pg.name]).tobytes()
    size = int(_FIXED[pg.name][-1])
    out: list[bytes | None] = [raw[i:i + size] for i in range(0, len(raw), size)]
    if array.null_count:
        for i, valid in enumerate(array.is_valid().to_pylist()):
            if not valid:
                out[i] = None
    return out


def _text_column(array: pa.Array, pg: PgType) -> list[bytes | None]:
    if pg.name == "bool":
        return [None if v is None else (b"t" if v else b"f") for v in array.to_pylist()]
    vectorized = pg.name in ("int2", "int4", "int8", "oid", "text", "varchar", "name", "bpchar",
                             "char", "date") or \
        (pg.name == "numeric" and pa.types.is_decimal(array.type)) or \
        (pg.name == "numeric" and pa.types.is_integer(array.type))
    if vectorized and not pa.types.is_list(array.type):
        strings = pc.cast(array, pa.string()) if not pa.types.is_string(array.type) else array
        if pa.types.is_decimal(array.type) and pc.any(pc.match_substring(strings, "E")).as_py():
            encode = _text_bytes(pg)  # Arrow writes 1E-7; PostgreSQL writes 0.0000001
            return [None if v is None else encode(v) for v in array.to_pylist()]
        return [None if v is None else v.encode() for v in strings.to_pylist()]
    encode = _text_bytes(pg)
    return [None if v is None else encode(v) for v in array.to_pylist()]


def _text_bytes(pg: PgType) -> Callable[[Any], bytes]:
    def encode(value: Any) -> bytes:
        return text_of(value, pg).encode()

    return encode


def text_of(value: Any, pg: PgType) -> str:
    """PostgreSQL's text output of one value."""
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        text = repr(value)
        return text[:-2] if text.endswith(".0") and pg.name != "numeric" else text
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        zone = ""
        if value.tzinfo is not None:
            value, zone = value.astimezone(dt.UTC).replace(tzinfo=None), "+00"
        text = value.isoformat(sep=" ")
        if value.microsecond:  # PostgreSQL drops a fraction's trailing zeros: 00:00:00.25
            text = text.rstrip("0")
        return text + zone
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return _interval(value)
    if isinstance(value, list | tuple):
        return "{" + ",".join("NULL" if v is None else _array_item(text_of(v, pg))
                              for v in value) + "}"
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    if isinstance(value, dict):
        return str(value)
    return str(value)


def _array_item(text: str) -> str:
    if text == "" or any(c in text for c in ',{}"\\ ') or text.upper() == "NULL":
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def _interval(value: dt.timedelta) -> str:
    days, seconds = value.days, value.seconds
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    if value.microseconds:
        clock += f".{value.microseconds:06d}"
    return f"{days} days {clock}" if days else clock


def _numeric_binary(value: Any) -> bytes:
    """NUMERIC's binary form: base-10000 digits, weight, sign and display scale."""
    d = decimal.Decimal(value)
    if d.is_nan():
        return struct.pack("!hhHH", 0, 0, 0xC000, 0)
    sign = 0x4000 if d.is_signed() else 0
    d = abs(d)
    exponent = d.as_tuple().exponent
    scale = max(0, -int(exponent))
    text = format(d, "f")
    whole, _, fraction = text.partition(".")
    whole = whole.lstrip("0")
    pad_whole = (-len(whole)) % 4
    whole = "0" * pad_whole + whole
    fraction = fraction + "0" * ((-len(fraction)) % 4)
    groups = [int(whole[i:i + 4]) for i in range(0, len(whole), 4)]
    weight = len(groups) - 1
    groups += [int(fraction[i:i + 4]) for i in range(0, len(fraction), 4)]
    while groups and groups[-1] == 0:
        groups.pop()
    while groups and groups[0] == 0:
        groups.pop(0)
        weight -= 1
    if not groups:
        weight, sign = 0, 0
    return struct.pack(f"!hhHH{len(groups)}h", len(groups), weight, sign, scale, *groups)


def _timestamp_binary(value: dt.datetime) -> bytes:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    delta = value - EPOCH
    return struct.pack("!q", (delta.days * 86_400 + delta.seconds) * 1_000_000
                       + delta.microseconds)


def _time_binary(value: dt.time) -> bytes:
    micros = ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000
    return struct.pack("!q", micros + value.microsecond)


def _interval_binary(value: dt.timedelta) -> bytes:
    micros = value.seconds * 1_000_000 + value.microseconds
    return struct.pack("!qii", micros, value.days, 0)


_BINARY: dict[str, Callable[[Any], bytes]] = {
    "bool": lambda v: b"\x01" if v else b"\x00",
    "int2": lambda v: struct.pack("!h", v),
    "int4": lambda v: struct.pack("!i", v),
    "int8": lambda v: struct.pack("!q", v),
    "oid": lambda v: struct.pack("!I", v & 0xFFFFFFFF),
    "regproc": lambda v: struct.pack("!I", int(v) & 0xFFFFFFFF),
    "float4": lambda v: struct.pack("!f", v),
    "float8": lambda v: struct.pack("!d", v),
    "numeric": _numeric_binary,
    "date": lambda v: struct.pack("!i", v.toordinal() - _EPOCH_DAYS),
    "timestamp": _timestamp_binary,
    "timestamptz": _timestamp_binary,
    "time": _time_binary,
    "interval": _interval_binary,
    "bytea": lambda v: bytes(v),
}
for _name in ("text", "varchar", "name", "bpchar", "char", "json", "unknown", "uuid"):
    _BINARY[_name] = lambda v: str(v).encode()


def _binary_array(pg: PgType) -> Callable[[Any], bytes]:
    element = pgtypes.BY_NAME.get(pg.name[1:], pgtypes.TEXT)
    encode = _BINARY.get(element.name) or _text_bytes(element)

    def array(values: list[Any]) -> bytes:
        parts = [struct.pack("!iii", 1, int(any(v is None for v in values)), element.oid),
                 struct.pack("!ii", len(values), 1)]
        for value in values:
            if value is None:
                parts.append(struct.pack("!i", -1))
            else:
                data = encode(value)
                parts.append(struct.pack("!i", len(data)) + data)
        if not values:
            return struct.pack("!iii", 0, 0, element.oid)
        return b"".join(parts)

    return array


# Parameters ----------------------------------------------------------------------------------

def decode_parameter(data: bytes | None, oid: int, binary: bool) -> Any:
    """A bound parameter's value (its declared type, else read from its text)."""
    if data is None:
        return None
    if not binary:
        text = data.decode("utf-8", "replace")
        return _typed_text(text, oid)
    try:
        if oid == pgtypes.BOOL.oid:
            return data != b"\x00"
        if oid == pgtypes.INT2.oid:
            return struct.unpack("!h", data)[0]
        if oid == pgtypes.INT4.oid:
            return struct.unpack("!i", data)[0]
        if oid == pgtypes.OID.oid:
            return struct.unpack("!I", data)[0]
        if oid == pgtypes.INT8.oid:
            return struct.unpack("!q", data)[0]
        if oid == pgtypes.FLOAT4.oid:
            return struct.unpack("!f", data)[0]
        if oid == pgtypes.FLOAT8.oid:
            return struct.unpack("!d", data)[0]
        if oid == pgtypes.DATE.oid:
            return dt.date.fromordinal(struct.unpack("!i", data)[0] + _EPOCH_DAYS)
        if oid in (pgtypes.TIMESTAMP.oid, pgtypes.TIMESTAMPTZ.oid):
            return EPOCH + dt.timedelta(microseconds=struct.unpack("!q", data)[0])
        if oid == pgtypes.NUMERIC.oid:
            return _numeric_from_binary(data)
    except struct.error:
        raise InvalidParameter(f"A binary parameter of type {oid} has {len(data)} bytes.") \
            from None
    return data.decode("utf-8", "replace")


# pgjdbc's setDate: the date with the client's zone offset, its type left unspecified (0)
_JDBC_DATE = re.compile(r"(\d{4}-\d{2}-\d{2}) [+-]\d{2}(:?\d{2})?")


def _typed_text(text: str, oid: int) -> Any:
    if oid in (0, pgtypes.DATE.oid) and (jdbc := _JDBC_DATE.fullmatch(text)):
        return dt.date.fromisoformat(jdbc.group(1))  # a date's zone does not move it
    try:
        if oid in (pgtypes.INT2.oid, pgtypes.INT4.oid, pgtypes.INT8.oid, pgtypes.OID.oid):
            return int(text)
        if oid in (pgtypes.FLOAT4.oid, pgtypes.FLOAT8.oid):
            return float(text)
        if oid == pgtypes.NUMERIC.oid:
            value = decimal.Decimal(text)
            return int(value) if value == value.to_integral_value() else value
        if oid == pgtypes.BOOL.oid:
            return text.lower() in ("t", "true", "1", "yes", "on")
        if oid == pgtypes.DATE.oid:
            return dt.date.fromisoformat(text)
        if oid in (pgtypes.TIMESTAMP.oid, pgtypes.TIMESTAMPTZ.oid):
            return dt.datetime.fromisoformat(text)
    except (ValueError, decimal.InvalidOperation):
        raise InvalidParameter(f"invalid input syntax for type {oid}: {text[:40]!r}") from None
    return text


def _numeric_from_binary(data: bytes) -> Any:
    ndigits, weight, sign, scale = struct.unpack("!hhHH", data[:8])
    if sign == 0xC000:
        return float("nan")
    digits = struct.unpack(f"!{ndigits}h", data[8:8 + 2 * ndigits])
    value = decimal.Decimal(0)
    for i, digit in enumerate(digits):
        value += decimal.Decimal(digit) * (decimal.Decimal(10000) ** (weight - i))
    if sign == 0x4000:
        value = -value
    return int(value) if scale == 0 else value.quantize(decimal.Decimal(1).scaleb(-scale))
