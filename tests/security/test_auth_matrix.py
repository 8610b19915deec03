"""The auth matrix on every protocol of the HTTP server (REST query, REST catalog, REST compile,
GraphQL, an admin route): every kind of bad credential gets the intended 4xx in the error
shape, never a 5xx, and never echoes the secret."""

from __future__ import annotations

import time

import jwt
import pytest

QUERY = {"metrics": ["revenue"], "group_by": ["metric_time__year"]}
GQL = '{ query(metrics: ["revenue"], groupBy: ["metric_time__year"]) { rowCount } }'


def _bad_tokens(secured) -> dict[str, str | None]:
    now = int(time.time())
    base = {"iss": "https://auth.example.test", "aud": "tally-tests", "sub": "mallory"}
    return {
        "no token": None,
        "malformed": "not-a-token",
        "garbage jwt": "eyJhbGciOiJIUzI1NiJ9.bm90anNvbg.c2ln",
        "bad signature": jwt.encode({**base, "exp": now + 60},
                                    "another-secret-entirely-different-from-the-real",
                                    algorithm="HS256"),
        "expired": secured.hs(exp=now - 120),
        "not yet valid": secured.hs(nbf=now + 600),
        "wrong audience": secured.hs(aud="someone-else"),
        "wrong issuer": secured.hs(iss="https://evil.example"),
        "alg none": jwt.encode({**base, "exp": now + 60}, None, algorithm="none"),
        "unknown key": "tk_0123456789ab_" + "x" * 43,
        "revoked key": secured.keys["revoked"],
        "tampered key": secured.keys["reader"][:-2] + "zz",
    }


CASES = ["no token", "malformed", "garbage jwt", "bad signature", "expired", "not yet valid",
         "wrong audience", "wrong issuer", "alg none", "unknown key", "revoked key",
         "tampered key"]  # fmt: skip


def _assert_refused(r, status: int, code: str, secret: str | None) -> None:
    assert r.status_code == status, (r.status_code, r.text[:300])
    body = r.json()
    assert body["error"]["code"] == code, body
    assert "Traceback" not in r.text
    if secret:
        assert secret not in r.text
    if status == 401:
        assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("case", CASES)
def test_rest_query_refuses(client, secured, case):
    token = _bad_tokens(secured)[case]
    _assert_refused(client.query(QUERY, token), 401, "unauthorized", token)


@pytest.mark.parametrize("case", CASES)
def test_rest_catalog_refuses(client, secured, case):
    token = _bad_tokens(secured)[case]
    _assert_refused(client.request("GET", "/api/v1/metrics", token), 401, "unauthorized", token)


@pytest.mark.parametrize("case", CASES)
def test_graphql_refuses(client, secured, case):
    token = _bad_tokens(secured)[case]
    _assert_refused(client.graphql(GQL, token), 401, "unauthorized", token)


@pytest.mark.parametrize("case", CASES)
def test_admin_route_refuses(client, secured, case):
    token = _bad_tokens(secured)[case]
    _assert_refused(client.request("GET", "/api/v1/cache", token), 401, "unauthorized", token)


def test_every_good_credential_is_accepted(client, secured):
    for token in (secured.keys["reader"], secured.hs(), secured.rs(),
                  secured.keys["admin"], "admin-secret-token"):
        r = client.query(QUERY, token)
        assert r.status_code == 200, r.text
        assert client.graphql(GQL, token).json()["data"]["query"]["rowCount"] == 4


def test_scopes(client, secured):
    meta_only = secured.keys["meta-only"]
    assert client.request("GET", "/api/v1/metrics", meta_only).status_code == 200
    _assert_refused(client.query(QUERY, meta_only), 403, "forbidden", meta_only)
    gql = client.graphql(GQL, meta_only).json()
    assert gql["errors"][0]["extensions"]["code"] == "forbidden"
    assert gql["errors"][0]["extensions"]["status"] == 403
    # compiled SQL needs the sql scope: refused on /compile, empty in results
    reader = secured.keys["reader"]
    _assert_refused(client.request("POST", "/api/v1/compile", reader, json=QUERY), 403,
                    "forbidden", reader)
    assert client.query(QUERY, reader).json()["sql"] == ""
    sql_reader = secured.keys["sql-reader"]
    assert "SELECT" in client.query(QUERY, sql_reader).json()["sql"]
    assert client.request("POST", "/api/v1/compile", sql_reader, json=QUERY).status_code == 200
    # a token without a scope claim gets meta and query
    no_scope = secured.hs()
    assert client.query(QUERY, no_scope).status_code == 200
    _assert_refused(client.request("GET", "/api/v1/cache", no_scope), 403, "forbidden", None)
    scoped = secured.hs(scope="meta")
    _assert_refused(client.query(QUERY, scoped), 403, "forbidden", scoped)
    assert client.request("GET", "/api/v1/cache", secured.keys["admin"]).status_code == 200


def test_health_stays_open_and_metrics_takes_its_own_token(client_with):
    client = client_with(metrics_token="scrape-token")
    assert client.request("GET", "/health/live").status_code == 200
    assert client.request("GET", "/health/ready").status_code == 200
    assert client.request("GET", "/metrics").status_code == 401
    assert client.request("GET", "/metrics", "scrape-token").status_code == 200
