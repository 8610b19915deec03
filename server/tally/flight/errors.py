"""tally's errors as Flight statuses, in one place. A client sees a gRPC status code and a
message; the ADBC driver shows both ("[FlightSQL] Unknown metric 'revenu'. Did you mean
'revenue'? (InvalidArgument; ExecuteQuery)"), the Python SDK turns INVALID_ARGUMENT into its
QueryFailedError and UNAUTHENTICATED into its AuthError.

| tally | gRPC status |
|---|---|
| 401 unauthorized | UNAUTHENTICATED |
| 403 forbidden | PERMISSION_DENIED |
| 404 unknown name or id | NOT_FOUND |
| 429 too_many_requests, too_many_queries (a rate or a concurrency limit) | UNAVAILABLE |
| other 4xx (unknown metric, bad grain, malformed statement...) | INVALID_ARGUMENT |
| 503 warehouse or manifest unavailable | UNAVAILABLE |
| 504 query timeout | DEADLINE_EXCEEDED |
| other 5xx | INTERNAL (message without detail; the server log has them) |
| a Flight SQL command tally does not serve | UNIMPLEMENTED |

A limit is not a bad argument: a client must back off and retry the same call. gRPC's code
for that is RESOURCE_EXHAUSTED, which pyarrow's Flight server cannot send: it maps statuses
through Flight's own codes (arrow/flight/types.h, TransportStatusCode), which have no
resource-exhausted code, so any exception becomes one of OK, UNKNOWN, INTERNAL,
INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND, ALREADY_EXISTS, CANCELLED, UNAUTHENTICATED,
PERMISSION_DENIED, UNIMPLEMENTED or UNAVAILABLE (a MemoryError or ArrowMemoryError, the
nearest in name, leaves as UNKNOWN). UNAVAILABLE is the one gRPC documents as transient, "to
be corrected by retrying with a backoff", so a 429 leaves as UNAVAILABLE (the ADBC driver
reports it as IO). Its message says how long to wait, and its rich status (the
`grpc-status-details-bin` trailer, tally.flight.rich_status) has the same code, tally's
message without pyarrow's ". Detail: Unavailable", an ErrorInfo (reason TOO_MANY_REQUESTS,
domain tally) and a RetryInfo with the delay, for clients that read them (the ADBC driver
lists both among an error's details).

pyarrow turns a Python exception raised by a handler into a status whose message ends with
". Detail: Python exception: <traceback>". Only INVALID_ARGUMENT, NOT_FOUND and UNIMPLEMENTED
need a Python exception (Flight's own error classes have no such codes), so those carry a
marker class, and `install()` makes the traceback module format exactly that class as its
code alone: the caller reads a message, never a traceback. Every other exception formats
as before."""

from __future__ import annotations

import functools
import logging
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
import pyarrow.flight as fl

from tally.errors import TallyError
from tally.flight import rich_status
from tally.flight.proto import UnknownCommand

log = logging.getLogger("tally.flight")
INTERNAL_MESSAGE = "Internal server error; the server log has the details."
UNAVAILABLE = 14  # gRPC's code


class _CallerFault:
    """Marker: an error whose message is for the caller, with no traceback to show."""

    code = "error"

    def __str__(self) -> str:
        return self.message  # type: ignore[attr-defined]


class InvalidArgument(_CallerFault, pa.ArrowInvalid):  # -> INVALID_ARGUMENT
    def __init__(self, message: str, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.message, self.code = message, code


class NotFoundError(_CallerFault, pa.ArrowKeyError):  # -> NOT_FOUND
    def __init__(self, message: str, code: str = "not_found") -> None:
        super().__init__(message)
        self.message, self.code = message, code


class Unimplemented(_CallerFault, pa.ArrowNotImplementedError):  # -> UNIMPLEMENTED
    def __init__(self, message: str, code: str = "unimplemented") -> None:
        super().__init__(message)
        self.message, self.code = message, code


def flight_error(e: TallyError, message: str | None = None) -> Exception:
    """The Flight exception for one of tally's errors (with `message` instead of its own)."""
    message = e.message if message is None else message
    if e.status == 401:
        return fl.FlightUnauthenticatedError(message)
    if e.status == 403:
        return fl.FlightUnauthorizedError(message)
    if e.status in (404, 410):
        return NotFoundError(message, e.code)
    if e.status == 429:  # back off and retry: UNAVAILABLE (see above)
        wait = e.details.get("retry_after_seconds")
        return fl.FlightUnavailableError(message, rich_status.status(
            UNAVAILABLE, message, e.code, wait if isinstance(wait, int | float) else None))
    if e.status < 500:
        return InvalidArgument(message, e.code)
    log.warning("server fault %s over Flight: %s", e.code, message)
    if e.status == 503:
        return fl.FlightUnavailableError(message)
    if e.status == 504:
        return fl.FlightTimedOutError(message)
    return fl.FlightInternalError(message)


@contextmanager
def mapped() -> Iterator[None]:
    """Run a handler's body: tally's errors leave as Flight statuses, anything unexpected as
    INTERNAL (logged with its traceback here, never sent)."""
    try:
        yield
    except TallyError as e:
        raise flight_error(e) from None
    except UnknownCommand as e:
        raise Unimplemented(
            f"Flight SQL message {e.type_url[:100]} is not served by tally.", "unimplemented"
        ) from None
    except Exception as e:
        if isinstance(e, fl.FlightError | _CallerFault):  # already a status for the caller
            raise
        log.exception("Flight SQL handler failed")
        raise fl.FlightInternalError(INTERNAL_MESSAGE) from None


def handler(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A Flight server method whose errors go through `mapped`."""

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with mapped():
            return fn(*args, **kwargs)

    return wrapped


_original_format_exception = traceback.format_exception


def _format_exception(exc: Any, *args: Any, **kwargs: Any) -> list[str]:
    value = args[0] if args else kwargs.get("value", exc)
    if isinstance(value, _CallerFault):
        return [value.code]
    return _original_format_exception(exc, *args, **kwargs)


def install() -> None:
    """Format the caller's errors (and only those) without a traceback (see above)."""
    if traceback.format_exception is not _format_exception:
        traceback.format_exception = _format_exception  # type: ignore[assignment]
