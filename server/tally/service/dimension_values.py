"""Dimension values: the distinct values of one dimension, as a one-column query through the
same pipeline as any other (cache, single flight, the caller's row filters)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tally.core.caller import Caller
from tally.core.request import QueryRequest
from tally.core.results import QueryResult, values_only
from tally.errors import NotFound, UnknownDimension
from tally.service.access import visible_errors
from tally.service.pipeline import QueryPipeline

T = TypeVar("T")


class DimensionValues:
    def __init__(self, pipeline: QueryPipeline) -> None:
        self.pipeline = pipeline
        self.rt = pipeline.rt

    def request(
        self,
        dimension: str,
        metrics: tuple[str, ...],
        limit: int | None,
        start: object,
        end: object,
        caller: Caller,
    ) -> QueryRequest:
        """The query whose only column is the distinct values of a dimension: with `metrics`,
        the values reachable through them (the dimension grouped by those metrics); without,
        every value in the dimension's own semantic model (a query without metrics)."""
        compiler = self.rt.compiler
        if not metrics:
            own = compiler.index(())
            if own.resolve(dimension) is None:
                # bike__station__city_name is station__city_name in its own model.
                parts = dimension.split("__")
                short = "__".join(parts[-2:]) if len(parts) > 2 else dimension
                if own.resolve(short) is not None:
                    dimension = short
        request = QueryRequest.create(
            metrics=metrics, group_by=[dimension], limit=limit, start=start, end=end
        )
        try:
            with visible_errors(caller, lambda: compiler):
                compiler.check(request)
        except UnknownDimension as e:  # a resource route: an unknown name is 404
            raise NotFound.of(e) from None
        return request

    async def values_async(
        self,
        dimension: str,
        metrics: tuple[str, ...],
        *,
        limit: int | None,
        start: object,
        end: object,
        caller: Caller,
        finish: Callable[[QueryResult], T] | None,
    ) -> tuple[QueryResult, T | None]:
        """The distinct values of a dimension (a one-column result), cached like a query."""
        request = await self.rt.run(self.request, dimension, metrics, limit, start, end, caller)
        done: Callable[[QueryResult], T | None] = finish or (lambda _r: None)
        result, out = await self.pipeline.query_async(
            request, caller, lambda r: done(values_only(r))
        )
        return values_only(result), out
