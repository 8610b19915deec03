"""Semantic names (entities, dimensions) that are SQL keywords. MetricFlow writes a semantic
name as a bare identifier (`SELECT order ... GROUP BY order` for the `order` entity), which the
warehouse cannot parse.
Those identifiers are quoted in the compiled SQL: the same lower-case name, so every other
reference to it still matches, and nothing else changes (strings and comments are left as
they are; the tokenizer tells them apart)."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from sqlglot.dialects.dialect import Dialect
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.tokens import TokenType

# DuckDB's list covers the SQL standard's reserved words (sqlglot has none for PostgreSQL):
# the default for an engine that declares none of its own.
STANDARD_RESERVED = frozenset(DuckDB.Generator.RESERVED_KEYWORDS)


@functools.lru_cache(maxsize=64)
def _bare(names: frozenset[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(n) for n in sorted(names))
    return re.compile(rf'(?<![\w"])(?:{alternatives})(?![\w"])')


def reserved_names(names: Iterable[str], words: frozenset[str] = frozenset()) -> frozenset[str]:
    """The names among `names` that are reserved words of the engine (`words`, else the SQL
    standard's)."""
    reserved = words or STANDARD_RESERVED
    return frozenset(n for n in names if n.lower() in reserved)


def quote_reserved(sql: str, names: frozenset[str], dialect: str) -> str:
    """`sql` with every bare identifier in `names` quoted the dialect's way (double quotes;
    backticks on Spark, Databricks, BigQuery)."""
    # Most SQL never names one bare (`order` is inside order_id, order_date...): a regex says
    # so in microseconds, where tokenizing costs about a millisecond.
    if not names or not _bare(names).search(sql):
        return sql
    out: list[str] = []
    last = 0
    engine = Dialect.get_or_raise(dialect)
    start, end = engine.IDENTIFIER_START, engine.IDENTIFIER_END
    for token in engine.tokenize(sql):
        if token.token_type == TokenType.VAR and token.text in names:
            out += [sql[last : token.start], f"{start}{token.text}{end}"]
            last = token.end + 1
    return "".join(out) + sql[last:]
