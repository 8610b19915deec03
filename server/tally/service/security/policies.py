"""Access policies: what a caller may see, from the roles and claims of its key or token.

* Row level: each matching policy's filters, with `{{ claims.x }}` bound to the caller's claim
  as a quoted literal (never spliced as text), AND-ed into every query, dimension-values call,
  saved query and job, on every protocol.
* Member level: metrics and dimensions allowed or denied per role; what a caller may not see is
  absent from its catalog and a 403 `forbidden` if named.

The result, a `Grant`, is part of the caller's access context and so of every cache key: two
tenants never share a cached row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import sqlglot.expressions as exp

from tally.core.access import Grant
from tally.core.filters import StructuredFilter, check_where
from tally.errors import Forbidden, Unauthorized
from tally.service.security.config import MemberRule, Policy

_CLAIM = re.compile(r"\{\{\s*claims\.([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*\}\}")


def grant_for(
    policies: Iterable[Policy],
    roles: Iterable[str],
    claims: Mapping[str, Any],
    metrics_allow: Iterable[str] | None = None,
) -> Grant:
    """The grant of a caller with `roles` and `claims` (and, for an embed token, the metrics
    it pins)."""
    roles = tuple(sorted(set(roles)))
    filters: list[str | StructuredFilter] = []
    allow_m: set[str] | None = set(metrics_allow) if metrics_allow is not None else None
    deny_m: set[str] = set()
    allow_d: set[str] | None = None
    deny_d: set[str] = set()
    applied = []
    for policy in policies:
        if policy.role != "*" and policy.role not in roles:
            continue
        applied.append(f"{policy.role}@{policy.where.rpartition('/')[2]}")
        filters += [_bind(f, claims, policy) for f in policy.row_filters]
        allow_m, deny_m = _merge(allow_m, deny_m, policy.metrics)
        allow_d, deny_d = _merge(allow_d, deny_d, policy.dimensions)
    return Grant(
        roles=roles,
        row_filters=tuple(filters),
        metrics_allow=frozenset(allow_m) if allow_m is not None else None,
        metrics_deny=frozenset(deny_m),
        dimensions_allow=frozenset(allow_d) if allow_d is not None else None,
        dimensions_deny=frozenset(deny_d),
        policies=tuple(applied),
    )


def _merge(
    allow: set[str] | None, deny: set[str], rule: MemberRule
) -> tuple[set[str] | None, set[str]]:
    """Policies narrow: allow lists intersect, deny lists add up."""
    if rule.allow is not None:
        allow = set(rule.allow) if allow is None else allow & set(rule.allow)
    return allow, deny | set(rule.deny)


def _bind(item: Any, claims: Mapping[str, Any], policy: Policy) -> str | StructuredFilter:
    if isinstance(item, dict):
        bound = {k: _bind_value(v, claims, policy) for k, v in item.items()}
        return StructuredFilter.parse(bound)

    def literal(match: re.Match[str]) -> str:
        value = _claim(claims, match.group(1), policy)
        return _sql_literal(value, policy)

    text = _CLAIM.sub(literal, str(item))
    check_where(text)  # the policy's own SQL is checked like any filter
    return text


def _bind_value(value: Any, claims: Mapping[str, Any], policy: Policy) -> Any:
    if isinstance(value, str):
        whole = _CLAIM.fullmatch(value.strip())
        if whole:
            return _claim(claims, whole.group(1), policy)
    return value


def _claim(claims: Mapping[str, Any], name: str, policy: Policy) -> Any:
    value = claim_at(claims, name)
    if value is _MISSING or value in (None, "", []):
        # Fail closed: without the claim the policy cannot say which rows; show none.
        raise Forbidden(
            f"Your token lacks the claim {name!r} that the access policy of role "
            f"{policy.role!r} needs, so no rows can be shown."
        )
    if isinstance(value, list | tuple):
        if not all(isinstance(v, str | int | float | bool) for v in value):
            raise Forbidden(f"Claim {name!r} must be a list of plain values.")
    elif not isinstance(value, str | int | float | bool):
        raise Forbidden(f"Claim {name!r} must be a plain value or a list of them.")
    return value


def _sql_literal(value: Any, policy: Policy) -> str:
    def one(v: Any) -> exp.Expression:
        if isinstance(v, bool):
            return exp.Boolean(this=v)
        if isinstance(v, int | float):
            return exp.Literal.number(v)
        return exp.Literal.string(str(v))

    if isinstance(value, list | tuple):
        return exp.Tuple(expressions=[one(v) for v in value]).sql()
    return one(value).sql()


def roles_of(claims: Mapping[str, Any], roles_claim: str) -> tuple[str, ...]:
    """The caller's roles from its claims: `roles_claim` names a claim, or a path into nested
    claims (`realm_access.roles`, as Keycloak nests them); else the `role` claim. A claim that
    is not a string or a list of strings is refused (401): a malformed claim must never leave
    a caller without the restrictions of its roles."""
    roles: list[str] = []
    for name, raw in ((roles_claim, claim_at(claims, roles_claim)), ("role", claims.get("role"))):
        # Both claims count: an empty `roles` must not hide a `role` and its restrictions.
        if raw is None or raw is _MISSING:
            continue
        if isinstance(raw, str):
            roles += raw.replace(",", " ").split()
        elif isinstance(raw, list | tuple) and all(isinstance(r, str) for r in raw):
            roles += raw
        else:
            raise Unauthorized(
                f"The token's roles claim ({name}) must be a string or a list of role names, "
                f"not {_kind(raw)}."
            )
    return tuple(dict.fromkeys(roles))


_MISSING = object()


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The claim named `path`, or found by following its dots through nested objects (a
    name that itself has dots, like a URL, is tried whole first); _MISSING when absent."""
    if path in claims:
        return claims[path]
    node: Any = claims
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list with other values than names"
    return f"a {type(value).__name__}"
