"""Attack class: tenants of one minting key sharing what should be theirs alone.

Every embed token minted by one key had the minter's subject (`embed:key:<minter>`), so 130
requests with one tenant's token put another tenant's token into 429, and the two shared one
owner for asynchronous queries. A token's subject now adds whom it is for: the `subject` given
when minting, else a digest of its pinned claims."""

from __future__ import annotations

import pytest

from tests.support.clock import FakeClock


def _mint(client, minter: str, **body) -> str:
    r = client.request("POST", "/api/v1/embed-tokens", minter, json=body)
    assert r.status_code == 200, r.text
    return r.json()["token"]


def _metrics(client, token: str) -> int:
    return client.request("GET", "/api/v1/metrics", token).status_code


def test_one_tenants_token_cannot_rate_limit_another_tenants(client_with, secured):
    client = client_with(rate_limit_per_minute=60, clock=FakeClock())  # bursts of 10
    admin = secured.keys["admin"]
    de = _mint(client, admin, claims={"roles": ["tenant"], "countries": ["DE"]})
    fr = _mint(client, admin, claims={"roles": ["tenant"], "countries": ["FR"]})
    statuses = [_metrics(client, de) for _ in range(14)]
    assert statuses[:10] == [200] * 10 and 429 in statuses[10:]
    assert _metrics(client, fr) == 200  # another tenant: its own bucket


def test_a_subject_given_at_minting_has_its_own_limit(client_with, secured):
    client = client_with(rate_limit_per_minute=60, clock=FakeClock())
    admin, claims = secured.keys["admin"], {"roles": ["tenant"], "countries": ["DE"]}
    alice = _mint(client, admin, claims=claims, subject="user-alice")
    alice_again = _mint(client, admin, claims=claims, subject="user-alice")
    bob = _mint(client, admin, claims=claims, subject="user-bob")
    assert [_metrics(client, alice) for _ in range(10)] == [200] * 10
    assert _metrics(client, alice_again) == 429  # the same subject: the same bucket
    assert _metrics(client, bob) == 200


@pytest.mark.parametrize("subject", ["", "x" * 129, "tab\there"])
def test_a_bad_subject_is_a_400(client, secured, subject):
    r = client.request("POST", "/api/v1/embed-tokens", secured.keys["admin"],
                       json={"claims": {}, "subject": subject})
    assert r.status_code in (400, 422) and "error" in r.json(), r.text


def test_the_minters_own_limit_is_not_spent_by_its_tokens(client_with, secured):
    client = client_with(rate_limit_per_minute=60, clock=FakeClock())
    minter = secured.keys["acme-backend"]  # embed scope, tenant DE
    token = _mint(client, minter, claims={"roles": ["tenant"], "countries": ["DE"]})
    for _ in range(12):
        _metrics(client, token)
    assert _metrics(client, token) == 429
    assert _metrics(client, minter) == 200
