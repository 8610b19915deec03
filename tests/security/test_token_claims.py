"""Attack class: tokens whose claims the server read too kindly.

A JWT without `exp` never expired; a `roles` claim that was an object, a number or a nested
list applied no policy, so the caller was unrestricted. Now `exp` is required, at most
`auth.jwt.max_lifetime_seconds` after `iat`; a malformed roles claim is a 401; and identity
providers' nested claims are read with a dotted path (`roles_claim: realm_access.roles`,
`{{ claims.org.countries }}`), the tenant's numbers checked against hand SQL."""

from __future__ import annotations

import decimal
import shutil
import time

import jwt
import pytest

from tests.support.hand_sql import expected_rows

AUDIENCE, ISSUER = "tally-tests", "https://auth.example.test"
QUERY = {"metrics": ["revenue"], "group_by": ["customer__country"]}
REVENUE = """select customer__country as country, sum(net_amount) as revenue
             from enriched_orders where order_status = 'completed' group by 1"""


def _token(secret: str, **claims) -> str:
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "carol", **claims}
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, secret,
                      algorithm="HS256")


def test_a_token_without_exp_is_refused(client, secured):
    r = client.query(QUERY, _token(secured.jwt_secret, iat=int(time.time())))
    assert r.status_code == 401 and "'exp'" in r.json()["error"]["message"]


def test_a_token_living_longer_than_the_maximum_is_refused(client, secured):
    now = int(time.time())
    year = _token(secured.jwt_secret, iat=now, exp=now + 365 * 86400)
    r = client.query(QUERY, year)
    assert r.status_code == 401 and "max_lifetime_seconds" in r.json()["error"]["message"]
    no_iat = _token(secured.jwt_secret, exp=now + 30 * 86400)  # measured from now
    assert client.query(QUERY, no_iat).status_code == 401
    day = _token(secured.jwt_secret, iat=now, exp=now + 86000)
    assert client.query(QUERY, day).status_code == 200


@pytest.mark.parametrize("roles", [{"tenant": True}, 7, [["tenant"]], [{"name": "tenant"}],
                                   True])
def test_a_malformed_roles_claim_fails_closed(client, secured, roles):
    now = int(time.time())
    token = _token(secured.jwt_secret, iat=now, exp=now + 600, roles=roles, countries=["DE"])
    r = client.query(QUERY, token)
    assert r.status_code == 401, r.text
    assert "roles claim" in r.json()["error"]["message"]


NESTED_YML = """
auth:
  roles_claim: realm_access.roles
  jwt:
    algorithms: [HS256]
    issuer: {issuer}
    audience: {audience}
    max_lifetime_seconds: 600
policies:
  - role: tenant
    row_filters:
      - {{dimension: customer__country, op: in, values: "{{{{ claims.org.countries }}}}"}}
"""


@pytest.fixture
def nested_client(secured, client_with, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(secured.project_dir, project)
    (project / "tally.yml").write_text(NESTED_YML.format(issuer=ISSUER, audience=AUDIENCE))
    return client_with(project_dir=project)


def test_nested_claims_are_read_by_path_and_their_policy_holds(nested_client, secured, raw):
    now = int(time.time())
    token = _token(secured.jwt_secret, iat=now, exp=now + 300,
                   realm_access={"roles": ["tenant"]}, org={"countries": ["DE", "FR"]})
    r = nested_client.query(QUERY, token)
    assert r.status_code == 200, r.text
    served = {row["customer__country"]: decimal.Decimal(str(row["revenue"]))
              for row in r.json()["data"]}
    expected = {row["country"]: decimal.Decimal(str(row["revenue"]))
                for row in expected_rows(raw, REVENUE) if row["country"] in ("DE", "FR")}
    assert served == pytest.approx(expected) and set(served) == {"DE", "FR"}
    longer = _token(secured.jwt_secret, iat=now, exp=now + 3600,
                    realm_access={"roles": ["tenant"]}, org={"countries": ["DE"]})
    assert nested_client.query(QUERY, longer).status_code == 401  # this project's max: 600 s
    missing = _token(secured.jwt_secret, iat=now, exp=now + 300,
                     realm_access={"roles": ["tenant"]})
    assert nested_client.query(QUERY, missing).status_code == 403  # no claim: no rows


@pytest.mark.parametrize("roles", [None, "", []])
def test_an_empty_roles_claim_does_not_hide_a_role_claim(client, secured, raw, roles):
    """`roles: []` beside `role: tenant` is a tenant, limited to its countries (it was read
    as a caller without roles, unrestricted)."""
    now = int(time.time())
    token = _token(secured.jwt_secret, iat=now, exp=now + 300, roles=roles, role="tenant",
                   countries=["DE"])
    r = client.query(QUERY, token)
    assert r.status_code == 200, r.text
    assert {row["customer__country"] for row in r.json()["data"]} == {"DE"}
