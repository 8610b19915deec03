"""What a GraphQL document costs: each root field that runs a query, creates a job or compiles
SQL takes a request from the caller's rate limit, and a document holds at most
TALLY_GRAPHQL_MAX_COSTLY_FIELDS of them. Before, 34 requests of 30 aliased `createQuery` filled
the server's table of asynchronous queries for 34 rate-limit tokens."""

from __future__ import annotations

import pytest

from tests.support.clock import FakeClock

RATE = 60  # a minute: bursts of 10 (a sixth of it)
BURST = RATE // 6
CREATE = 'q{i}: createQuery(environmentId: 1, metrics: [{{name: "order_count"}}]) {{ queryId }}'
RUN = 'q{i}: query(metrics: ["order_count"]) {{ rowCount }}'


def _creates(n: int) -> str:
    return "mutation { " + " ".join(CREATE.format(i=i) for i in range(n)) + " }"


def _runs(n: int) -> str:
    return "{ " + " ".join(RUN.format(i=i) for i in range(n)) + " }"


def _post(client, path: str, token: str, query: str) -> dict:
    """The GraphQL answer; a request refused before any GraphQL runs (/graphql authenticates
    first) is an HTTP error in the one error shape, read as a GraphQL error of that code."""
    r = client.request("POST", path, token, json={"query": query})
    if r.status_code != 200:
        error = r.json()["error"]
        return {"data": None, "errors": [{"message": error["message"],
                                          "extensions": {"code": error["code"]}}]}
    return r.json()


def _code(body: dict) -> str | None:
    errors = body.get("errors") or []
    return errors[0]["extensions"]["code"] if errors else None


@pytest.mark.parametrize("path,document", [("/api/graphql", _creates), ("/graphql", _runs)])
def test_each_costly_field_takes_a_rate_limit_token(client_with, secured, path, document):
    client = client_with(rate_limit_per_minute=RATE, clock=FakeClock())
    jobs = client.app.state.service.jobs
    token = secured.keys["reader"]
    fields = 4
    # 4 tokens a request: the burst (10) holds two such requests, not a third.
    bodies = [_post(client, path, token, document(fields)) for _ in range(3)]
    assert [_code(b) for b in bodies] == [None, None, "too_many_requests"], bodies
    assert all(len(b["data"]) == fields for b in bodies[:2])
    assert bodies[2]["data"] is None  # refused before any field ran
    assert len(jobs) == (2 * fields if path == "/api/graphql" else 0)
    # The bucket is empty: one more plain request is refused too.
    assert _code(_post(client, path, token, "{ __typename }")) == "too_many_requests"


def test_thirty_aliased_create_queries_create_no_job(client_with, secured):
    """The review's attack, replayed: every document is refused whole, nothing is held."""
    client = client_with(rate_limit_per_minute=100_000)  # the cap alone stops it
    jobs = client.app.state.service.jobs
    for _ in range(34):
        body = _post(client, "/api/graphql", secured.keys["reader"], _creates(30))
        assert body["data"] is None and _code(body) == "graphql_too_complex", body
        assert "30 root fields" in body["errors"][0]["message"]
    assert len(jobs) == 0


@pytest.mark.parametrize("spelling", ["fragment", "inline fragment"])
def test_costly_fields_in_fragments_are_counted(client_with, secured, spelling):
    client = client_with(rate_limit_per_minute=100_000)
    fields = " ".join(CREATE.format(i=i) for i in range(11))
    query = ("mutation { ...Many } fragment Many on Mutation { " + fields + " }"
             if spelling == "fragment" else "mutation { ... on Mutation { " + fields + " } }")
    body = _post(client, "/api/graphql", secured.keys["reader"], query)
    assert _code(body) == "graphql_too_complex", body
    assert len(client.app.state.service.jobs) == 0


def test_the_cap_is_a_setting(client_with, secured):
    client = client_with(graphql_max_costly_fields=2)
    token = secured.keys["reader"]
    assert _code(_post(client, "/graphql", token, _runs(2))) is None
    assert _code(_post(client, "/graphql", token, _runs(3))) == "graphql_too_complex"
    # Catalog fields are not costly: any number of them (within the alias bound).
    catalog = "{ " + " ".join(f"m{i}: metrics {{ name }}" for i in range(12)) + " }"
    assert _code(_post(client, "/graphql", token, catalog)) is None


CATALOG = {
    "/graphql": 'q{i}: dimensions(metrics: ["{m}"]) {{ name }}',
    "/api/graphql": 'q{i}: dimensions(environmentId: 1, metrics: [{{name: "{m}"}}]) {{ name }}',
}


@pytest.mark.parametrize("path", sorted(CATALOG))
def test_catalog_fields_pay_too(client_with, secured, path):
    """A catalog field with a new set of metrics builds its group-by index under MetricFlow's
    lock: thirty of them in one document cost thirty requests (the adversarial pass slowed
    another tenant's queries a hundredfold with free ones)."""
    client = client_with(rate_limit_per_minute=RATE, clock=FakeClock())
    metrics = ["revenue", "order_count", "items_sold", "customers", "discounts"]
    few = "{ " + " ".join(CATALOG[path].format(i=i, m=m) for i, m in enumerate(metrics)) + " }"
    assert _code(_post(client, path, secured.keys["reader"], few)) is None  # 5 of a burst of 10
    many = "{ " + " ".join(CATALOG[path].format(i=i, m=metrics[i % 5]) for i in range(30)) + " }"
    assert _code(_post(client, path, secured.keys["sql-reader"], many)) == "too_many_requests"
