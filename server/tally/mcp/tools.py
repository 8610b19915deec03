"""What each MCP tool does, transport-neutral: arguments in (already validated for type by the
SDK), a JSON-able answer out, as `caller`. Names and arguments follow dbt's MCP semantic-layer
tools (list_metrics, get_dimensions, query_metrics...), so prompts written for those work."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Any, Literal

from pydantic import BaseModel, Field

from tally.core.caller import Caller
from tally.core.formats import Format
from tally.core.request import QueryRequest
from tally.core.semantic_layer import GroupBy, OrderBy, build_request
from tally.errors import InvalidRequest, ResultTooLarge
from tally.mcp import explain as explaining
from tally.mcp.answers import answer, check_format, unit_of
from tally.service import TallyService

DEFAULT_VALUES = 100


class GroupByParam(BaseModel):
    """One group-by item, as dbt's MCP tools take it."""

    name: str = Field(description="A dimension, entity or time dimension, e.g. metric_time.")
    type: Literal["dimension", "time_dimension", "entity"] = "dimension"
    grain: str | None = Field(
        None, description="For time dimensions: day, week, month, quarter, year (or custom)."
    )


class OrderByParam(BaseModel):
    name: str = Field(description="A metric or a group-by of the query.")
    descending: bool = False


def _matches(search: str | None, *texts: str | None) -> bool:
    if not search or not search.strip():
        return True
    needle = search.strip().lower()
    return any(needle in (t or "").lower() for t in texts)


def _where(where: str | Sequence[str] | None) -> list[str]:
    if where is None:
        return []
    return [where] if isinstance(where, str) else list(where)


def _group_by(item: GroupByParam) -> GroupBy:
    if item.type == "entity" and item.grain:
        raise InvalidRequest(f"Entity {item.name!r} takes no grain.")
    return GroupBy(item.name, grain=item.grain)


class Tools:
    def __init__(self, service: TallyService) -> None:
        self.service = service

    @property
    def max_rows(self) -> int:
        """Rows shown when the agent gives no limit."""
        return self.service.settings.mcp_max_rows

    # Catalog ---------------------------------------------------------------------------

    def _metric_entry(self, m: Any, caller: Caller) -> dict[str, Any]:
        measures = self.service.list_measures((m.name,), caller)
        return {"name": m.name, "label": m.label, "description": m.description, "type": m.type,
                "unit": unit_of(m, measures)}  # fmt: skip

    async def list_metrics(self, caller: Caller, search: str | None) -> dict[str, Any]:
        def work() -> dict[str, Any]:
            metrics = self.service.list_metrics(caller)
            return {"metrics": [self._metric_entry(m, caller) for m in metrics
                                if _matches(search, m.name, m.label, m.description)]}  # fmt: skip

        return await self.service.run(work)

    async def list_saved_queries(self, caller: Caller, search: str | None) -> dict[str, Any]:
        queries = await self.service.run(self.service.list_saved_queries, caller)
        return {"saved_queries": [
            {"name": q.name, "label": q.label, "description": q.description,
             "metrics": list(q.metrics), "group_by": list(q.group_by), "where": list(q.where)}
            for q in queries if _matches(search, q.name, q.label, q.description)
        ]}  # fmt: skip

    async def get_dimensions(
        self, caller: Caller, metrics: Sequence[str], search: str | None
    ) -> dict[str, Any]:
        names = tuple(m.strip().lower() for m in metrics)
        dims = await self.service.run(self.service.list_dimensions, names, caller)
        return {"dimensions": [
            {"name": d.name, "type": d.type, "label": d.label, "description": d.description,
             **({"grains": list(d.grains)} if d.grains else {})}
            for d in dims if _matches(search, d.name, d.label, d.description)
        ]}  # fmt: skip

    async def get_entities(
        self, caller: Caller, metrics: Sequence[str], search: str | None
    ) -> dict[str, Any]:
        names = tuple(m.strip().lower() for m in metrics)
        ents = await self.service.run(self.service.list_entities, names, caller)
        return {"entities": [asdict(e) for e in ents
                             if _matches(search, e.name, e.label, e.description)]}  # fmt: skip

    async def get_dimension_values(
        self, caller: Caller, dimension: str, metrics: Sequence[str], limit: int | None
    ) -> dict[str, Any]:
        shown = self._shown(limit or DEFAULT_VALUES)
        name = dimension.strip().lower()
        if not name:
            raise InvalidRequest("dimension must not be empty.")
        result, _ = await self.service.dimension_values_async(
            name, tuple(m.strip().lower() for m in metrics), caller=caller
        )
        column = result.table.column(0).to_pylist()
        values = column[:shown]
        from tally.core.encoding import json_value

        return {"dimension": name, "values": [json_value(v) for v in values],
                "row_count": len(values), "total_values": len(column),
                "truncated": len(values) < len(column)}  # fmt: skip

    async def explain_metric(self, caller: Caller, name: str) -> dict[str, Any]:
        return await self.service.run(explaining.explain, self.service, name, caller)

    # Queries ---------------------------------------------------------------------------

    def _shown(self, limit: int | None) -> int:
        if limit is not None and limit < 0:
            raise InvalidRequest(f"limit must be 0 or more, got {limit}.")
        # No limit: a page an agent's context can hold; an explicit one: up to the server's
        # own maximum. Either way the answer says when rows were left out.
        return self.max_rows if limit is None else min(limit, self.service.settings.max_rows)

    def request(
        self,
        metrics: Sequence[str],
        group_by: Sequence[GroupByParam] | None,
        order_by: Sequence[OrderByParam] | None,
        where: str | Sequence[str] | None,
        start: str | None = None,
        end: str | None = None,
    ) -> QueryRequest:
        """The request without a limit: the tool cuts the rows it shows itself, so that it knows
        the whole answer's row count."""
        base = build_request(
            metrics=list(metrics),
            group_by=[_group_by(g) for g in group_by or ()],
            where=_where(where),
            order_by=[OrderBy(o.name, o.descending) for o in order_by or ()],
        )
        if start is None and end is None:
            return base
        return QueryRequest.create(
            metrics=base.metrics, group_by=base.group_by, where=list(base.where),
            order_by=base.order_by, start=start, end=end,
        )  # fmt: skip

    async def query_metrics(
        self,
        caller: Caller,
        metrics: Sequence[str],
        group_by: Sequence[GroupByParam] | None,
        order_by: Sequence[OrderByParam] | None,
        where: str | Sequence[str] | None,
        limit: int | None,
        fmt: str | None = None,
        start: str | None = None,
        end: str | None = None,
    ) -> dict[str, Any]:
        chosen = check_format(fmt)
        shown = self._shown(limit)
        request = await self.service.run(
            self.request, metrics, group_by, order_by, where, start, end
        )
        return await self._answer(caller, request, shown, chosen)

    async def query_saved_query(
        self,
        caller: Caller,
        name: str,
        where: str | Sequence[str] | None,
        limit: int | None,
        fmt: str | None = None,
    ) -> dict[str, Any]:
        chosen = check_format(fmt)
        shown = self._shown(limit)
        saved = await self.service.run(self.service.get_saved_query, name, caller)
        request = QueryRequest.create(saved_query=saved.name, where=_where(where))
        body = await self._answer(caller, request, shown, chosen, saved_where=saved.where)
        return {"saved_query": saved.name, **body}

    async def compiled_sql(
        self,
        caller: Caller,
        metrics: Sequence[str],
        group_by: Sequence[GroupByParam] | None,
        order_by: Sequence[OrderByParam] | None,
        where: str | Sequence[str] | None,
        limit: int | None,
    ) -> dict[str, Any]:
        def work() -> dict[str, Any]:
            request = self.request(metrics, group_by, order_by, where)
            if limit is not None:
                request = QueryRequest.create(
                    metrics=request.metrics, group_by=request.group_by,
                    where=list(request.where), order_by=request.order_by, limit=limit,
                )  # fmt: skip
            return {"sql": self.service.compile(request, caller).sql}

        return await self.service.run(work)

    async def _answer(
        self,
        caller: Caller,
        request: QueryRequest,
        shown: int,
        fmt: Format,
        saved_where: Iterable[str] = (),
    ) -> dict[str, Any]:
        svc = self.service
        try:
            result, _ = await svc.query_async(request, caller)
            at_least = None
        except ResultTooLarge:
            # More rows than the server returns at all (TALLY_MAX_ROWS): show the first ones and
            # say the whole answer has more than that maximum (its exact size would take
            # running it whole).
            from dataclasses import replace

            result, _ = await svc.query_async(replace(request, limit=shown), caller)
            at_least = svc.settings.max_rows + 1

        def units() -> tuple[dict[str, str], dict[str, str]]:
            out, labels = {}, {}
            for n, metric in svc.metrics_among(result.table.column_names, caller).items():
                out[n] = unit_of(metric, svc.list_measures((n,), caller))
                labels[n] = metric.label
            return out, labels

        unit_map, labels = await svc.run(units)
        body = answer(result, request, units=unit_map, labels=labels, shown=shown, fmt=fmt,
                      saved_where=saved_where)  # fmt: skip
        if at_least is not None:
            body.update(total_rows=None, total_rows_at_least=at_least, truncated=True)
            body["note"] = (
                f"Only the first {body['row_count']} rows are shown; the whole answer has more "
                f"than {at_least - 1} rows (the server's maximum): add filters or use a "
                "coarser grain."
            )
        return body
