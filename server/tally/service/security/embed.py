"""Minting embed tokens: a short-lived signed token for a browser (an embedded dashboard),
pinning a tenant's claims and, optionally, the only metrics it may query. Admins mint any; a
key with the `embed` scope only tokens with its own claims and metrics it may see itself, so
nobody can widen their own access."""

from __future__ import annotations

from typing import Any

from tally.core.caller import Caller
from tally.core.compiler import Compiler
from tally.errors import Forbidden, InvalidRequest
from tally.service.access import require, visible_errors
from tally.service.security.auth import Authenticator


def mint_embed_token(
    security: Authenticator,
    compiler: Compiler,
    caller: Caller,
    claims: dict[str, Any],
    metrics: list[str] | None,
    ttl_seconds: float,
    scopes: list[str] | None = None,
    subject: str | None = None,
) -> tuple[str, Any]:
    """(token, expiry). `subject`: whom it is for in the minter's app; tokens of different
    subjects (by default, of different claims) have their own rate limits and jobs."""
    if not caller.has("admin"):
        require(caller, "embed")
        own = dict(caller.claims)
        widened = [k for k, v in claims.items() if own.get(k) != v]
        if widened:
            raise Forbidden(
                f"Your key may mint embed tokens only with its own claims; "
                f"{', '.join(sorted(widened))} differ.",
            )
        claims = {**own, **claims}
    names = None
    if metrics is not None:
        with visible_errors(caller, lambda: compiler):
            names = [compiler.metric(m).name for m in metrics]
        for name in names:
            if caller.grant is not None:
                caller.grant.check_metric(name)
    wanted = scopes or ["meta", "query"]
    unknown = sorted(set(wanted) - {"meta", "query"})
    if unknown:
        raise InvalidRequest(f"Embed tokens carry only the meta and query scopes, not {unknown}.")
    return security.tokens.mint_embed(
        caller.subject or "anonymous", claims, names, ttl_seconds, wanted, subject
    )
