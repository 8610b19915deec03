"""GraphQL at /api/graphql, compatible with the dbt Semantic Layer's GraphQL API: existing
clients of that API (its Python SDK, BI connectors, agents) work against tally with a changed
URL. Metadata calls read the catalog; queries are asynchronous jobs (createQuery, then poll
`query(queryId, pageNum)`), run by the service as the caller who created them.

Resolvers raise tally's errors as they are; `_SemanticLayerRouter` turns each into a GraphQL
error in one place (code and status in extensions; an authentication failure worded as dbt's
API words it, which the SDK recognises as its AuthError)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import strawberry
from strawberry.fastapi import GraphQLRouter
from strawberry.types import Info

from tally.api.dbtsl import catalog as c
from tally.api.dbtsl import types as t
from tally.api.dbtsl.context import call, caller_in, check, info_caller
from tally.api.dbtsl.results import QueryResult, query_result
from tally.api.graphql.schema import ErrorShapingRouter, build_schema
from tally.core.caller import Caller
from tally.core.request import QueryRequest, check_text
from tally.core.semantic_layer import GroupBy, OrderBy, build_request
from tally.errors import InvalidRequest, TallyError, shorten
from tally.service import TallyService
from tally.service.access import require

EnvironmentId = t.BigInt


def _metric_names(metrics: list[t.MetricInput] | None) -> tuple[str, ...]:
    return tuple(m.name.strip().lower() for m in metrics or ())


def _group_by(g: t.GroupByInput) -> GroupBy:
    grain = g.time_granularity or (g.grain.value if g.grain else None)
    return GroupBy(g.name, grain=grain, date_part=g.date_part.value if g.date_part else None)


def _metrics_of(svc: TallyService, infos: tuple, caller: Caller) -> list[c.Metric]:
    """Metric objects with their metric_time grains and measures (in the service's pool)."""
    out = []
    for m in infos:
        metric_time = svc.metric_time(m.name, caller)
        out.append(c.metric(m, metric_time, svc.list_measures((m.name,), caller)))
    return out


def _request(
    svc: TallyService,
    caller: Caller,
    *,
    metrics: list[t.MetricInput] | None,
    group_by: list[t.GroupByInput] | None,
    where: list[t.WhereInput] | None,
    order_by: list[t.OrderByInput] | None,
    limit: int | None,
    saved_query: str | None,
) -> tuple[QueryRequest, dict[str, str]]:
    """The request, and the result columns to rename (metric aliases)."""
    orders = []
    for o in order_by or ():
        if (o.metric is None) == (o.group_by is None):
            raise InvalidRequest("Each orderBy item takes exactly one of metric or groupBy.")
        name = o.metric.name if o.metric else _group_by(o.group_by).tally_name()
        orders.append(OrderBy(name, o.descending))
    saved = svc.saved_query_group_bys(saved_query, caller) if saved_query else ()
    request = build_request(
        metrics=[m.name for m in metrics or ()],
        group_by=[_group_by(g) for g in group_by or ()],
        where=[w.sql for w in where or ()],
        order_by=orders,
        limit=limit,
        saved_query=saved_query,
        saved_group_bys=saved,
    )
    aliases = {m.name.strip().lower(): m.alias for m in metrics or () if m.alias}
    _check_aliases(aliases, request)
    return request, aliases


def _check_aliases(aliases: dict[str, str], request: QueryRequest) -> None:
    """A result's columns keep distinct names: an alias may not repeat another, nor name a
    group-by or an unaliased metric (a column would then be lost in a JSON result)."""
    for alias in aliases.values():
        check_text(alias, f"Alias {shorten(alias)}")
        if not alias.strip() or len(alias) > 128 or not alias.isprintable():
            raise InvalidRequest(f"Alias {shorten(alias)} must be 1 to 128 printable characters.")
    taken = [*request.group_by, *(m for m in request.metrics if m not in aliases)]
    names = list(aliases.values())
    for alias in names:
        if names.count(alias) > 1 or alias.lower() in (t.lower() for t in taken):
            raise InvalidRequest(f"Alias {shorten(alias)} names another column of the result: "
                                 "give each metric an alias of its own.")  # fmt: skip


def _dimension(group_by: list[t.GroupByInput]) -> str:
    if len(group_by) != 1:
        raise InvalidRequest(
            f"Dimension values are for one group-by at a time, got {len(group_by)}."
        )
    return _group_by(group_by[0]).tally_name()


# Schema -------------------------------------------------------------------------------


@strawberry.type
class Query:
    @strawberry.field
    async def environment_info(self, info: Info, environment_id: EnvironmentId
                               ) -> t.EnvironmentInfo:
        svc, _ = check(info, environment_id)
        engine = await svc.run(lambda: svc.engine)
        metrics = await call(info, "list_metrics")
        named = engine.semantic_layer_engine  # the engine module declares it
        return t.EnvironmentInfo(
            sql_dialect=engine.adapter_type.upper(),
            has_metrics_defined=bool(metrics),
            dialect=t.SqlEngine[named] if named in t.SqlEngine.__members__
            else t.SqlEngine.UNKNOWN,
            dialect_supported_by_slg=True,
        )

    @strawberry.field
    async def metrics(self, info: Info, environment_id: EnvironmentId) -> list[c.Metric]:
        svc, caller = check(info, environment_id)
        return await svc.run(lambda: _metrics_of(svc, svc.list_metrics(caller), caller))

    @strawberry.field
    async def metrics_paginated(
        self, info: Info, environment_id: EnvironmentId, search: str | None = None,
        group_by: list[t.GroupByInput] | None = None, page_num: int = 1,
        page_size: int | None = None,
    ) -> c.ResultPage[c.Metric]:
        svc, caller = check(info, environment_id)
        names = tuple(_group_by(g).tally_name() for g in group_by or ())
        infos = await svc.run(svc.metrics_for, names, caller) if names else await call(
            info, "list_metrics")
        found = c.page(infos, page_num, page_size, search)
        items = await svc.run(_metrics_of, svc, tuple(found.items), caller)
        return replace(found, items=items)

    @strawberry.field
    async def metrics_for_dimensions(
        self, info: Info, environment_id: EnvironmentId, dimensions: list[t.GroupByInput]
    ) -> list[c.Metric]:
        svc, caller = check(info, environment_id)
        names = tuple(_group_by(g).tally_name() for g in dimensions)
        return await svc.run(lambda: _metrics_of(svc, svc.metrics_for(names, caller), caller))

    @strawberry.field
    async def dimensions(self, info: Info, environment_id: EnvironmentId,
                         metrics: list[t.MetricInput] | None = None) -> list[t.Dimension]:
        check(info, environment_id)
        dims = await call(info, "list_dimensions", _metric_names(metrics))
        return [c.dimension(d) for d in dims]

    @strawberry.field
    async def dimensions_paginated(
        self, info: Info, environment_id: EnvironmentId,
        metrics: list[t.MetricInput] | None = None, search: str | None = None,
        page_num: int = 1, page_size: int | None = None,
    ) -> c.ResultPage[t.Dimension]:
        dims = await Query.dimensions(self, info, environment_id, metrics)
        return c.page(dims, page_num, page_size, search)

    @strawberry.field
    async def measures(self, info: Info, environment_id: EnvironmentId,
                       metrics: list[t.MetricInput] | None = None) -> list[t.Measure]:
        check(info, environment_id)
        names = _metric_names(metrics)
        if not names:
            names = tuple(m.name for m in await call(info, "list_metrics"))
        return c.measures(await call(info, "list_measures", names), info_caller(info))

    @strawberry.field
    async def entities(self, info: Info, environment_id: EnvironmentId,
                       metrics: list[t.MetricInput] | None = None) -> list[t.Entity]:
        check(info, environment_id)
        return [c.entity(e) for e in await call(info, "list_entities", _metric_names(metrics))]

    @strawberry.field
    async def entities_paginated(
        self, info: Info, environment_id: EnvironmentId,
        metrics: list[t.MetricInput] | None = None, search: str | None = None,
        page_num: int = 1, page_size: int | None = None,
    ) -> c.ResultPage[t.Entity]:
        found = await Query.entities(self, info, environment_id, metrics)
        return c.page(found, page_num, page_size, search)

    @strawberry.field(description="Dimensions and entities the metrics can be grouped by.")
    async def group_bys_paginated(
        self, info: Info, environment_id: EnvironmentId,
        metrics: list[t.MetricInput] | None = None, search: str | None = None,
        page_num: int = 1, page_size: int | None = None,
    ) -> c.ResultPage[t.EntityDimension]:
        check(info, environment_id)
        names = _metric_names(metrics)
        dims = await call(info, "list_dimensions", names)
        ents = await call(info, "list_entities", names)
        items = [c.group_by(x) for x in (*dims, *ents)]
        return c.page(items, page_num, page_size, search)

    @strawberry.field(description="The grains metric_time can be asked at for these metrics.")
    async def queryable_granularities(
        self, info: Info, environment_id: EnvironmentId, metrics: list[t.MetricInput]
    ) -> list[t.TimeGranularity]:
        check(info, environment_id)
        dims = await call(info, "list_dimensions", _metric_names(metrics))
        metric_time = next((d for d in dims if d.name == "metric_time"), None)
        return c.grains(metric_time)[0]

    @strawberry.field
    async def saved_queries(self, info: Info, environment_id: EnvironmentId
                            ) -> list[t.SavedQuery]:
        svc, caller = check(info, environment_id)
        queries = await call(info, "list_saved_queries")
        custom = await svc.run(svc.custom_grains, caller)
        return [c.saved_query(q, custom) for q in queries]

    @strawberry.field
    async def saved_queries_paginated(
        self, info: Info, environment_id: EnvironmentId, search: str | None = None,
        page_num: int = 1, page_size: int | None = None,
    ) -> c.ResultPage[t.SavedQuery]:
        found = await Query.saved_queries(self, info, environment_id)
        return c.page(found, page_num, page_size, search)

    @strawberry.field(description="One saved query, by savedQueryName (or name).")
    async def saved_query(
        self, info: Info, environment_id: EnvironmentId, saved_query_name: str | None = None,
        name: str | None = None,
    ) -> t.SavedQuery:
        svc, caller = check(info, environment_id)
        wanted = saved_query_name or name
        if not wanted:
            raise InvalidRequest("savedQuery needs savedQueryName.")
        q = await call(info, "get_saved_query", wanted)
        return c.saved_query(q, await svc.run(svc.custom_grains, caller))

    @strawberry.field(description="An asynchronous query's status, SQL, error and one page "
                      "of its rows (1024 a page).")
    def query(self, info: Info, environment_id: EnvironmentId, query_id: str,
              page_num: int = 1) -> QueryResult:
        svc, caller = check(info, environment_id)
        return query_result(svc.jobs.get(query_id, caller), page_num)


QueryArgs = dict[str, Any]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Start a query; poll `query(queryId)` for its result.")
    async def create_query(
        self, info: Info, environment_id: EnvironmentId, saved_query: str | None = None,
        metrics: list[t.MetricInput] | None = None,
        group_by: list[t.GroupByInput] | None = None, where: list[t.WhereInput] | None = None,
        order_by: list[t.OrderByInput] | None = None, limit: int | None = None,
        read_cache: bool | None = True,
    ) -> t.CreateQueryResult:
        svc, caller = check(info, environment_id)
        require(caller, "query")  # before a job is held for a caller who may not run it
        request, aliases = await svc.run(lambda: _request(
            svc, caller, metrics=metrics, group_by=group_by, where=where, order_by=order_by,
            limit=limit, saved_query=saved_query))
        job = svc.submit_query(request, caller, read_cache=read_cache is not False,
                               rename=aliases)
        return t.CreateQueryResult(query_id=job.id)

    @strawberry.mutation(description="Run a query and wait for it: its first (or pageNum) page.")
    async def create_synchronous_query(
        self, info: Info, environment_id: EnvironmentId, saved_query: str | None = None,
        metrics: list[t.MetricInput] | None = None,
        group_by: list[t.GroupByInput] | None = None, where: list[t.WhereInput] | None = None,
        order_by: list[t.OrderByInput] | None = None, limit: int | None = None,
        read_cache: bool | None = True, page_num: int = 1,
    ) -> QueryResult:
        created = await Mutation.create_query(
            self, info, environment_id, saved_query, metrics, group_by, where, order_by, limit,
            read_cache)
        svc, caller = check(info, environment_id)
        job = svc.jobs.get(created.query_id, caller)
        if job.task is not None:
            await asyncio.shield(job.task)
        return query_result(job, page_num)

    @strawberry.mutation(description="Start a query for the distinct values of one group-by.")
    async def create_dimension_values_query(
        self, info: Info, environment_id: EnvironmentId, group_by: list[t.GroupByInput],
        metrics: list[t.MetricInput] | None = None, limit: int | None = None,
    ) -> t.CreateDimensionValuesQueryResult:
        svc, caller = check(info, environment_id)
        require(caller, "query")
        job = svc.submit_dimension_values(
            _dimension(group_by), _metric_names(metrics), limit=limit, caller=caller)
        return t.CreateDimensionValuesQueryResult(query_id=job.id)

    @strawberry.mutation(description="The SQL a query would run, without running it.")
    async def compile_sql(
        self, info: Info, environment_id: EnvironmentId, saved_query: str | None = None,
        metrics: list[t.MetricInput] | None = None,
        group_by: list[t.GroupByInput] | None = None, where: list[t.WhereInput] | None = None,
        order_by: list[t.OrderByInput] | None = None, limit: int | None = None,
        read_cache: bool | None = True,
    ) -> t.CompileSqlResult:
        svc, caller = check(info, environment_id)
        require(caller, "sql")  # before any compiling for a caller who may not see it

        def compile_() -> str:
            request, _ = _request(svc, caller, metrics=metrics, group_by=group_by, where=where,
                                  order_by=order_by, limit=limit, saved_query=saved_query)
            return svc.compile(request, caller).sql

        return t.CompileSqlResult(sql=await svc.run(compile_))

    @strawberry.mutation(description="The SQL of a dimension values query.")
    async def compile_dimension_values_sql(
        self, info: Info, environment_id: EnvironmentId, group_by: list[t.GroupByInput],
        metrics: list[t.MetricInput] | None = None, limit: int | None = None,
    ) -> t.CompileSqlResult:
        svc, caller = check(info, environment_id)
        require(caller, "sql")  # before any compiling for a caller who may not see it

        def compile_() -> str:
            request = svc.dimension_values_request(
                _dimension(group_by), _metric_names(metrics), limit, None, None, caller)
            return svc.compile(request, caller).sql

        return t.CompileSqlResult(sql=await svc.run(compile_))

    @strawberry.mutation(description="Stop a query that has not finished.")
    def cancel_query(self, info: Info, environment_id: EnvironmentId, query_id: str
                     ) -> t.CancelQueryResult:
        svc, caller = check(info, environment_id)
        return t.CancelQueryResult(query_id=svc.jobs.cancel(query_id, caller).id)


# Root fields that run a query, create a job or compile SQL (each costs a rate-limit token:
# gate.py). `query` encodes a page of a result (Arrow or JSON) each time it is asked.
COSTLY = frozenset({"query", "createQuery", "createSynchronousQuery",
                    "createDimensionValuesQuery", "compileSql", "compileDimensionValuesSql"})
schema = build_schema(Query, Mutation, t.SCALARS, costly=COSTLY, caller_of=caller_in)


class _SemanticLayerRouter(ErrorShapingRouter):
    def message_of(self, error: TallyError) -> str:
        # dbt's API answers an authentication failure with this message, which the SDK turns
        # into its AuthError; tally's own reason stays in extensions.
        if error.code == "unauthorized":
            return "User is not authorized"
        return error.message


def semantic_layer_router() -> GraphQLRouter:
    return _SemanticLayerRouter(schema, graphql_ide="graphiql")
