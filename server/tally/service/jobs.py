"""Asynchronous queries: a query submitted now and read later, by id. The dbt Semantic Layer's
GraphQL API works this way (createQuery, then poll `query(queryId)`), and so does tally's REST
form for long exports (POST /api/v1/queries -> 202, GET /api/v1/queries/{id}).

A job runs on the event loop as a task, through the same service entry points as any query
(cache, single flight, telemetry), as the caller who submitted it. At most `max_running` run at
once; the others wait and say PENDING. A finished job's result is kept for
`retention_seconds`, then forgotten: its id then answers `query_expired` (for a while), an id
never issued (or issued to another caller) `unknown_query`. Jobs are owned by the event loop's
thread: every method here is called from a coroutine or a callback on that loop."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

from tally.core.caller import Caller
from tally.core.results import QueryResult
from tally.errors import (
    QueryCancelled,
    QueryExpired,
    ServerFault,
    TallyError,
    TooManyQueries,
    UnknownQuery,
    shorten,
)

log = logging.getLogger("tally.jobs")
_EXPIRED_IDS_KEPT = 10_000


class JobStatus(StrEnum):
    PENDING = "PENDING"  # waiting for a free slot
    RUNNING = "RUNNING"  # compiling
    COMPILED = "COMPILED"  # SQL known, running on the warehouse (or read from the cache)
    SUCCESSFUL = "SUCCESSFUL"
    FAILED = "FAILED"  # error says why: the query's error, or query_cancelled


@dataclass
class Job:
    id: str
    kind: str  # query | dimension_values
    caller: Caller
    created_at: float
    status: JobStatus = JobStatus.PENDING
    sql: str | None = None
    error: TallyError | None = None
    result: QueryResult | None = None
    finished_at: float | None = None
    task: asyncio.Task | None = field(default=None, repr=False)

    @property
    def done(self) -> bool:
        return self.status in (JobStatus.SUCCESSFUL, JobStatus.FAILED)

    def compiled(self, sql: str) -> None:
        """The job's SQL is known; it now runs (the work function calls this)."""
        self.sql = sql
        if not self.done:
            self.status = JobStatus.COMPILED


Work = Callable[[Job], Awaitable[QueryResult]]


class JobManager:
    def __init__(
        self,
        *,
        max_running: int,
        retention_seconds: float,
        max_jobs: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_running = max_running
        self.retention_seconds = retention_seconds
        self.max_jobs = max_jobs
        self.clock = clock
        self._jobs: dict[str, Job] = {}
        self._expired: OrderedDict[str, None] = OrderedDict()
        self._slots: asyncio.Semaphore | None = None

    def submit(self, caller: Caller, kind: str, work: Work) -> Job:
        """Start `work` in the background (on the running loop) and return its job at once."""
        self.sweep()
        if len(self._jobs) >= self.max_jobs:
            raise TooManyQueries(
                f"The server holds {len(self._jobs)} asynchronous queries (its maximum, "
                "TALLY_JOB_MAX_HELD); retry once some have finished or expired."
            )
        job = Job(id=secrets.token_hex(16), kind=kind, caller=caller, created_at=self.clock())
        self._jobs[job.id] = job
        job.task = asyncio.get_running_loop().create_task(self._run(job, work))
        return job

    def get(self, job_id: str, caller: Caller) -> Job:
        """The caller's job, or unknown_query / query_expired."""
        self.sweep()
        job = self._jobs.get(job_id)
        if job is None or not _same_caller(job.caller, caller):
            if job_id in self._expired:
                raise QueryExpired(
                    f"Query {shorten(job_id)} has expired: results are kept "
                    f"{self.retention_seconds:g} s after the query finishes. Run it again."
                )
            raise UnknownQuery(
                f"No query with id {shorten(job_id)}: it was never created on this server "
                "(or by another caller)."
            )
        return job

    def cancel(self, job_id: str, caller: Caller) -> Job:
        """Stop a job that has not finished (a finished one is left as it is)."""
        job = self.get(job_id, caller)
        if not job.done:
            self._finish(job, error=QueryCancelled(f"Query {job.id} was cancelled."))
            if job.task is not None:
                job.task.cancel()
        return job

    def cancel_all(self) -> None:
        for job in list(self._jobs.values()):
            if not job.done and job.task is not None:
                job.task.cancel()

    def sweep(self) -> None:
        """Forget finished jobs older than the retention time (remembering their ids)."""
        now = self.clock()
        for job in list(self._jobs.values()):
            if job.finished_at is not None and now - job.finished_at >= self.retention_seconds:
                del self._jobs[job.id]
                self._expired[job.id] = None
        while len(self._expired) > _EXPIRED_IDS_KEPT:
            self._expired.popitem(last=False)

    def __len__(self) -> int:
        return len(self._jobs)

    async def _run(self, job: Job, work: Work) -> None:
        if self._slots is None:  # created on the loop that runs the jobs
            self._slots = asyncio.Semaphore(self.max_running)
        try:
            async with self._slots:
                if job.done:  # cancelled while it waited
                    return
                job.status = JobStatus.RUNNING
                result = await work(job)
            self._finish(job, result=result)
        except asyncio.CancelledError:
            if not job.done:
                self._finish(job, error=QueryCancelled(f"Query {job.id} was cancelled."))
        except TallyError as e:
            self._finish(job, error=e)
        except Exception:  # never lose a job to an unexpected error: it fails, logged
            log.exception("asynchronous query %s failed", job.id)
            self._finish(
                job, error=ServerFault("Internal server error; the server log has the details.")
            )

    def _finish(
        self, job: Job, *, result: QueryResult | None = None, error: TallyError | None = None
    ) -> None:
        if job.done:
            return
        job.result, job.error = result, error
        if result is not None and job.sql is None:
            job.sql = result.sql
        job.status = JobStatus.FAILED if error is not None else JobStatus.SUCCESSFUL
        job.finished_at = self.clock()


def _same_caller(a: Caller, b: Caller) -> bool:
    return a.subject == b.subject and a.access == b.access
