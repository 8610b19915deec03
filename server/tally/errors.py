"""Typed errors. Every error tally raises carries a stable machine-readable `code`, an HTTP-like
`status` and a human message; transports map them to their own shape in one place.

`CallerError` (4xx) is the caller's mistake; `ServerFault` (5xx) is ours or the warehouse's.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Any, ClassVar


class TallyError(Exception):
    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = {k: v for k, v in details.items() if v is not None}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return {"error": body}


class CallerError(TallyError):
    """The request is wrong; retrying it unchanged will fail again."""

    code = "invalid_request"
    status = 400


class InvalidRequest(CallerError):
    code = "invalid_request"


class UnknownName(CallerError):
    """A name the catalog does not have, with a suggestion among `candidates`. A caller who
    may not see every candidate reads the error `narrowed` to what it may see: a suggestion
    must never name a metric or dimension the caller is denied."""

    code = "unknown_name"
    noun: ClassVar[str] = "name"

    def __init__(
        self,
        message: str,
        *,
        asked: str | None = None,
        candidates: Iterable[str] = (),
        **details: Any,
    ) -> None:
        super().__init__(message, **details)
        self.asked = asked
        self.candidates = tuple(candidates)

    def narrowed(self, visible: Callable[[str], bool]) -> UnknownName:
        named = [self.details.get("suggestion"), *self.details.get("available", ())]
        if all(visible(n) for n in named if n):
            return self
        candidates = [c for c in self.candidates if visible(c)]
        if self.asked is None:
            return type(self)(f"Unknown {self.noun}.")
        hint, best = suggestion_suffix(self.asked, candidates)
        return type(self)(f"Unknown {self.noun} {shorten(self.asked)}.{hint}",
                          asked=self.asked, candidates=candidates, suggestion=best)  # fmt: skip


class UnknownMetric(UnknownName):
    code = "unknown_metric"
    noun = "metric"


class UnknownDimension(UnknownName):
    code = "unknown_dimension"
    noun = "dimension"


class UnknownSavedQuery(UnknownName):
    code = "unknown_saved_query"
    noun = "saved query"


class NotFound(CallerError):
    """A named resource (GET /metrics/{name}) does not exist; `code` is set per instance."""

    status = 404

    def __init__(self, message: str, code: str = "not_found", **details: Any) -> None:
        super().__init__(message, **details)
        self.code = code  # type: ignore[misc]

    @classmethod
    def of(cls, error: CallerError) -> NotFound:
        """The same error on a resource route (GET /metrics/{name}): 404, same code."""
        return cls(error.message, code=error.code, **error.details)


class InvalidGrain(CallerError):
    code = "invalid_grain"


class InvalidFilter(CallerError):
    code = "invalid_filter"


class InvalidOrderBy(CallerError):
    code = "invalid_order_by"


class InvalidQuery(CallerError):
    """MetricFlow cannot answer this combination (e.g. a dimension no metric of it reaches)."""

    code = "invalid_query"


class ResultTooLarge(CallerError):
    code = "result_too_large"


class Forbidden(CallerError):
    """The caller is known but may not see this (a metric, a dimension, a route)."""

    code = "forbidden"
    status = 403


class Unauthorized(CallerError):
    """No credentials, or credentials that do not hold (bad signature, expired, revoked)."""

    code = "unauthorized"
    status = 401


class UnknownQuery(CallerError):
    """An asynchronous query id that this server never issued to this caller."""

    code = "unknown_query"
    status = 404


class QueryExpired(CallerError):
    """An asynchronous query whose result is no longer kept."""

    code = "query_expired"
    status = 410


class QueryCancelled(CallerError):
    """An asynchronous query its caller cancelled."""

    code = "query_cancelled"
    status = 409


class QueryNotReady(CallerError):
    """The result of an asynchronous query that has not finished yet."""

    code = "query_not_ready"
    status = 409


class TooManyQueries(CallerError):
    """More asynchronous queries are held than the server keeps; retry later."""

    code = "too_many_queries"
    status = 429


class ServerFault(TallyError):
    code = "internal_error"
    status = 500


class ManifestUnavailable(ServerFault):
    code = "manifest_unavailable"
    status = 503


class ManifestMismatch(ManifestUnavailable):
    """The manifest was parsed for another kind of warehouse than the one tally queries."""

    code = "manifest_mismatch"


class WarehouseError(ServerFault):
    code = "warehouse_error"
    status = 502


class QueryDataError(WarehouseError):
    """The warehouse refused a value or a type in the query (a string compared with a number,
    a malformed date). Raised by warehouse drivers; the service turns it into InvalidFilter
    when the query has filters, the only place a caller's values enter the SQL."""

    code = "warehouse_data_error"


class WarehouseUnavailable(ServerFault):
    code = "warehouse_unavailable"
    status = 503


class QueryTimeout(ServerFault):
    code = "query_timeout"
    status = 504


class AuthUnavailable(ServerFault):
    """The server cannot check credentials (its API key store is missing or unreadable): it
    refuses rather than serve openly. The message names no path; the log does."""

    code = "auth_unavailable"
    status = 503


class ConfigurationError(ServerFault):
    """The project, profile or target tally was pointed at is wrong (no dbt_project.yml, an
    unknown target, a missing environment variable). A fault of the server's set-up over HTTP;
    the caller's own mistake on the command line, where the caller passed those flags."""

    code = "configuration_error"
    status = 500


class CompileFault(ServerFault):
    code = "compile_error"
    status = 500


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to a misspelt name, or None when nothing is close."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def suggestion_suffix(name: str, candidates: Iterable[str]) -> tuple[str, str | None]:
    """(" Did you mean 'x'?", "x") or ("", None)."""
    best = did_you_mean(name, candidates)
    return (f" Did you mean '{best}'?", best) if best else ("", None)


def shorten(value: Any, width: int = 60) -> str:
    """repr() of a caller's value, cut short: an error message never echoes a huge input."""
    return cut(repr(value), width)


def cut(text: str, width: int = 60) -> str:
    """A caller's text inside a message, cut short."""
    return text if len(text) <= width else f"{text[:width]}... ({len(text)} characters)"
