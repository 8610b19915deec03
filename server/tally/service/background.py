"""Queries in the background (the dbt Semantic Layer's createQuery, REST's POST /api/v1/queries):
submitted now as their caller, run through the same pipeline as any query, read later by id
(service/jobs.py holds them, fairly)."""

from __future__ import annotations

from dataclasses import replace

from tally.core.caller import Caller
from tally.core.request import QueryRequest
from tally.core.results import QueryResult, values_only
from tally.service.access import require, visible_errors
from tally.service.dimension_values import DimensionValues
from tally.service.jobs import Job, JobManager
from tally.service.pipeline import QueryPipeline


class Background:
    def __init__(
        self, pipeline: QueryPipeline, values: DimensionValues, jobs: JobManager
    ) -> None:
        self.pipeline, self.values, self.jobs = pipeline, values, jobs
        self.rt = pipeline.rt

    def submit_query(
        self,
        request: QueryRequest,
        caller: Caller,
        *,
        read_cache: bool = True,
        rename: dict[str, str] | None = None,
    ) -> Job:
        """Run a query in the background, as `caller`; its job (and id) at once. `rename`:
        result columns to give another name (a client's aliases for metrics)."""
        require(caller, "query")  # before a job is held: a meta-only key holds none

        async def work(job: Job) -> QueryResult:
            job.compiled(await self.rt.run(self._sql, request, caller))
            result, _ = await self.pipeline.query_async(request, caller, read_cache=read_cache)
            if rename:
                names = [rename.get(n, n) for n in result.table.column_names]
                result = replace(result, table=result.table.rename_columns(names))
            return _held(result)

        return self.jobs.submit(caller, "query", work)

    def submit_dimension_values(
        self, dimension: str, metrics: tuple[str, ...], *, limit: int | None, caller: Caller
    ) -> Job:
        """The distinct values of a dimension, in the background (see submit_query)."""
        require(caller, "query")

        async def work(job: Job) -> QueryResult:
            request = await self.rt.run(
                self.values.request, dimension, metrics, limit, None, None, caller
            )
            job.compiled(await self.rt.run(self._sql, request, caller))
            result, _ = await self.pipeline.query_async(request, caller)
            return _held(values_only(result))

        return self.jobs.submit(caller, "dimension_values", work)

    def _sql(self, request: QueryRequest, caller: Caller) -> str:
        """A job's SQL, as its caller will run it: shown only with the `sql` scope."""
        compiler = self.rt.compiler
        with visible_errors(caller, lambda: compiler):
            sql = compiler.compile(self.pipeline.authorize(compiler, request, caller)).sql
        return sql if caller.has("sql") else ""


def _held(result: QueryResult) -> QueryResult:
    """A job's result as the job holds it: without the cache entry's memo, where encoders keep
    a result's encoded text (the JSON of 70,000 rows is several times its Arrow bytes). A job
    counts its result's bytes against its caller's budget; text kept in a memo would be
    outside every budget once the cache has let the entry go."""
    return replace(result, memo=None)
