"""Client and AsyncClient: the same methods, over httpx. Results travel as Arrow IPC and come
back as `pyarrow.Table`; errors as TallyAPIError with the server's code; 429 and 503 are
retried with backoff, honouring Retry-After; answers carrying an ETag are revalidated
(If-None-Match), so an unchanged result is not sent twice."""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import Sequence
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.ipc

from tally_client import catalog
from tally_client.catalog import Dimension, Entity, Metric, SavedQuery
from tally_client.errors import TallyAPIError, TallyConnectionError
from tally_client.request import GroupBy, Query, Where

ARROW = "application/vnd.apache.arrow.stream"
RETRIED = (429, 503)


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class _Core:
    """What both clients share: the request's shape, the retry policy, the ETag memory."""

    def __init__(self, base_url: str, token: str | None, max_retries: int, backoff: float,
                 max_backoff: float) -> None:  # fmt: skip
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        # (method, path, body) -> (etag, decoded answer)
        self.etags: dict[tuple[str, str, str], tuple[str, Any]] = {}

    def headers(self, accept: str) -> dict[str, str]:
        headers = {"accept": accept, "user-agent": "tally-client-python/0.1"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        return headers

    def wait(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before retrying, or None: do not retry."""
        if response.status_code not in RETRIED or attempt >= self.max_retries:
            return None
        after = retry_after_seconds(response.headers.get("retry-after"))
        wait = after if after is not None else self.backoff * 2**attempt
        return min(wait, self.max_backoff)

    @staticmethod
    def body(metrics: Sequence[str] | Query | None, group_by: Sequence[str | GroupBy] | None,
             where: Sequence[Where] | None, order_by: Sequence[str] | None, limit: int | None,
             saved_query: str | None, start: str | None,
             end: str | None) -> dict[str, Any]:  # fmt: skip
        if isinstance(metrics, Query):
            return metrics.to_json()
        return Query(metrics=list(metrics or []), group_by=list(group_by or []),
                     where=list(where or []), order_by=list(order_by or []), limit=limit,
                     saved_query=saved_query, start=start, end=end).to_json()  # fmt: skip

    def key(self, method: str, path: str, body: Any) -> tuple[str, str, str]:
        return (method, path, json.dumps(body, sort_keys=True, default=str))

    def conditional(self, key: tuple[str, str, str], headers: dict[str, str]) -> None:
        if key in self.etags:
            headers["if-none-match"] = self.etags[key][0]

    def settle(self, key: tuple[str, str, str], response: httpx.Response, decode: Any) -> Any:
        if response.status_code == 304 and key in self.etags:
            return self.etags[key][1]
        if response.status_code >= 400:
            raise TallyAPIError.from_response(response)
        value = decode(response)
        etag = response.headers.get("etag")
        if etag:
            # bounded: the oldest answer goes first (dicts keep insertion order)
            self.etags.pop(key, None)
            self.etags[key] = (etag, value)
            if len(self.etags) > 256:
                del self.etags[next(iter(self.etags))]
        return value


def _table(response: httpx.Response) -> pa.Table:
    return pyarrow.ipc.open_stream(response.content).read_all()


def _json(response: httpx.Response) -> Any:
    return response.json()



def _saved_body(where: Sequence[Where] | None, order_by: Sequence[str] | None,
                limit: int | None) -> dict[str, Any]:  # fmt: skip
    body = _Core.body(None, None, where, order_by, limit, None, None, None)
    return {k: v for k, v in body.items() if k in ("where", "order_by", "limit")}


def _body_kw(metrics: Sequence[str] | Query | None, kw: dict[str, Any]) -> dict[str, Any]:
    return _Core.body(metrics, kw.get("group_by"), kw.get("where"), kw.get("order_by"),
                      kw.get("limit"), kw.get("saved_query"), kw.get("start"), kw.get("end"))


def _values(dimension: str, metrics: Sequence[str] | None, limit: int | None) -> dict[str, Any]:
    params: dict[str, Any] = {"dimension": dimension}
    if metrics:
        params["metrics"] = ",".join(metrics)
    if limit is not None:
        params["limit"] = limit
    return params


class Client:
    """Synchronous client. `Client(base_url, token=None)`; use it as a context manager or
    call `close()`."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 60.0,
                 max_retries: int = 3, backoff: float = 0.2, max_backoff: float = 30.0,
                 http: httpx.Client | None = None) -> None:  # fmt: skip
        self._core = _Core(base_url, token, max_retries, backoff, max_backoff)
        self._http = http or httpx.Client(base_url=self._core.base_url, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str, accept: str, decode: Any, *,
              json_body: Any = None, params: dict[str, Any] | None = None) -> Any:  # fmt: skip
        key = self._core.key(method, path, json_body if json_body is not None else params)
        for attempt in range(self._core.max_retries + 1):
            headers = self._core.headers(accept)
            self._core.conditional(key, headers)
            try:
                response = self._http.request(method, path, json=json_body, params=params,
                                              headers=headers)  # fmt: skip
            except httpx.TransportError as e:
                if attempt >= self._core.max_retries:
                    raise TallyConnectionError(f"{self._core.base_url}: {e}") from e
                time.sleep(min(self._core.backoff * 2**attempt, self._core.max_backoff))
                continue
            wait = self._core.wait(response, attempt)
            if wait is None:
                return self._core.settle(key, response, decode)
            time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def query(self, metrics: Sequence[str] | Query | None = None,
              group_by: Sequence[str | GroupBy] | None = None,
              where: Sequence[Where] | None = None, order_by: Sequence[str] | None = None,
              limit: int | None = None, *, saved_query: str | None = None,
              start: str | None = None, end: str | None = None) -> pa.Table:  # fmt: skip
        """Run a query; the result as a `pyarrow.Table` (columns: group-bys, then metrics)."""
        body = _Core.body(metrics, group_by, where, order_by, limit, saved_query, start, end)
        return self._send("POST", "/api/v1/query", ARROW, _table, json_body=body)

    def query_json(self, metrics: Sequence[str] | Query | None = None,
                   group_by: Sequence[str | GroupBy] | None = None,
                   where: Sequence[Where] | None = None, order_by: Sequence[str] | None = None,
                   limit: int | None = None, **kw: Any) -> dict[str, Any]:  # fmt: skip
        """The JSON answer (rows, columns, cache, timings)."""
        body = _Core.body(metrics, group_by, where, order_by, limit, kw.get("saved_query"),
                          kw.get("start"), kw.get("end"))  # fmt: skip
        return self._send("POST", "/api/v1/query", "application/json", _json, json_body=body)

    def query_pandas(self, *args: Any, **kw: Any) -> Any:
        return self.query(*args, **kw).to_pandas()

    def query_polars(self, *args: Any, **kw: Any) -> Any:
        return to_polars(self.query(*args, **kw))

    def saved_query(self, name: str, where: Sequence[Where] | None = None,
                    order_by: Sequence[str] | None = None,
                    limit: int | None = None) -> pa.Table:  # fmt: skip
        body = _saved_body(where, order_by, limit)
        return self._send("POST", f"/api/v1/saved-queries/{name}/query", ARROW, _table,
                          json_body=body)  # fmt: skip

    def compile(self, metrics: Sequence[str] | Query | None = None, **kw: Any) -> str:
        body = _body_kw(metrics, kw)
        return self._send("POST", "/api/v1/compile", "application/json", _json,
                          json_body=body)["sql"]  # fmt: skip

    def metrics(self) -> list[Metric]:
        data = self._send("GET", "/api/v1/metrics", "application/json", _json)
        return [Metric.from_json(m) for m in data["metrics"]]

    def metric(self, name: str) -> Metric:
        return Metric.from_json(self._send("GET", f"/api/v1/metrics/{name}", "application/json",
                                           _json))  # fmt: skip

    def dimensions(self, metrics: Sequence[str] = ()) -> list[Dimension]:
        params = {"metrics": ",".join(metrics)} if metrics else None
        data = self._send("GET", "/api/v1/dimensions", "application/json", _json, params=params)
        return [catalog.dimension(d) for d in data["dimensions"]]

    def entities(self, metrics: Sequence[str] = ()) -> list[Entity]:
        params = {"metrics": ",".join(metrics)} if metrics else None
        data = self._send("GET", "/api/v1/entities", "application/json", _json, params=params)
        return [catalog.entity(e) for e in data["entities"]]

    def saved_queries(self) -> list[SavedQuery]:
        data = self._send("GET", "/api/v1/saved-queries", "application/json", _json)
        return [catalog.saved_query(q) for q in data["saved_queries"]]

    def dimension_values(self, dimension: str, metrics: Sequence[str] | None = None,
                         limit: int | None = None) -> pa.Table:  # fmt: skip
        return self._send("GET", "/api/v1/dimension-values", ARROW, _table,
                          params=_values(dimension, metrics, limit))  # fmt: skip


class AsyncClient:
    """The same methods as Client, awaited. Use `async with AsyncClient(...)` or `aclose()`."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 60.0,
                 max_retries: int = 3, backoff: float = 0.2, max_backoff: float = 30.0,
                 http: httpx.AsyncClient | None = None) -> None:  # fmt: skip
        self._core = _Core(base_url, token, max_retries, backoff, max_backoff)
        self._http = http or httpx.AsyncClient(base_url=self._core.base_url, timeout=timeout)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, method: str, path: str, accept: str, decode: Any, *,
                    json_body: Any = None,
                    params: dict[str, Any] | None = None) -> Any:  # fmt: skip
        key = self._core.key(method, path, json_body if json_body is not None else params)
        for attempt in range(self._core.max_retries + 1):
            headers = self._core.headers(accept)
            self._core.conditional(key, headers)
            try:
                response = await self._http.request(method, path, json=json_body,
                                                    params=params, headers=headers)  # fmt: skip
            except httpx.TransportError as e:
                if attempt >= self._core.max_retries:
                    raise TallyConnectionError(f"{self._core.base_url}: {e}") from e
                await asyncio.sleep(min(self._core.backoff * 2**attempt, self._core.max_backoff))
                continue
            wait = self._core.wait(response, attempt)
            if wait is None:
                return self._core.settle(key, response, decode)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def query(self, metrics: Sequence[str] | Query | None = None,
                    group_by: Sequence[str | GroupBy] | None = None,
                    where: Sequence[Where] | None = None, order_by: Sequence[str] | None = None,
                    limit: int | None = None, *, saved_query: str | None = None,
                    start: str | None = None, end: str | None = None) -> pa.Table:  # fmt: skip
        body = _Core.body(metrics, group_by, where, order_by, limit, saved_query, start, end)
        return await self._send("POST", "/api/v1/query", ARROW, _table, json_body=body)

    async def query_json(self, metrics: Sequence[str] | Query | None = None,
                         group_by: Sequence[str | GroupBy] | None = None,
                         where: Sequence[Where] | None = None,
                         order_by: Sequence[str] | None = None, limit: int | None = None,
                         **kw: Any) -> dict[str, Any]:  # fmt: skip
        body = _Core.body(metrics, group_by, where, order_by, limit, kw.get("saved_query"),
                          kw.get("start"), kw.get("end"))  # fmt: skip
        return await self._send("POST", "/api/v1/query", "application/json", _json,
                                json_body=body)  # fmt: skip

    async def query_pandas(self, *args: Any, **kw: Any) -> Any:
        return (await self.query(*args, **kw)).to_pandas()

    async def query_polars(self, *args: Any, **kw: Any) -> Any:
        return to_polars(await self.query(*args, **kw))

    async def saved_query(self, name: str, where: Sequence[Where] | None = None,
                          order_by: Sequence[str] | None = None,
                          limit: int | None = None) -> pa.Table:  # fmt: skip
        body = _saved_body(where, order_by, limit)
        return await self._send("POST", f"/api/v1/saved-queries/{name}/query", ARROW, _table,
                                json_body=body)  # fmt: skip

    async def compile(self, metrics: Sequence[str] | Query | None = None, **kw: Any) -> str:
        body = _body_kw(metrics, kw)
        return (await self._send("POST", "/api/v1/compile", "application/json", _json,
                                 json_body=body))["sql"]  # fmt: skip

    async def metrics(self) -> list[Metric]:
        data = await self._send("GET", "/api/v1/metrics", "application/json", _json)
        return [Metric.from_json(m) for m in data["metrics"]]

    async def metric(self, name: str) -> Metric:
        return Metric.from_json(await self._send("GET", f"/api/v1/metrics/{name}",
                                                 "application/json", _json))  # fmt: skip

    async def dimensions(self, metrics: Sequence[str] = ()) -> list[Dimension]:
        params = {"metrics": ",".join(metrics)} if metrics else None
        data = await self._send("GET", "/api/v1/dimensions", "application/json", _json,
                                params=params)  # fmt: skip
        return [catalog.dimension(d) for d in data["dimensions"]]

    async def entities(self, metrics: Sequence[str] = ()) -> list[Entity]:
        params = {"metrics": ",".join(metrics)} if metrics else None
        data = await self._send("GET", "/api/v1/entities", "application/json", _json,
                                params=params)  # fmt: skip
        return [catalog.entity(e) for e in data["entities"]]

    async def saved_queries(self) -> list[SavedQuery]:
        data = await self._send("GET", "/api/v1/saved-queries", "application/json", _json)
        return [catalog.saved_query(q) for q in data["saved_queries"]]

    async def dimension_values(self, dimension: str, metrics: Sequence[str] | None = None,
                               limit: int | None = None) -> pa.Table:  # fmt: skip
        return await self._send("GET", "/api/v1/dimension-values", ARROW, _table,
                                params=_values(dimension, metrics, limit))  # fmt: skip


def to_polars(table: pa.Table) -> Any:
    """A polars DataFrame of the table (needs `pip install tally-client[polars]`)."""
    try:
        import polars
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("to_polars needs polars: pip install 'tally-client[polars]'") from e
    return polars.from_arrow(table)
