"""Tool errors an agent can act on in one step: the one error shape (`{"error": {"code",
"message"}}`) plus, for an unknown name, the nearest valid names and the list of valid ones,
as far as the caller may see them (a policy's hidden names are never suggested)."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from tally.core.caller import Caller
from tally.errors import (
    CallerError,
    NotFound,
    TallyError,
    UnknownDimension,
    UnknownMetric,
    UnknownSavedQuery,
)
from tally.service import TallyService

MAX_LISTED = 200  # the valid names listed in one error; more would drown the agent's context


def nearest(name: str, candidates: Sequence[str], n: int = 5) -> list[str]:
    """The closest names first, then names that contain the asked one (`sales` for
    `total_sales`), without repeats."""
    close = difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.5)
    key = name.strip().lower()
    contained = [c for c in candidates if key and (key in c or c in key) and c not in close]
    return (close + contained)[:n]


def _names_for(
    error: TallyError, service: TallyService, caller: Caller, metrics: Sequence[str]
) -> tuple[str, list[str]] | None:
    """(kind, valid names) for an unknown-name error, from what this caller may see."""
    code = error.code
    if isinstance(error, UnknownMetric) or code == UnknownMetric.code:
        return "metrics", [m.name for m in service.list_metrics(caller)]
    if isinstance(error, UnknownSavedQuery) or code == UnknownSavedQuery.code:
        return "saved_queries", [q.name for q in service.list_saved_queries(caller)]
    if isinstance(error, UnknownDimension) or code == UnknownDimension.code:
        try:
            dims = service.list_dimensions(tuple(metrics), caller)
        except TallyError:
            dims = service.list_dimensions((), caller)
        return "dimensions", sorted({n for d in dims for n in d.group_by_names()})
    return None


def error_body(
    error: TallyError,
    service: TallyService,
    caller: Caller,
    *,
    asked: str | None = None,
    metrics: Sequence[str] = (),
) -> dict[str, Any]:
    """The error as a tool returns it. `asked`: the name the caller gave, when the tool takes
    one name (explain_metric); otherwise the error's own did-you-mean is the anchor."""
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if isinstance(error, CallerError | NotFound):
        try:
            found = _names_for(error, service, caller, metrics)
        except TallyError:  # listing failed (e.g. no meta scope): the message alone
            found = None
        if found is not None:
            kind, names = found
            anchor = asked or _asked_name(error.message) or ""
            suggestion = error.details.get("suggestion")
            near = nearest(anchor, names) if anchor else []
            if suggestion and suggestion in names and suggestion not in near:
                near.insert(0, suggestion)
            body["suggestions"] = near
            body[f"valid_{kind}"] = names[:MAX_LISTED]
            if len(names) > MAX_LISTED:
                body[f"valid_{kind}_truncated"] = True
    return {"error": body}


def _asked_name(message: str) -> str | None:
    """The name quoted first in a message ("Unknown metric 'revenu'. ...")."""
    _, quote, rest = message.partition("'")
    name, closing, _ = rest.partition("'")
    return name if quote and closing else None

