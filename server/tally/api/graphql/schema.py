"""The analyst-friendly GraphQL schema at /graphql: the catalog and a `query` field taking the
same request model as REST. Same service underneath; no logic of its own. Errors carry the
same stable codes in `extensions` as the REST error body."""

from __future__ import annotations

import json
from typing import Any

import strawberry
from cross_web import HTTPException as CrossWebHTTPException
from graphql import ExecutionResult, GraphQLError, GraphQLSyntaxError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from strawberry.extensions import MaskErrors
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLHTTPResponse
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig
from strawberry.types import Info
from strawberry.types.unset import UNSET

from tally.api.deps import caller_of
from tally.api.graphql.bounds import DocumentBounds, nesting_problem
from tally.api.graphql.gate import CallerOf, RequestGate
from tally.core import catalog
from tally.core.encoding import column_type, json_value
from tally.core.request import QueryRequest
from tally.core.results import QueryResult as ServiceResult
from tally.errors import InvalidRequest, TallyError, cut
from tally.service import TallyService


@strawberry.type
class Dimension:
    name: str
    label: str
    description: str
    type: str
    grains: list[str]
    date_parts: list[str] = strawberry.field(description="__extract_<part> names it takes.")
    entity_path: list[str] = strawberry.field(description="The entities joined to reach it.")

    @staticmethod
    def of(d: catalog.DimensionInfo) -> Dimension:
        return Dimension(
            name=d.name,
            label=d.label,
            description=d.description,
            type=d.type,
            grains=list(d.grains),
            date_parts=list(d.date_parts),
            entity_path=list(d.entity_path),
        )


@strawberry.type
class Entity:
    name: str
    label: str
    description: str
    type: str


@strawberry.type
class Metric:
    name: str
    label: str
    description: str
    type: str
    meta: JSON
    filter: str | None

    @strawberry.field(description="Dimensions this metric can be grouped and filtered by.")
    async def dimensions(self, info: Info) -> list[Dimension]:
        dims = await _call(info, "list_dimensions", (self.name,))
        return [Dimension.of(d) for d in dims]

    @strawberry.field
    async def entities(self, info: Info) -> list[Entity]:
        ents = await _call(info, "list_entities", (self.name,))
        return [
            Entity(name=e.name, label=e.label, description=e.description, type=e.type) for e in ents
        ]

    @staticmethod
    def of(m: catalog.MetricInfo) -> Metric:
        return Metric(
            name=m.name,
            label=m.label,
            description=m.description,
            type=m.type,
            meta=m.meta,
            filter=m.filter,
        )


@strawberry.type
class SavedQuery:
    name: str
    label: str
    description: str
    metrics: list[str]
    group_by: list[str]
    where: list[str]


@strawberry.type
class Column:
    name: str
    type: str


@strawberry.type
class CacheInfo:
    hit: bool
    age_seconds: float


@strawberry.type
class TimingInfo:
    compile_ms: float
    execute_ms: float
    total_ms: float


@strawberry.type
class QueryResult:
    columns: list[Column]
    rows: JSON = strawberry.field(description="One object per row, keyed by column name.")
    row_count: int
    sql: str
    cache: CacheInfo
    timing: TimingInfo


@strawberry.input
class Filter:
    dimension: str
    op: str = "="
    value: JSON | None = None
    values: JSON | None = None
    grain: str | None = None


@strawberry.type
class Query:
    @strawberry.field(description="Every metric of the semantic layer.")
    async def metrics(self, info: Info) -> list[Metric]:
        return [Metric.of(m) for m in await _call(info, "list_metrics")]

    @strawberry.field
    async def metric(self, info: Info, name: str) -> Metric:
        return Metric.of(await _call(info, "get_metric", name))

    @strawberry.field(description="Dimensions, common to `metrics` when given.")
    async def dimensions(self, info: Info, metrics: list[str] | None = None) -> list[Dimension]:
        dims = await _call(info, "list_dimensions", tuple(metrics or ()))
        return [Dimension.of(d) for d in dims]

    @strawberry.field
    async def entities(self, info: Info, metrics: list[str] | None = None) -> list[Entity]:
        ents = await _call(info, "list_entities", tuple(metrics or ()))
        return [
            Entity(name=e.name, label=e.label, description=e.description, type=e.type) for e in ents
        ]

    @strawberry.field
    async def saved_queries(self, info: Info) -> list[SavedQuery]:
        return [
            SavedQuery(
                name=q.name,
                label=q.label,
                description=q.description,
                metrics=list(q.metrics),
                group_by=list(q.group_by),
                where=list(q.where),
            )
            for q in await _call(info, "list_saved_queries")
        ]

    @strawberry.field(description="Run a metric query (the same request model as REST).")
    async def query(
        self,
        info: Info,
        metrics: list[str] | None = None,
        group_by: list[str] | None = None,
        where: list[str] | None = None,
        filters: list[Filter] | None = None,
        order_by: list[str] | None = None,
        limit: int | None = None,
        saved_query: str | None = None,
        start: str | None = None,
        end: str | None = None,
    ) -> QueryResult:
        request = info.context["request"]
        svc: TallyService = request.app.state.service
        try:
            q = QueryRequest.create(
                metrics=metrics,
                group_by=group_by,
                where=[*(where or []), *(vars(f) for f in filters or [])],
                order_by=order_by,
                limit=limit,
                saved_query=saved_query,
                start=start,
                end=end,
            )
            _, out = await svc.query_async(q, info.context["caller"], _to_graphql)
        except TallyError as e:
            raise _graphql_error(e) from None
        assert out is not None
        return out


def _to_graphql(result: ServiceResult) -> QueryResult:
    """The GraphQL view of a result (run where the service says: a worker thread if large)."""
    table = result.table
    return QueryResult(
        columns=[Column(name=f.name, type=column_type(f.type)) for f in table.schema],
        rows=[{k: json_value(v) for k, v in row.items()} for row in table.to_pylist()],
        row_count=table.num_rows,
        sql=result.sql,
        cache=CacheInfo(hit=result.cache.hit, age_seconds=round(result.cache.age_seconds, 3)),
        timing=TimingInfo(
            compile_ms=result.timing.compile_ms,
            execute_ms=result.timing.execute_ms,
            total_ms=result.timing.total_ms,
        ),
    )


def _graphql_error(e: TallyError) -> GraphQLError:
    extensions = {"code": e.code, "status": e.status, **e.details}
    return GraphQLError(e.message, extensions=extensions)


async def _call(info: Info, method: str, *args: Any) -> Any:
    svc: TallyService = info.context["request"].app.state.service
    try:
        return await svc.run(getattr(svc, method), *args, info.context["caller"])
    except TallyError as e:
        raise _graphql_error(e) from None


def _should_mask(error: GraphQLError) -> bool:
    # Our errors and GraphQL's own validation errors are meant for the caller; anything else
    # is an internal fault and must not leak its text.
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError | TallyError)


def error_code(error: GraphQLError) -> tuple[str, int]:
    """A stable code and status for every GraphQL error: ours carry theirs; GraphQL's own
    are the caller's (a query that does not parse, or does not fit the schema or its variables
    do not fit their types); an error in a field without a code is an internal fault."""
    extensions = error.extensions or {}
    original = error.original_error
    if isinstance(original, TallyError):  # raised as is by a resolver or an extension
        return original.code, original.status
    if "code" in extensions:
        return str(extensions["code"]), int(extensions.get("status", 400))
    if isinstance(error, GraphQLSyntaxError):
        return "graphql_parse_error", 400
    if error.path or (original is not None and not error.nodes):
        # A field's fault, or an exception raised around the fields (in an extension, with no
        # place in the document, unlike a variable or validation error): ours, not the
        # caller's, whatever its message says.
        return "internal_error", 500
    return "graphql_validation_error", 400


_INTERNAL = "Internal server error; the server log has the details."


class _Schema(strawberry.Schema):
    def process_errors(self, errors, execution_context=None) -> None:
        # A caller's mistake is answered, not logged with a traceback; the rest is logged.
        internal = [e for e in errors if error_code(e)[1] >= 500]
        if internal:
            super().process_errors(internal, execution_context)


def build_schema(
    query: type,
    mutation: type | None = None,
    scalars: dict | None = None,
    *,
    costly: frozenset[str],
    caller_of: CallerOf,
) -> strawberry.Schema:
    """A schema whose errors follow tally's rules (internal faults masked and logged, the
    caller's mistakes answered with their code and not logged), whose every operation is asked
    by an authenticated caller (`caller_of` the context) and pays for its `costly` root fields
    (gate.py), and whose documents are bounded (bounds.py)."""
    return _Schema(
        query=query,
        mutation=mutation,
        config=StrawberryConfig(scalar_map=scalars or {}),
        extensions=[
            # First: a caller refused here has no other extension's hook started.
            lambda: RequestGate(costly=costly, caller_of=caller_of),
            DocumentBounds,
            lambda: MaskErrors(
                should_mask_error=_should_mask,
                error_message=_INTERNAL,
            ),
        ],
    )


# Root fields that run a query (each costs a rate-limit token: gate.py).
COSTLY = frozenset({"query"})
schema = build_schema(Query, costly=COSTLY, caller_of=lambda context: context["caller"])

# strawberry's HTTP-level refusals (before any GraphQL runs), as the one error shape.
_HTTP_CODES = {"Unsupported content type": 415}


class _Router(GraphQLRouter):
    async def run(self, request, context=UNSET, root_value=UNSET):  # type: ignore[override]
        """A request that is not a GraphQL request at all (malformed JSON, a body that is not
        an object, JSON nested too deep, no query, another content type) is refused in the one
        error shape, not in plain text and never as a 500."""
        await _check_body(request)
        try:
            return await super().run(request, context=context, root_value=root_value)
        except CrossWebHTTPException as e:
            raise HTTPException(_HTTP_CODES.get(e.reason, e.status_code), e.reason) from None

    async def process_result(self, request, result: ExecutionResult) -> GraphQLHTTPResponse:
        """Every error gets extensions.code (and status), and no message echoes a huge input."""
        data = await super().process_result(request, result)
        for error, formatted in zip(result.errors or [], data.get("errors") or [], strict=False):
            code, status = error_code(error)
            extensions = {**(formatted.get("extensions") or {}), "code": code, "status": status}
            message = formatted.get("message", "")
            if isinstance(error.original_error, TallyError):
                extensions.update(error.original_error.details)
                message = self.message_of(error.original_error)
            elif status >= 500:
                # MaskErrors masks a field's fault; one raised around the fields (in an
                # extension) never reaches it, and its text must not reach the caller either.
                message = _INTERNAL
            formatted["extensions"] = extensions
            formatted["message"] = cut(message, 300)
        return data

    def message_of(self, error: TallyError) -> str:
        """The message a caller sees for one of tally's errors (a protocol may reword)."""
        return error.message


async def _check_body(request: Request) -> None:
    if request.method == "GET":
        # A query over GET carries its variables as JSON in the URL: the same checks.
        variables = request.query_params.get("variables")
        if variables is not None:
            _json(variables.encode(), "The variables parameter")
        return
    if request.method != "POST":
        return
    if "json" not in request.headers.get("content-type", "").lower():
        return  # strawberry answers other content types (415) itself
    body = _json(await request.body(), "The request body")
    if not isinstance(body, dict):
        raise InvalidRequest(
            'A GraphQL request body is a JSON object: {"query": "...", "variables": {...}}.'
        )


def _json(raw: bytes, what: str) -> Any:
    """JSON from a caller, refused when it is not JSON or nests too deeply: variables nested
    thousands deep would reach code (a JSON scalar's value, its repr in a message) that
    recurses over them."""
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidRequest(f"{what} is not valid UTF-8.") from None
    except RecursionError:
        raise InvalidRequest(f"{what} is JSON nested too deeply.") from None
    except ValueError:
        raise InvalidRequest(f"{what} is not valid JSON.") from None
    problem = nesting_problem(value)
    if problem is not None:
        raise InvalidRequest(problem)
    return value


async def _context(request: Request) -> dict[str, Any]:
    """Who is asking, once per request: an unauthenticated request is a 401 before any GraphQL
    runs (in the one error shape)."""
    return {"request": request, "caller": caller_of(request, "graphql")}


def graphql_router() -> GraphQLRouter:
    return _Router(schema, graphql_ide="graphiql", context_getter=_context)


class ErrorShapingRouter(_Router):
    """The router of a GraphQL schema that raises tally's errors as they are: every error gets
    its stable code and status in `extensions` (the subclass may reword messages)."""
