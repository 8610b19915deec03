"""Flight SQL's fixed-schema answers: GetSqlInfo (what the server is and supports) and
GetPrimaryKeys (empty: tally's tables have no keys). The catalog, schema, table and type
commands are answered from the caller's SQL catalog (tally.flight.tables).

GetSqlInfo's schema is exactly the specification's, field for field and union type code for
type code: the Go ADBC driver reads it when a connection opens and casts each union child to
the type the specification gives it."""

from __future__ import annotations

import pyarrow as pa

import tally
from tally.flight import proto

VALUE = pa.dense_union(
    [
        pa.field("string_value", pa.string()),
        pa.field("bool_value", pa.bool_()),
        pa.field("bigint_value", pa.int64()),
        pa.field("int32_bitmask", pa.int32()),
        pa.field("string_list", pa.list_(pa.field("item", pa.string()))),
        pa.field(
            "int32_to_int32_list_map",
            pa.map_(pa.int32(), pa.list_(pa.field("item", pa.int32()))),
        ),
    ],
    type_codes=[0, 1, 2, 3, 4, 5],
)
SQL_INFO_SCHEMA = pa.schema(
    [pa.field("info_name", pa.uint32(), nullable=False), pa.field("value", VALUE, nullable=False)]
)
_STRING, _BOOL, _INT32 = 0, 1, 3

# SqlInfo ids of the specification, with tally's answers.
SERVER_NAME, SERVER_VERSION, SERVER_ARROW_VERSION, SERVER_READ_ONLY = 0, 1, 2, 3
SERVER_SQL, SERVER_SUBSTRAIT, SERVER_TRANSACTION, SERVER_CANCEL = 4, 5, 8, 9
STATEMENT_TIMEOUT, TRANSACTION_TIMEOUT = 100, 101
DDL_CATALOG, DDL_SCHEMA, DDL_TABLE, IDENTIFIER_CASE, IDENTIFIER_QUOTE_CHAR = (
    500, 501, 502, 503, 504)
QUOTED_IDENTIFIER_CASE = 505
ALL_TABLES_ARE_SELECTABLE, NULL_ORDERING, SEARCH_STRING_ESCAPE = 506, 507, 513
SUPPORTS_COLUMN_ALIASING, NULL_PLUS_NULL_IS_NULL = 515, 516
_NULLS_SORTED_HIGH = 0
_CASE_INSENSITIVE = 1
_TRANSACTION_NONE = 0


def sql_info(requested: list[int], timeout_seconds: float) -> pa.Table:
    """The rows of GetSqlInfo for the ids asked for (every id tally answers when none)."""
    answers: dict[int, tuple[int, object]] = {
        SERVER_NAME: (_STRING, "tally"),
        SERVER_VERSION: (_STRING, getattr(tally, "__version__", "0.1.0")),
        SERVER_ARROW_VERSION: (_STRING, pa.__version__),
        SERVER_READ_ONLY: (_BOOL, True),
        SERVER_SQL: (_BOOL, True),
        SERVER_SUBSTRAIT: (_BOOL, False),
        SERVER_TRANSACTION: (_INT32, _TRANSACTION_NONE),
        SERVER_CANCEL: (_BOOL, False),
        STATEMENT_TIMEOUT: (_INT32, int(timeout_seconds * 1000)),
        TRANSACTION_TIMEOUT: (_INT32, 0),
        DDL_CATALOG: (_BOOL, False),
        DDL_SCHEMA: (_BOOL, False),
        DDL_TABLE: (_BOOL, False),
        IDENTIFIER_CASE: (_INT32, _CASE_INSENSITIVE),
        IDENTIFIER_QUOTE_CHAR: (_STRING, '"'),
        QUOTED_IDENTIFIER_CASE: (_INT32, _CASE_INSENSITIVE),
        ALL_TABLES_ARE_SELECTABLE: (_BOOL, True),
        NULL_ORDERING: (_INT32, _NULLS_SORTED_HIGH),  # PostgreSQL's: NULLS LAST ascending
        SEARCH_STRING_ESCAPE: (_STRING, "\\"),  # in GetTables' and GetDbSchemas' patterns
        SUPPORTS_COLUMN_ALIASING: (_BOOL, True),
        NULL_PLUS_NULL_IS_NULL: (_BOOL, True),
    }
    # Each id once, however often asked (a request of a million ids is a few rows).
    ids = [i for i in dict.fromkeys(requested or sorted(answers)) if i in answers]
    children: dict[int, list] = {0: [], 1: [], 2: [], 3: [], 4: [], 5: []}
    types, offsets = [], []
    for info_id in ids:
        code, value = answers[info_id]
        types.append(code)
        offsets.append(len(children[code]))
        children[code].append(value)
    value_type = VALUE
    arrays = [
        pa.array(children[code], value_type.field(code).type) for code in range(len(children))
    ]
    values = pa.UnionArray.from_dense(
        pa.array(types, pa.int8()),
        pa.array(offsets, pa.int32()),
        arrays,
        [value_type.field(i).name for i in range(value_type.num_fields)],
        [0, 1, 2, 3, 4, 5],
    )
    return pa.Table.from_arrays([pa.array(ids, pa.uint32()), values], schema=SQL_INFO_SCHEMA)


def _empty(*fields: pa.Field) -> pa.Table:
    return pa.schema(list(fields)).empty_table()


def metadata(command: object) -> pa.Table | None:
    """The (empty) answer to GetPrimaryKeys, or None for another command."""
    name = proto.name_of(command)  # type: ignore[arg-type]
    text, required = pa.string(), False
    if name == "CommandGetPrimaryKeys":
        return _empty(pa.field("catalog_name", text), pa.field("db_schema_name", text),
                      pa.field("table_name", text, required),
                      pa.field("column_name", text, required), pa.field("key_name", text),
                      pa.field("key_sequence", pa.int32(), required))
    if name == "CommandGetSqlInfo":
        return None
    return None
