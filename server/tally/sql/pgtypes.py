"""The PostgreSQL types tally's SQL answers carry: their OIDs (the built-in ones, so no client
needs to introspect a type), names, sizes, and the Arrow and DuckDB types they stand for."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True)
class PgType:
    oid: int
    name: str  # pg_type.typname
    sql_name: str  # format_type(): what \d and information_schema show
    size: int  # typlen: -1 for variable length
    duckdb: str  # the DuckDB type a column of it is cast to
    category: str  # typcategory: B boolean, N numeric, S string, D date/time, U user

    def arrow(self) -> pa.DataType:
        return _ARROW[self.name]


BOOL = PgType(16, "bool", "boolean", 1, "BOOLEAN", "B")
INT2 = PgType(21, "int2", "smallint", 2, "SMALLINT", "N")
INT4 = PgType(23, "int4", "integer", 4, "INTEGER", "N")
INT8 = PgType(20, "int8", "bigint", 8, "BIGINT", "N")
FLOAT4 = PgType(700, "float4", "real", 4, "FLOAT", "N")
FLOAT8 = PgType(701, "float8", "double precision", 8, "DOUBLE", "N")
NUMERIC = PgType(1700, "numeric", "numeric", -1, "DECIMAL(38, 10)", "N")
TEXT = PgType(25, "text", "text", -1, "VARCHAR", "S")
VARCHAR = PgType(1043, "varchar", "character varying", -1, "VARCHAR", "S")
NAME = PgType(19, "name", "name", 64, "VARCHAR", "S")
CHAR = PgType(18, "char", '"char"', 1, "VARCHAR", "S")
BPCHAR = PgType(1042, "bpchar", "character", -1, "VARCHAR", "S")
DATE = PgType(1082, "date", "date", 4, "DATE", "D")
TIME = PgType(1083, "time", "time without time zone", 8, "TIME", "D")
TIMESTAMP = PgType(1114, "timestamp", "timestamp without time zone", 8, "TIMESTAMP", "D")
TIMESTAMPTZ = PgType(1184, "timestamptz", "timestamp with time zone", 8, "TIMESTAMPTZ", "D")
INTERVAL = PgType(1186, "interval", "interval", 16, "INTERVAL", "T")
OID = PgType(26, "oid", "oid", 4, "BIGINT", "N")
REGPROC = PgType(24, "regproc", "regproc", 4, "BIGINT", "N")
REGTYPE = PgType(2206, "regtype", "regtype", 4, "BIGINT", "N")
REGCLASS = PgType(2205, "regclass", "regclass", 4, "BIGINT", "N")
BYTEA = PgType(17, "bytea", "bytea", -1, "BLOB", "U")
JSON = PgType(114, "json", "json", -1, "VARCHAR", "U")
UUID = PgType(2950, "uuid", "uuid", 16, "UUID", "U")
TEXT_ARRAY = PgType(1009, "_text", "text[]", -1, "VARCHAR[]", "A")
INT2_ARRAY = PgType(1005, "_int2", "smallint[]", -1, "SMALLINT[]", "A")
INT4_ARRAY = PgType(1007, "_int4", "integer[]", -1, "INTEGER[]", "A")
INT8_ARRAY = PgType(1016, "_int8", "bigint[]", -1, "BIGINT[]", "A")
OID_ARRAY = PgType(1028, "_oid", "oid[]", -1, "BIGINT[]", "A")
CHAR_ARRAY = PgType(1002, "_char", '"char"[]', -1, "VARCHAR[]", "A")
NAME_ARRAY = PgType(1003, "_name", "name[]", -1, "VARCHAR[]", "A")
UNKNOWN = PgType(705, "unknown", "unknown", -2, "VARCHAR", "X")

TYPES: tuple[PgType, ...] = (
    BOOL, INT2, INT4, INT8, FLOAT4, FLOAT8, NUMERIC, TEXT, VARCHAR, NAME, CHAR, BPCHAR, DATE,
    TIME, TIMESTAMP, TIMESTAMPTZ, INTERVAL, OID, REGPROC, REGTYPE, REGCLASS, BYTEA, JSON, UUID,
    TEXT_ARRAY, INT2_ARRAY, INT4_ARRAY, INT8_ARRAY, OID_ARRAY, CHAR_ARRAY, NAME_ARRAY, UNKNOWN,
)
BY_OID = {t.oid: t for t in TYPES}
BY_NAME = {t.name: t for t in TYPES}
ARRAY_OF = {"text": TEXT_ARRAY, "int2": INT2_ARRAY, "int4": INT4_ARRAY, "int8": INT8_ARRAY,
            "oid": OID_ARRAY, "char": CHAR_ARRAY, "name": NAME_ARRAY}

_ARROW: dict[str, pa.DataType] = {
    "bool": pa.bool_(), "int2": pa.int16(), "int4": pa.int32(), "int8": pa.int64(),
    "float4": pa.float32(), "float8": pa.float64(), "numeric": pa.decimal128(38, 10),
    "text": pa.string(), "varchar": pa.string(), "name": pa.string(), "char": pa.string(),
    "bpchar": pa.string(), "date": pa.date32(), "time": pa.time64("us"),
    "timestamp": pa.timestamp("us"), "timestamptz": pa.timestamp("us", tz="UTC"),
    "interval": pa.month_day_nano_interval(), "oid": pa.int64(), "regproc": pa.int64(),
    "regtype": pa.int64(), "regclass": pa.int64(), "bytea": pa.binary(), "json": pa.string(),
    "uuid": pa.string(), "unknown": pa.string(),
    "_text": pa.list_(pa.string()), "_int2": pa.list_(pa.int16()),
    "_int4": pa.list_(pa.int32()), "_int8": pa.list_(pa.int64()), "_oid": pa.list_(pa.int64()),
    "_char": pa.list_(pa.string()), "_name": pa.list_(pa.string()),
}


def of_arrow(dtype: pa.DataType) -> PgType:
    """The PostgreSQL type a column of an Arrow type is sent as."""
    if pa.types.is_boolean(dtype):
        return BOOL
    if pa.types.is_int8(dtype) or pa.types.is_int16(dtype) or pa.types.is_uint8(dtype):
        return INT2
    if pa.types.is_int32(dtype) or pa.types.is_uint16(dtype):
        return INT4
    if pa.types.is_integer(dtype):
        return INT8
    if pa.types.is_float32(dtype) or pa.types.is_float16(dtype):
        return FLOAT4
    if pa.types.is_floating(dtype):
        return FLOAT8
    if pa.types.is_decimal(dtype):
        return NUMERIC
    if pa.types.is_date(dtype):
        return DATE
    if pa.types.is_timestamp(dtype):
        return TIMESTAMPTZ if dtype.tz else TIMESTAMP
    if pa.types.is_time(dtype):
        return TIME
    if pa.types.is_interval(dtype) or pa.types.is_duration(dtype):
        return INTERVAL
    if pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype):
        return BYTEA
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        inner = of_arrow(dtype.value_type)
        return ARRAY_OF.get(inner.name, TEXT_ARRAY)
    return TEXT
