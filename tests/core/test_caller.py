"""Who is asking (tally/core/caller.py): the access context is one canonical tuple, so two
spellings of one context share cached results and two contexts never do."""

from __future__ import annotations

from tally.core.caller import ANONYMOUS, Caller


def test_access_is_sorted_and_stringified():
    a = Caller.of("rest", access={"tenant": "acme", "region": 2})
    b = Caller.of("graphql", access={"region": "2", "tenant": "acme"})
    assert a.access == b.access == (("region", "2"), ("tenant", "acme"))
    assert Caller.of("rest", access={"tenant": "globex"}).access != a.access


def test_the_anonymous_caller():
    assert ANONYMOUS.transport == "python" and ANONYMOUS.access == ()
    assert ANONYMOUS.subject is None and ANONYMOUS.request_id == "-"
    assert Caller.of("cli").access == ANONYMOUS.access


def test_with_transport_keeps_the_rest():
    caller = Caller.of("rest", "req-1", access={"tenant": "acme"}, subject="key-7")
    moved = caller.with_transport("graphql")
    assert moved.transport == "graphql"
    assert (moved.request_id, moved.access, moved.subject) == (
        "req-1", (("tenant", "acme"),), "key-7")
    assert caller.transport == "rest"  # frozen: a new caller, the old one unchanged
