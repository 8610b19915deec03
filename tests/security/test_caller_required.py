"""Attack class: a call site that forgets who is asking.

Service methods defaulted `caller` to the anonymous caller with full access, so a transport
that forgot to pass it (Flight SQL's dimension values, in a mutation of the suite) served a
one-country tenant every country while the suite still passed. The caller is now a required
argument of every service method that reaches the warehouse or the catalog: a forgotten caller
is a TypeError at the call, never a full-access answer. (The tenant matrix, test_tenant_matrix,
checks what each protocol actually serves.)"""

from __future__ import annotations

import inspect

import pytest

from tally.core.request import QueryRequest
from tally.service import TallyService

# Every public method that reads the catalog or the warehouse for someone.
FOR_A_CALLER = {
    "query", "query_async", "compile", "check", "export", "dimension_values_async",
    "dimension_values_request", "submit_query", "submit_dimension_values", "list_metrics",
    "get_metric", "list_dimensions", "list_entities", "list_measures", "metrics_for",
    "list_saved_queries", "get_saved_query", "may_see", "mint_embed_token", "metric_time",
    "metrics_among", "metric_definition", "custom_grains", "saved_query_group_bys", "admit",
}


def _methods_with_a_caller() -> dict[str, inspect.Parameter]:
    found = {}
    for name, fn in inspect.getmembers(TallyService, inspect.isfunction):
        if not name.startswith("_") and "caller" in inspect.signature(fn).parameters:
            found[name] = inspect.signature(fn).parameters["caller"]
    return found


def test_every_method_for_a_caller_requires_one():
    found = _methods_with_a_caller()
    assert set(found) == FOR_A_CALLER  # a new method for callers is listed here, deliberately
    defaulted = sorted(n for n, p in found.items() if p.default is not inspect.Parameter.empty)
    assert defaulted == []


@pytest.mark.parametrize("call", [
    lambda s: s.query(QueryRequest.create(metrics=["revenue"])),
    lambda s: s.list_metrics(),
    lambda s: s.list_dimensions(("revenue",)),
    lambda s: s.dimension_values_request("customer__country", (), None, None, None),
    lambda s: s.compile(QueryRequest.create(metrics=["revenue"])),
], ids=["query", "list_metrics", "list_dimensions", "dimension_values_request", "compile"])
def test_a_forgotten_caller_fails_at_the_call(service, call):
    with pytest.raises(TypeError, match="caller"):
        call(service)
