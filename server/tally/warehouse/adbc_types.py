"""The Arrow types of PostgreSQL's ADBC driver, made the ones the psycopg2 engine returns, so a
result (its cache entry, its Arrow stream, its JSON column types) does not depend on the path
that computed it.

psycopg2 gives Python values and `pyarrow.array` infers the types: NUMERIC becomes `Decimal`
and then the narrowest decimal holding every value, integers int64, floats float64, zoned
timestamps naive UTC (tally's convention). The ADBC driver gives NUMERIC as its text, narrower
integers and floats as they are declared, and PostgreSQL's type names as field metadata.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from tally.errors import WarehouseError

_DECIMAL128_DIGITS = 38
_DECIMAL256_DIGITS = 76


def arrow_result(table: pa.Table) -> pa.Table:
    """The driver's table with psycopg2's types (and no driver metadata)."""
    columns = []
    fields = []
    for field, column in zip(table.schema, table.columns, strict=True):
        column = _column(field, column)
        columns.append(column)
        fields.append(pa.field(field.name, column.type))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def _column(field: pa.Field, column: pa.ChunkedArray) -> pa.ChunkedArray:
    t = field.type
    if isinstance(t, pa.BaseExtensionType):
        meta = field.metadata or {}
        storage = pa.chunked_array([c.storage for c in column.chunks], t.storage_type)
        if meta.get(b"POSTGRESQL:type") == b"numeric":
            return numeric(storage, _typmod(meta.get(b"POSTGRESQL:typmod")))
        if isinstance(t, pa.UuidType):  # psycopg2 reads uuid as text
            return pa.chunked_array([pa.array([None if u is None else str(u) for u in
                                               column.to_pylist()], pa.string())])
        return storage  # json and types the driver does not know: their text
    if pa.types.is_integer(t) and t != pa.int64():
        return column.cast(pa.int64())
    if pa.types.is_floating(t) and t != pa.float64():
        return column.cast(pa.float64())
    if pa.types.is_timestamp(t) and t.tz is not None:
        # Sessions run at UTC: the naive value is the UTC one, as DuckDB returns it.
        return column.cast(pa.timestamp(t.unit))
    return column


def numeric(text: pa.ChunkedArray, declared: tuple[int, int] | None = None) -> pa.ChunkedArray:
    """NUMERIC text (as PostgreSQL prints it: no exponent) as the decimal type `pyarrow.array`
    infers from the same values as `Decimal`s: scale the most fractional digits of any value,
    precision that plus the most integer digits (the zero of "0.5" is not a digit). A column
    with no value to size it takes the declared numeric(p, s), else decimal128(38, 0).
    Exact: the text is parsed into the decimal, never through a float."""
    values = pc.drop_null(text)
    if len(values) == 0:
        precision, scale = declared or (_DECIMAL128_DIGITS, 0)
        return pa.chunked_array([pa.nulls(len(text), _decimal(precision, scale))])
    if pc.any(pc.match_substring_regex(values, r"^-?[a-zA-Z]")).as_py():
        raise WarehouseError(
            "PostgreSQL returned NaN or Infinity in a NUMERIC column, which has no exact "
            "decimal form; cast the column to double precision in the model."
        )
    point = pc.find_substring(values, ".")
    length = pc.binary_length(values)
    has_point = pc.greater_equal(point, 0)
    scale = pc.if_else(has_point, pc.subtract(pc.subtract(length, point), 1), 0)
    integer = pc.subtract(pc.if_else(has_point, point, length),
                          pc.cast(pc.starts_with(values, "-"), pa.int32()))
    integer = pc.if_else(pc.match_substring_regex(values, r"^-?0\."), 0, integer)
    max_scale = pc.max(scale).as_py()
    precision = pc.max(integer).as_py() + max_scale
    return text.cast(_decimal(precision, max_scale))


def _decimal(precision: int, scale: int) -> pa.DataType:
    if precision <= _DECIMAL128_DIGITS:
        return pa.decimal128(precision, scale)
    if precision <= _DECIMAL256_DIGITS:
        return pa.decimal256(precision, scale)
    raise WarehouseError(
        f"A NUMERIC value has {precision} digits; Arrow decimals hold at most "
        f"{_DECIMAL256_DIGITS}."
    )


def _typmod(raw: bytes | None) -> tuple[int, int] | None:
    """numeric(p, s) from PostgreSQL's type modifier ((p << 16 | s) + 4; -1: unconstrained)."""
    try:
        typmod = int(raw or b"-1")
    except ValueError:
        return None
    if typmod < 4:
        return None
    precision, scale = (typmod - 4) >> 16, (typmod - 4) & 0xFFFF
    return (precision, scale) if 0 <= scale <= precision else None
