"""The correctness suite through every transport: adapters that answer `.query(QueryRequest)`
like the core service, with an object carrying `.table`, over REST (Arrow IPC, so types are
exact) or GraphQL (JSON rows, typed back with the result's column types), and raise the
TallyError subclass of the error code the transport returned."""

from __future__ import annotations

import datetime as dt
import decimal
import io
from types import SimpleNamespace
from typing import Any

import pyarrow as pa

from tally import errors
from tally.core.request import QueryRequest
from tests.support.clients import SyncASGIClient

_ERRORS = {cls.code: cls for cls in vars(errors).values()
           if isinstance(cls, type) and issubclass(cls, errors.TallyError)
           and cls is not errors.NotFound}


def _raise(code: str, message: str):
    raise _ERRORS.get(code, errors.TallyError)(message)


def rest_body(request: QueryRequest) -> dict[str, Any]:
    return {"metrics": list(request.metrics), "group_by": list(request.group_by),
            "where": list(request.where), "order_by": list(request.order_by),
            "limit": request.limit, "saved_query": request.saved_query,
            "start": request.start.isoformat() if request.start else None,
            "end": request.end.isoformat() if request.end else None}


class RestAdapter:
    def __init__(self, client: SyncASGIClient) -> None:
        self.client = client

    def query(self, request: QueryRequest, caller: object = None) -> SimpleNamespace:
        """`caller` is ignored: over a transport, the caller is the client's credentials."""
        r = self.client.post("/api/v1/query", json=rest_body(request),
                             headers={"accept": "application/vnd.apache.arrow.stream"})
        if r.status_code != 200:
            _raise(r.json()["error"]["code"], r.json()["error"]["message"])
        return SimpleNamespace(table=pa.ipc.open_stream(io.BytesIO(r.content)).read_all())


class GraphQLAdapter:
    QUERY = """query($metrics: [String!], $groupBy: [String!], $where: [String!],
                     $orderBy: [String!], $limit: Int, $start: String, $end: String) {
        query(metrics: $metrics, groupBy: $groupBy, where: $where, orderBy: $orderBy,
              limit: $limit, start: $start, end: $end) { columns { name type } rows } }"""

    def __init__(self, client: SyncASGIClient) -> None:
        self.client = client

    def query(self, request: QueryRequest, caller: object = None) -> SimpleNamespace:
        """`caller` is ignored: over a transport, the caller is the client's credentials."""
        b = rest_body(request)
        variables = {"metrics": b["metrics"], "groupBy": b["group_by"], "where": b["where"],
                     "orderBy": b["order_by"], "limit": b["limit"], "start": b["start"],
                     "end": b["end"]}
        body = self.client.post("/graphql", json={"query": self.QUERY,
                                                  "variables": variables}).json()
        if body.get("errors"):
            error = body["errors"][0]
            _raise(error.get("extensions", {}).get("code", ""), error["message"])
        result = body["data"]["query"]
        convert = {"decimal": lambda v: decimal.Decimal(repr(v)) if v is not None else None,
                   "date": lambda v: dt.date.fromisoformat(v) if v is not None else None}
        columns = [(c["name"], convert.get(c["type"], lambda v: v)) for c in result["columns"]]
        arrays = {name: pa.array([fn(row[name]) for row in result["rows"]])
                  for name, fn in columns}
        return SimpleNamespace(table=pa.table(arrays) if columns else pa.table({}))
