"""What a caller may see (a `Grant`, built by the service's access policies): row filters
AND-ed into every query, and metrics and dimensions allowed or denied. A value type: it is part
of the caller's context and of every cache key."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from tally.core.filters import StructuredFilter
from tally.errors import Forbidden, shorten


@dataclass(frozen=True)
class Grant:
    roles: tuple[str, ...] = ()
    row_filters: tuple[str | StructuredFilter, ...] = ()
    metrics_allow: frozenset[str] | None = None  # None: all not denied
    metrics_deny: frozenset[str] = frozenset()
    dimensions_allow: frozenset[str] | None = None
    dimensions_deny: frozenset[str] = frozenset()
    policies: tuple[str, ...] = ()  # file:line of each policy applied, for the audit trail

    @property
    def unrestricted(self) -> bool:
        return not (self.row_filters or self.metrics_allow is not None or self.metrics_deny
                    or self.dimensions_allow is not None or self.dimensions_deny)  # fmt: skip

    def access(self) -> tuple[tuple[str, str], ...]:
        """The grant as cache-key material: filters, allow and deny lists (the roles only
        matter through them)."""
        if self.unrestricted:
            return ()
        body = json.dumps([
            sorted(repr(f) for f in self.row_filters),
            sorted(self.metrics_allow) if self.metrics_allow is not None else None,
            sorted(self.metrics_deny),
            sorted(self.dimensions_allow) if self.dimensions_allow is not None else None,
            sorted(self.dimensions_deny),
        ])  # fmt: skip
        return (("grant", hashlib.sha256(body.encode()).hexdigest()[:24]),)

    def may_see_metric(self, name: str) -> bool:
        if name in self.metrics_deny:
            return False
        return self.metrics_allow is None or name in self.metrics_allow

    def may_see_dimension(self, identity: str, full: str) -> bool:
        """`identity` is the last entity link and element (customer__country), `full` the name
        as asked; a rule names either."""
        names = {identity, full}
        if names & self.dimensions_deny:
            return False
        return self.dimensions_allow is None or bool(names & self.dimensions_allow)

    def check_metric(self, name: str) -> None:
        if not self.may_see_metric(name):
            raise Forbidden(f"You may not see metric {shorten(name)}.", metric=name)

    def check_dimension(self, identity: str, full: str) -> None:
        if not self.may_see_dimension(identity, full):
            raise Forbidden(f"You may not see dimension {shorten(full)}.", dimension=full)


