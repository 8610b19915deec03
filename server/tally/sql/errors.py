"""The SQL endpoints' errors: each a tally error (code, status, message) with the SQLSTATE a
PostgreSQL client expects, and `sqlstate_of` for every other tally error, so each transport
maps errors in one place."""

from __future__ import annotations

from typing import ClassVar

from tally import errors


class SqlError(errors.CallerError):
    """A statement tally refuses; `sqlstate` is PostgreSQL's code for the same refusal."""

    code = "invalid_sql"
    sqlstate: ClassVar[str] = "42601"


class SqlSyntaxError(SqlError):
    code = "sql_syntax_error"
    sqlstate = "42601"


class Unsupported(SqlError):
    code = "sql_unsupported"
    sqlstate = "0A000"


class UndefinedTable(SqlError):
    code = "sql_undefined_table"
    sqlstate = "42P01"


class UndefinedColumn(SqlError):
    code = "sql_undefined_column"
    sqlstate = "42703"


class UndefinedFunction(SqlError):
    code = "sql_undefined_function"
    sqlstate = "42883"


class GroupingError(SqlError):
    code = "sql_grouping_error"
    sqlstate = "42803"


class ReadOnly(SqlError):
    code = "sql_read_only"
    sqlstate = "25006"


class InvalidParameter(SqlError):
    code = "sql_invalid_parameter"
    sqlstate = "22023"


class NumericOutOfRange(SqlError):
    code = "sql_numeric_out_of_range"
    sqlstate = "22003"


class UndefinedObject(SqlError):
    code = "sql_undefined_object"
    sqlstate = "42704"


_BY_CODE = {
    "unauthorized": "28P01",
    "forbidden": "42501",
    "unknown_metric": "42703",
    "unknown_dimension": "42703",
    "unknown_name": "42703",
    "unknown_saved_query": "42P01",
    "invalid_grain": "22023",
    "invalid_filter": "42601",
    "invalid_order_by": "42601",
    "invalid_query": "0A000",
    "result_too_large": "54000",
    "too_many_queries": "53300",
    "too_many_requests": "53300",
    "query_cancelled": "57014",
    "query_timeout": "57014",
    "warehouse_unavailable": "08006",
    "manifest_unavailable": "08006",
    "auth_unavailable": "08006",
    "warehouse_data_error": "22000",
}


def sqlstate_of(error: BaseException) -> str:
    """PostgreSQL's SQLSTATE for a tally error (XX000 for an internal fault)."""
    if isinstance(error, SqlError):
        return error.sqlstate
    if isinstance(error, errors.TallyError):
        found = _BY_CODE.get(error.code)
        if found:
            return found
        return "22023" if isinstance(error, errors.CallerError) else "XX000"
    return "XX000"
