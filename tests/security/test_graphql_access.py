"""Every GraphQL request is asked by an authenticated caller and goes through its rate limit,
on both GraphQL APIs: schema introspection (`__schema`, `__type`, `__typename`) and documents
that do not validate included; and asynchronous queries are created only for callers who may
run them."""

from __future__ import annotations

import pytest

from tests.support.clock import FakeClock

RATE = 60  # a minute: bursts of 10
INTROSPECTION = ["{ __schema { queryType { name } types { name } } }",
                 '{ __type(name: "Metric") { name fields { name } } }',
                 "{ __typename }"]  # fmt: skip


def _post(client, path: str, token: str | None, query: str):
    return client.request("POST", path, token, json={"query": query})


def _code(r) -> str | None:
    """The error code of a GraphQL answer, or of a request refused before GraphQL ran."""
    if r.status_code != 200:
        return r.json()["error"]["code"]
    errors = r.json().get("errors") or []
    return errors[0]["extensions"]["code"] if errors else None


@pytest.mark.parametrize("query", [*INTROSPECTION, "{ nope }"])
@pytest.mark.parametrize("token", [None, "not-a-token"])
def test_introspection_needs_a_valid_token(client, secured, query, token):
    sl = _post(client, "/api/graphql", token, query)
    # before: /api/graphql answered introspection (and validation errors that name fields)
    assert sl.status_code == 200 and sl.json()["data"] is None, sl.text[:300]
    [error] = sl.json()["errors"]
    assert error["extensions"]["code"] == "unauthorized"
    assert error["message"] == "User is not authorized"  # what the dbt SL SDK reads
    gql = _post(client, "/graphql", token, query)
    assert gql.status_code == 401 and _code(gql) == "unauthorized"
    assert "queryType" not in sl.text + gql.text


@pytest.mark.parametrize("path", ["/graphql", "/api/graphql"])
def test_introspection_with_a_token_answers(client, secured, path):
    r = _post(client, path, secured.keys["meta-only"], INTROSPECTION[0])
    assert r.status_code == 200 and r.json()["data"]["__schema"]["queryType"]["name"] == "Query"


@pytest.mark.parametrize("path", ["/graphql", "/api/graphql"])
@pytest.mark.parametrize("query", INTROSPECTION)
def test_introspection_goes_through_the_rate_limit(client_with, secured, path, query):
    client = client_with(rate_limit_per_minute=RATE, clock=FakeClock())
    burst = RATE // 6
    codes = [_code(_post(client, path, secured.keys["reader"], query)) for _ in range(burst + 3)]
    # before: /api/graphql never took a token for a document without a field of its own
    assert codes[:burst] == [None] * burst, codes
    assert set(codes[burst:]) == {"too_many_requests"}, codes


@pytest.mark.parametrize("mutation", [
    'createQuery(environmentId: 1, metrics: [{name: "revenue"}]) { queryId }',
    'createDimensionValuesQuery(environmentId: 1, groupBy: [{name: "customer__country"}]) '
    "{ queryId }",
])  # fmt: skip
def test_no_job_is_held_for_a_caller_without_the_query_scope(client, secured, mutation):
    jobs = client.app.state.service.jobs
    r = _post(client, "/api/graphql", secured.keys["meta-only"], f"mutation {{ {mutation} }}")
    # before: the job was created (and held) and failed later with `forbidden`
    assert _code(r) == "forbidden" and r.json()["data"] is None, r.text[:300]
    assert len(jobs) == 0
