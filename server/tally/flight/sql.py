"""Plain SQL on the Flight SQL port: a statement that is not in the dbt Semantic Layer's
dialect (`{{ semantic_layer.query(...) }}`) runs through tally's SQL over metrics
(tally.sql.session, the same engine and catalog as the PostgreSQL endpoint), as the caller.

The SQL session is asynchronous; a Flight handler runs on a thread of pyarrow's own with no
event loop, so each statement runs in an event loop of its own on that thread (its blocking
calls go to the service's query pool as on the PostgreSQL endpoint). A refusal leaves as the
Flight status of its tally error, its message ending with PostgreSQL's SQLSTATE for it:
"... (SQLSTATE 0A000)" (and, for an unknown table or a syntax error, a word on the dbt
Semantic Layer's dialect, which the statement may have been meant in)."""

from __future__ import annotations

import asyncio
import re

import pyarrow as pa

from tally.core.caller import Caller
from tally.errors import TallyError
from tally.flight.errors import flight_error
from tally.sql.errors import sqlstate_of
from tally.sql.session import SqlEngine, SqlResult

# SQLSTATEs of a statement that may have been meant in the dbt Semantic Layer's dialect.
_HINTED = ("42601", "42P01")
HINT = ("On this port a statement may also be in the dbt Semantic Layer's dialect: "
        "select * from {{ semantic_layer.query(metrics=['<metric>'], "
        "group_by=['metric_time__month']) }}")
_JINJA = re.compile(r"^\s*(select\s+\*\s+from\s+)?\{\{", re.IGNORECASE)


def is_semantic_layer(text: str) -> bool:
    """A statement in the dbt Semantic Layer's dialect (or meant to be: its errors are that
    dialect's): it opens with `{{` (after an optional `select * from`), or names
    `semantic_layer.` inside `{{ }}`; an empty statement too (the dialect's usage message)."""
    if not isinstance(text, str) or not text.strip():
        return True
    return bool(_JINJA.match(text)) or ("{{" in text and "semantic_layer." in text)


def run(engine: SqlEngine, caller: Caller, text: str, describe_only: bool = False) -> pa.Table:
    """The statement's answer as one Arrow table of its declared column types (no rows when
    `describe_only`: its schema only)."""
    session = engine.session(caller)
    try:
        result = asyncio.run(session.execute(text, describe_only=describe_only))
    except TallyError as e:
        state = sqlstate_of(e)
        hint = f" {HINT}" if state in _HINTED else ""
        raise flight_error(e, f"{e.message} (SQLSTATE {state}){hint}") from None
    return table_of(result)


def table_of(result: SqlResult) -> pa.Table:
    """A SQL answer as an Arrow table (a command without rows, SET or BEGIN: no columns)."""
    declared = pa.schema([(name, pg.arrow()) for name, pg in result.columns])
    batches = list(result.batches())
    if not batches:
        return declared.empty_table()
    return pa.Table.from_batches(batches, schema=batches[0].schema)
