"""Cache keys. A key is the normalized request + the manifest version + the data version + the
caller's access context, hashed. Two spellings of one question share a key; a rebuilt warehouse,
a new manifest or another caller never does."""

from __future__ import annotations

import functools
import hashlib
import json

from tally.core.filters import StructuredFilter, check_where, literal_spellings
from tally.core.request import QueryRequest, Where
from tally.errors import InvalidFilter


@functools.lru_cache(maxsize=4096)
def canonical_where(clause: Where, dialect: str = "duckdb") -> str:
    """One spelling per filter: keyword case, spaces between tokens and the quotes around a
    reference's name do not matter, nor whether it was written as SQL or as a structured
    filter. Values are never rewritten (sqlglot keeps each literal's text). A clause that
    does not parse is kept exactly (it is rejected when the query is compiled). Parsed in the
    warehouse's dialect: spellings it writes alike are the same SQL there (DuckDB writes CHAR
    and VARCHAR alike, PostgreSQL does not)."""
    text = _text(clause, dialect)
    if text is None:
        return repr(clause)
    try:
        return check_where(text, dialect).sql
    except InvalidFilter:
        return text


@functools.lru_cache(maxsize=4096)
def where_key(clause: Where, dialect: str = "duckdb") -> tuple[str, tuple[str, ...]]:
    """A filter as key material: its canonical SQL and each value exactly as written."""
    text = _text(clause, dialect)
    spellings = literal_spellings(text, dialect) if text is not None else ()
    return canonical_where(clause, dialect), spellings


def _text(clause: Where, dialect: str = "duckdb") -> str | None:
    if isinstance(clause, StructuredFilter):
        try:
            return clause.to_where(dialect)
        except InvalidFilter:
            return None
    return clause


def effective_order(request: QueryRequest) -> tuple[str, ...]:
    """The order that decides which rows a limit keeps (explicit, else group-by order). Without
    a limit the order decides nothing about the rows, only how they are sorted, and the service
    sorts a cached table into each caller's order, so it is left out of the key."""
    if request.limit is None:
        return ()
    return request.row_order


# A cache hit computes its key again for every request; the same question under the same
# versions has the same key, so the hashing is remembered (requests are frozen and hashable).
@functools.lru_cache(maxsize=4096)
def result_key(
    request: QueryRequest,
    manifest_version: str,
    data_version: str,
    access: tuple[tuple[str, str], ...] = (),
    dialect: str = "duckdb",
) -> str:
    """The key of a result: the question, the definitions, the data, and who may see it.
    `dialect`: the warehouse's, in which filters are compared."""
    n = request.normalized()
    payload = {
        "metrics": n.metrics,
        "group_by": n.group_by,
        "where": sorted(where_key(w, dialect) for w in n.where),
        "order": effective_order(request),
        "limit": n.limit,
        "saved_query": n.saved_query,
        "start": n.start.isoformat() if n.start else None,
        "end": n.end.isoformat() if n.end else None,
        "access": access,
        "dialect": dialect,
        "manifest": manifest_version,
        "data": data_version,
    }
    raw = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:32]
