"""Who is asking: the caller's context that every transport passes to the service beside the
request. The request says what is asked; the caller says who asks and through what, which
decides what the caller may see and which cached results it may share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from tally.core.access import Grant


@dataclass(frozen=True)
class Caller:
    #: The transport the request came through (rest, graphql, cli, flight, mcp, ...): the
    #: query log and the Prometheus counters say which.
    transport: str = "python"
    #: The transport's request id (X-Request-ID over HTTP), for the query log line.
    request_id: str = "-"
    #: The authenticated subject (an API key's name, a token's `sub`); None: anonymous.
    subject: str | None = None
    #: The caller's access context, part of every cache key: two callers with different
    #: contexts never share a cached result.
    access: tuple[tuple[str, str], ...] = ()
    #: What the caller may do: meta (catalog), query, sql (see compiled SQL), admin.
    scopes: frozenset[str] = frozenset({"meta", "query", "sql", "admin"})
    #: The claims of the caller's token or key (policies read them); never logged whole.
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    #: What the caller may see (access policies); None: everything.
    grant: Grant | None = None
    #: Anything else a transport wants logged with the query (never secrets).
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def of(cls, transport: str, request_id: str = "-", access: Mapping[str, Any] | None = None,
           subject: str | None = None) -> Caller:
        return cls(
            transport=transport,
            request_id=request_id,
            subject=subject,
            access=tuple(sorted((str(k), str(v)) for k, v in (access or {}).items())),
        )

    @classmethod
    def local(cls, transport: str) -> Caller:
        """A tool running beside the project with its files (the CLI, validate and diff, cache
        warming, monitors, a Python program): every scope, no policy. Never the caller of a
        network request: those get theirs from `TallyService.authenticate`."""
        return cls(transport=transport)

    @property
    def group(self) -> str | None:
        """The group whose callers share limits beyond each one's own: the embed tokens of
        one minting key (each has a subject of its own); None for a caller on its own."""
        group = self.extra.get("group")
        return str(group) if group else None

    def with_transport(self, transport: str) -> Caller:
        return replace(self, transport=transport)

    def has(self, scope: str) -> bool:
        return scope in self.scopes


#: Where a transport that authenticated a request early (before reading its body) keeps the
#: caller in the ASGI scope's state, for the route's own code to find (one authentication and
#: one rate-limit token per request).
SCOPE_KEY = "tally_caller"

#: Full access, no subject: what `Caller.local` gives a tool of no particular transport. Service
#: methods take the caller as a required argument, so that a call site that forgets it fails
#: instead of running with this access.
ANONYMOUS = Caller()
