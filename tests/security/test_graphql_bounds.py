"""Hostile GraphQL documents on both GraphQL APIs: deep nesting, fragments that fan out or chain,
huge token counts and texts, and deeply nested variables are refused quickly with a GraphQL
error of a stable code (never a 500, never Python's RecursionError, never seconds of CPU)."""

from __future__ import annotations

import json
import time

import pytest

PATHS = ["/graphql", "/api/graphql"]
# A field of each schema that takes a selection of `Metric` (the type fragments below are on).
METRICS = {"/graphql": "metrics", "/api/graphql": "metrics(environmentId: 1)"}
QUICK = 3.0  # seconds: generous for a loaded machine; the attacks took seconds to minutes


def _post(client, token, path: str, body: dict) -> tuple[dict, float]:
    started = time.perf_counter()
    r = client.request("POST", path, token, json=body)
    seconds = time.perf_counter() - started
    assert r.status_code in (200, 400), (r.status_code, r.text[:300])
    return r.json(), seconds


def _error(body: dict) -> dict:
    assert body.get("data") is None, str(body)[:300]
    [error] = body["errors"]
    assert error["extensions"]["status"] == 400, error
    assert "recursion" not in error["message"].lower(), error
    return error


def _fan_out(path: str, levels: int) -> str:
    """Each fragment spreads the next twice: 2**levels fields once expanded, in 2 KB."""
    fragments = " ".join(f"fragment F{i} on Metric {{ name ...F{i + 1} ...F{i + 1} }}"
                         for i in range(levels))  # fmt: skip
    return f"{{ {METRICS[path]} {{ ...F0 }} }} {fragments} fragment F{levels} on Metric {{ name }}"


@pytest.mark.parametrize("path", PATHS)
def test_fragments_that_fan_out_are_refused_at_once(client, secured, path):
    # Before: each spread was walked again by the depth and alias limits, 2**20 visits each
    # (seconds here, minutes at 25 levels), and the document was then answered.
    body, seconds = _post(client, secured.keys["reader"], path, {"query": _fan_out(path, 20)})
    error = _error(body)
    assert error["extensions"]["code"] == "graphql_too_complex"
    assert "fields once its fragments are expanded" in error["message"]
    assert seconds < QUICK


@pytest.mark.parametrize("path", PATHS)
def test_a_long_chain_of_fragments_is_a_clear_error(client, secured, path):
    # 400 fragments (within the token limit), each spreading the next
    chain = " ".join(f"fragment F{i} on Metric {{ ...F{i + 1} }}" for i in range(400))
    query = f"{{ {METRICS[path]} {{ ...F0 }} }} {chain} fragment F400 on Metric {{ name }}"
    body, seconds = _post(client, secured.keys["reader"], path, {"query": query})
    error = _error(body)  # before: the message was Python's "maximum recursion depth exceeded"
    assert error["extensions"]["code"] == "graphql_validation_error"
    assert seconds < QUICK


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("nesting", [11, 1_000, 100_000])
def test_deeply_nested_selections_are_refused(client, secured, path, nesting):
    query = "{" + "metrics {" * nesting + "name" + "}" * nesting + "}"
    body, seconds = _post(client, secured.keys["reader"], path, {"query": query})
    error = _error(body)
    code = "graphql_too_complex" if nesting < 200 else "graphql_parse_error"
    assert error["extensions"]["code"] == code, error
    assert seconds < QUICK


@pytest.mark.parametrize("path", PATHS)
def test_huge_documents_are_refused_while_parsing(client, secured, path):
    token = secured.keys["reader"]
    many = "{ " + " ".join(f"a{i}: __typename" for i in range(5_000)) + " }"  # 85 kB
    comments = "#\n" * 20_000 + "{ __typename }"
    # One comment of 900 kB is one token: the document's length is bounded too. Before, it
    # was read whole and answered.
    long = "#" + "x" * 900_000 + "\n{ __typename }"
    for query, needle in ((many, "tokens"), (comments, "tokens"), (long, "code points")):
        body, seconds = _post(client, token, path, {"query": query})
        error = _error(body)
        assert error["extensions"]["code"] == "graphql_parse_error"
        assert needle in error["message"], error
        assert seconds < QUICK


def _nested(depth: int) -> object:
    value: object = "DE"
    for _ in range(depth):
        value = {"a": [value]}
    return value


@pytest.mark.parametrize("depth", [40, 450])
def test_deeply_nested_variables_are_refused(client, secured, depth):
    # `value` is a JSON scalar: graphql-core passes it through as is, so before, any depth the
    # JSON parser took reached the filter code, which recursed over it (a repr in its message).
    query = ('query($f: [Filter!]) { query(metrics: ["revenue"], filters: $f) { rowCount } }')
    variables = {"f": [{"dimension": "customer__country", "value": _nested(depth)}]}
    r = client.request("POST", "/graphql", secured.keys["reader"],
                       json={"query": query, "variables": variables})
    assert r.status_code == 400, r.text[:300]
    assert r.json()["error"]["code"] == "invalid_request"
    assert "nests lists and objects more than 32 deep" in r.json()["error"]["message"]


def test_deeply_nested_variables_over_get_are_refused(client, secured):
    query = "query($m: [String!]) { dimensions(metrics: $m) { name } }"
    r = client.request("GET", "/graphql", secured.keys["reader"], params={
        "query": query, "variables": json.dumps({"m": _nested(100)})})
    assert r.status_code == 400, r.text[:300]
    assert r.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("path", PATHS)
def test_honest_documents_still_pass(client, secured, path):
    """The bounds leave room for real clients: GraphiQL's introspection (fragments nested
    eight deep) and a catalog query with fragments."""
    from graphql import get_introspection_query

    token = secured.keys["reader"]
    body, _ = _post(client, token, path, {"query": get_introspection_query(descriptions=True)})
    assert "errors" not in body and body["data"]["__schema"]["queryType"]["name"] == "Query"
    query = (f"query {{ {METRICS[path]} {{ ...M }} }} fragment M on Metric {{ name ...N }} "
             "fragment N on Metric { description }")
    body, _ = _post(client, token, path, {"query": query})
    assert "errors" not in body and {"name", "description"} <= set(body["data"]["metrics"][0])
