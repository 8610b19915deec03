"""Flight SQL's database-metadata commands, answered from the caller's SQL catalog (the one the
PostgreSQL endpoint serves, tally.sql.catalog): one catalog `tally`, one schema `public`, the
table `metrics` and one table per saved query, their columns typed as the SQL endpoint types
them (a member policy's hidden names are absent here as there).

Each answer has exactly the schema FlightSql.proto gives its command (field names, types and
nullability), its rows in the order it prescribes. Filter patterns are SQL LIKE patterns: `%`
any run of characters, `_` one character, `\\` escaping either; case-sensitive."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from tally.sql import pgtypes
from tally.sql.catalog import SCHEMA, SqlCatalog, Table
from tally.sql.pg_catalog import DATABASE
from tally.sql.pgtypes import PgType

CATALOG = DATABASE
TABLE_TYPE = "TABLE"
TABLE_TYPES = (TABLE_TYPE,)
_TEXT = pa.string()

CATALOGS_SCHEMA = pa.schema([pa.field("catalog_name", _TEXT, False)])
DB_SCHEMAS_SCHEMA = pa.schema([pa.field("catalog_name", _TEXT),
                               pa.field("db_schema_name", _TEXT, False)])
TABLE_TYPES_SCHEMA = pa.schema([pa.field("table_type", _TEXT, False)])
TABLES_SCHEMA = pa.schema([
    pa.field("catalog_name", _TEXT), pa.field("db_schema_name", _TEXT),
    pa.field("table_name", _TEXT, False), pa.field("table_type", _TEXT, False),
])
TABLES_WITH_SCHEMA = TABLES_SCHEMA.append(pa.field("table_schema", pa.binary(), False))
XDBC_TYPE_INFO_SCHEMA = pa.schema([
    pa.field("type_name", _TEXT, False),
    pa.field("data_type", pa.int32(), False),
    pa.field("column_size", pa.int32()),
    pa.field("literal_prefix", _TEXT),
    pa.field("literal_suffix", _TEXT),
    pa.field("create_params", pa.list_(pa.field("item", _TEXT, False))),
    pa.field("nullable", pa.int32(), False),
    pa.field("case_sensitive", pa.bool_(), False),
    pa.field("searchable", pa.int32(), False),
    pa.field("unsigned_attribute", pa.bool_()),
    pa.field("fixed_prec_scale", pa.bool_(), False),
    pa.field("auto_increment", pa.bool_()),
    pa.field("local_type_name", _TEXT),
    pa.field("minimum_scale", pa.int32()),
    pa.field("maximum_scale", pa.int32()),
    pa.field("sql_data_type", pa.int32(), False),
    pa.field("datetime_subcode", pa.int32()),
    pa.field("num_prec_radix", pa.int32()),
    pa.field("interval_precision", pa.int32()),
])

# FlightSql.proto's enums
_XDBC_NUMERIC, _XDBC_DOUBLE, _XDBC_VARCHAR, _XDBC_DATETIME = 2, 8, 12, 9
_XDBC_BIGINT, _XDBC_BIT = -5, -7
_XDBC_DATE, _XDBC_TIMESTAMP = 91, 93
_SUBCODE_DATE, _SUBCODE_TIMESTAMP = 1, 3
_NULLABLE = 1  # NULLABILITY_NULLABLE
_SEARCHABLE_FULL, _SEARCHABLE_BASIC = 3, 2


@dataclass(frozen=True)
class XdbcType:
    """One row of GetXdbcTypeInfo: a type tally's tables use."""

    pg: PgType
    type_name: str
    data_type: int
    column_size: int | None
    sql_data_type: int
    literal_prefix: str | None = None
    literal_suffix: str | None = None
    case_sensitive: bool = False
    searchable: int = _SEARCHABLE_BASIC
    unsigned: bool | None = None
    datetime_subcode: int | None = None
    radix: int | None = None
    create_params: tuple[str, ...] | None = None
    scales: tuple[int, int] | None = None


# The types of the columns tally.sql.catalog makes (and a boolean, for answers). A column of
# another type is named by its PostgreSQL name.
XDBC_TYPES: tuple[XdbcType, ...] = (
    XdbcType(pgtypes.BOOL, "BOOLEAN", _XDBC_BIT, 1, _XDBC_BIT),
    XdbcType(pgtypes.NUMERIC, "NUMERIC", _XDBC_NUMERIC, 38, _XDBC_NUMERIC, unsigned=False,
             radix=10, create_params=("precision", "scale"), scales=(0, 38)),
    XdbcType(pgtypes.INT8, "BIGINT", _XDBC_BIGINT, 19, _XDBC_BIGINT, unsigned=False,
             radix=10),
    XdbcType(pgtypes.FLOAT8, "DOUBLE PRECISION", _XDBC_DOUBLE, 53, _XDBC_DOUBLE,
             unsigned=False, radix=2),
    XdbcType(pgtypes.TEXT, "TEXT", _XDBC_VARCHAR, 2**31 - 1, _XDBC_VARCHAR, "'", "'",
             case_sensitive=True, searchable=_SEARCHABLE_FULL),
    XdbcType(pgtypes.DATE, "DATE", _XDBC_DATE, 10, _XDBC_DATETIME, "DATE '", "'",
             datetime_subcode=_SUBCODE_DATE),
    XdbcType(pgtypes.TIMESTAMP, "TIMESTAMP", _XDBC_TIMESTAMP, 26, _XDBC_DATETIME,
             "TIMESTAMP '", "'", datetime_subcode=_SUBCODE_TIMESTAMP),
)
_BY_PG = {t.pg.name: t for t in XDBC_TYPES}


def like(pattern: str, value: str) -> bool:
    """SQL LIKE: `%` any run, `_` one character, `\\` escapes the next character."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        i += 1
    return re.fullmatch("".join(out), value, re.DOTALL) is not None


def _matches(command: Any, field: str, value: str) -> bool:
    """A command's optional filter: absent matches everything."""
    if not command.HasField(field):
        return True
    return like(getattr(command, field), value)


def _catalog_matches(command: Any) -> bool:
    """`catalog` names one catalog exactly (an empty string: those without one, none here)."""
    return not command.HasField("catalog") or command.catalog == CATALOG


def catalogs() -> pa.Table:
    return pa.Table.from_pylist([{"catalog_name": CATALOG}], schema=CATALOGS_SCHEMA)


def db_schemas(command: Any) -> pa.Table:
    rows = []
    if _catalog_matches(command) and _matches(command, "db_schema_filter_pattern", SCHEMA):
        rows.append({"catalog_name": CATALOG, "db_schema_name": SCHEMA})
    return pa.Table.from_pylist(rows, schema=DB_SCHEMAS_SCHEMA)


def table_types() -> pa.Table:
    return pa.Table.from_pylist([{"table_type": t} for t in TABLE_TYPES],
                                schema=TABLE_TYPES_SCHEMA)


def tables(command: Any, catalog: SqlCatalog) -> pa.Table:
    """GetTables: the caller's tables within the command's filters, by name; with each
    table's Arrow schema (an IPC-serialized Schema message) when include_schema."""
    wanted = set(command.table_types)
    found: list[Table] = []
    if _catalog_matches(command) and _matches(command, "db_schema_filter_pattern", SCHEMA) \
            and (not wanted or TABLE_TYPE in wanted):
        found = sorted((t for t in catalog.tables
                        if _matches(command, "table_name_filter_pattern", t.name)),
                       key=lambda t: t.name)
    rows: list[dict[str, Any]] = [
        {"catalog_name": CATALOG, "db_schema_name": SCHEMA, "table_name": t.name,
         "table_type": TABLE_TYPE} for t in found
    ]
    if not command.include_schema:
        return pa.Table.from_pylist(rows, schema=TABLES_SCHEMA)
    for row, table in zip(rows, found, strict=True):
        row["table_schema"] = arrow_schema(table).serialize().to_pybytes()
    return pa.Table.from_pylist(rows, schema=TABLES_WITH_SCHEMA)


def arrow_schema(table: Table) -> pa.Schema:
    """A table's columns as Arrow fields (the types its answers carry), each with Flight SQL's
    column metadata (ARROW:FLIGHT:SQL:*: its catalog, schema, table, type name, remarks)."""
    fields = []
    for column in table.columns:
        xdbc = _BY_PG.get(column.type.name)
        metadata = {
            "ARROW:FLIGHT:SQL:CATALOG_NAME": CATALOG,
            "ARROW:FLIGHT:SQL:SCHEMA_NAME": SCHEMA,
            "ARROW:FLIGHT:SQL:TABLE_NAME": table.name,
            "ARROW:FLIGHT:SQL:TYPE_NAME": xdbc.type_name if xdbc else column.type.sql_name,
            "ARROW:FLIGHT:SQL:IS_AUTO_INCREMENT": "0",
            "ARROW:FLIGHT:SQL:IS_CASE_SENSITIVE": "1" if column.type is pgtypes.TEXT else "0",
            "ARROW:FLIGHT:SQL:IS_READ_ONLY": "1",
            "ARROW:FLIGHT:SQL:IS_SEARCHABLE": "1",
        }
        if column.comment:
            metadata["ARROW:FLIGHT:SQL:REMARKS"] = column.comment
        fields.append(pa.field(column.name, column.type.arrow(), True, metadata))
    return pa.schema(fields)


def xdbc_type_info(command: Any) -> pa.Table:
    """GetXdbcTypeInfo: the types tally's tables use (one, when data_type is asked for),
    ordered by data_type, then type_name."""
    types = [t for t in XDBC_TYPES
             if not command.HasField("data_type") or t.data_type == command.data_type]
    rows = [{
        "type_name": t.type_name, "data_type": t.data_type, "column_size": t.column_size,
        "literal_prefix": t.literal_prefix, "literal_suffix": t.literal_suffix,
        "create_params": list(t.create_params) if t.create_params else None,
        "nullable": _NULLABLE, "case_sensitive": t.case_sensitive,
        "searchable": t.searchable, "unsigned_attribute": t.unsigned,
        "fixed_prec_scale": False, "auto_increment": False if t.radix else None,
        "local_type_name": t.pg.sql_name, "minimum_scale": t.scales[0] if t.scales else None,
        "maximum_scale": t.scales[1] if t.scales else None,
        "sql_data_type": t.sql_data_type, "datetime_subcode": t.datetime_subcode,
        "num_prec_radix": t.radix, "interval_precision": None,
    } for t in sorted(types, key=lambda t: (t.data_type, t.type_name))]
    return pa.Table.from_pylist(rows, schema=XDBC_TYPE_INFO_SCHEMA)
