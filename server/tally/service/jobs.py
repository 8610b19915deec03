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
import contextlib
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
    ResultTooLarge,
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


Owner = tuple[str | None, tuple[tuple[str, str], ...]]


def owner_of(caller: Caller) -> Owner:
    """Whose a job is: the same subject with the same access context."""
    return (caller.subject, caller.access)


Holder = Owner | tuple[str, str]


def holder_of(caller: Caller) -> Holder:
    """Who a job counts against when the server is shared out: the group of a minting key's
    tokens (however many subjects they carry), else its owner."""
    return ("group", caller.group) if caller.group is not None else owner_of(caller)


class JobManager:
    """The jobs of one server, bounded so that no caller can crowd out the others:
    * count: at most `max_per_caller` held per caller and `max_jobs` in all; when the table is
      full, a finished job of the caller holding the most is forgotten to make room for a
      caller holding fewer, and a query is refused only when nothing can be forgotten fairly;
    * bytes: finished results are counted (Arrow bytes) against a per-caller and a global
      budget; the oldest results of the caller over budget (or, globally, of the caller
      holding the most) are forgotten first; a single result over the caller's budget fails;
    * running: at most `max_running` in all and `max_running_per_caller` per caller, so one
      caller's backlog waits behind the others' queries rather than in front of them.
    A forgotten job's id answers query_expired, saying why."""

    def __init__(
        self,
        *,
        max_running: int,
        retention_seconds: float,
        max_jobs: int,
        clock: Callable[[], float] = time.monotonic,
        max_per_caller: int | None = None,
        max_running_per_caller: int | None = None,
        max_bytes: int = 0,
        max_bytes_per_caller: int = 0,
        fanout: int = 4,
    ) -> None:
        self.max_running = max_running
        self.retention_seconds = retention_seconds
        self.max_jobs = max_jobs
        self.max_per_caller = min(max_per_caller or max_jobs, max_jobs)
        self.max_running_per_caller = min(max_running_per_caller or max_running, max_running)
        self.max_bytes = max_bytes  # 0: not bounded
        self.max_bytes_per_caller = max_bytes_per_caller
        # The callers of one group (embed tokens of one minter) together: this many times a
        # caller's quota and byte budget.
        self.fanout = max(1, fanout)
        self.clock = clock
        self._jobs: dict[str, Job] = {}
        self._expired: OrderedDict[str, str] = OrderedDict()  # id -> why it is gone
        self._slots: asyncio.Semaphore | None = None
        self._own_slots: dict[Holder, asyncio.Semaphore] = {}
        self._own_users: dict[Holder, int] = {}  # jobs running or waiting, per holder
        self._bytes: dict[str, int] = {}  # finished job id -> its result's bytes

    def submit(self, caller: Caller, kind: str, work: Work) -> Job:
        """Start `work` in the background (on the running loop) and return its job at once."""
        self.sweep()
        owner = owner_of(caller)
        held = self._held_by(owner)
        if len(held) >= self.max_per_caller:
            raise TooManyQueries(
                f"You hold {len(held)} asynchronous queries, the most one caller may "
                "(TALLY_JOB_MAX_PER_CALLER); read or cancel some, or retry once they expire."
            )
        group = caller.group
        if group is not None:
            together = sum(1 for j in self._jobs.values() if j.caller.group == group)
            if together >= self.max_per_caller * self.fanout:
                raise TooManyQueries(
                    f"The tokens of your minting key hold {together} asynchronous queries, the "
                    "most they may together (TALLY_JOB_MAX_PER_CALLER x TALLY_EMBED_FANOUT); "
                    "retry once some have finished or expired."
                )
        if len(self._jobs) >= self.max_jobs and not self._make_room_for(caller):
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
            why = self._expired.get(job_id)
            if why is not None:
                raise QueryExpired(f"Query {shorten(job_id)} has expired: {why} Run it again.")
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
                self._forget(job, f"results are kept {self.retention_seconds:g} s after the "
                             "query finishes.")  # fmt: skip
        while len(self._expired) > _EXPIRED_IDS_KEPT:
            self._expired.popitem(last=False)

    @property
    def result_bytes(self) -> int:
        """Bytes of the finished results held now."""
        return sum(self._bytes.values())

    def __len__(self) -> int:
        return len(self._jobs)

    # Fair shares -------------------------------------------------------------------------

    def _held_by(self, owner: Owner) -> list[Job]:
        return [j for j in self._jobs.values() if owner_of(j.caller) == owner]

    def _make_room_for(self, caller: Caller) -> bool:
        """Forget the oldest finished job of the holder holding the most (a caller, or the
        group of a minting key's tokens), if it holds more than `caller`'s holder does: a full
        table then costs the largest holder, never one with fewer queries."""
        counts: dict[Holder, int] = {}
        for job in self._jobs.values():
            counts[holder_of(job.caller)] = counts.get(holder_of(job.caller), 0) + 1
        mine = counts.get(holder_of(caller), 0)
        for other, count in sorted(counts.items(), key=lambda kv: -kv[1]):
            if count <= mine:
                return False
            finished = [j for j in self._jobs.values() if j.done and holder_of(j.caller) == other]
            if finished:
                oldest = min(finished, key=lambda j: j.finished_at or 0.0)
                self._forget(oldest, "the server's table of asynchronous queries was full "
                             "and this caller held the most.")  # fmt: skip
                return True
        return False

    def _hold_bytes(self, job: Job, nbytes: int) -> TallyError | None:
        """Count a finished result against the budgets, forgetting older results to make
        room; the error the job fails with when it cannot be held at all."""
        if self.max_bytes_per_caller and nbytes > self.max_bytes_per_caller:
            return ResultTooLarge(
                f"The result holds {_mib(nbytes)}, more than the {_mib(self.max_bytes_per_caller)}"
                " one caller's asynchronous results may hold (TALLY_JOB_RESULTS_MAX_BYTES_PER_"
                "CALLER): add filters or a coarser grain, or export it whole with POST "
                "/api/v1/exports."
            )
        owner = owner_of(job.caller)
        if self.max_bytes_per_caller:
            self._trim(
                owner,
                self.max_bytes_per_caller - nbytes,
                "this caller's asynchronous results exceeded its memory budget.",
            )
            group = job.caller.group
            if group is not None:
                self._trim_group(group, self.max_bytes_per_caller * self.fanout - nbytes)
        if self.max_bytes:
            while self.result_bytes + nbytes > self.max_bytes and self._bytes:
                largest = self._largest_holder()
                self._trim(largest, self._owner_bytes(largest) - 1,
                           "the server's memory for asynchronous results was full and this "
                           "caller held the most.")  # fmt: skip
        self._bytes[job.id] = nbytes
        return None

    def _trim(self, owner: Owner, budget: int, why: str) -> None:
        """Forget the owner's oldest finished results until they hold <= budget."""
        held = sorted(
            (self._jobs[i] for i in self._bytes if owner_of(self._jobs[i].caller) == owner),
            key=lambda j: j.finished_at or 0.0,
        )
        total = sum(self._bytes[j.id] for j in held)
        for job in held:
            if total <= budget:
                return
            total -= self._bytes[job.id]
            self._forget(job, why)

    def _trim_group(self, group: str, budget: int) -> None:
        """Forget the group's oldest finished results until they hold <= budget."""
        held = sorted((self._jobs[i] for i in self._bytes if self._jobs[i].caller.group == group),
                      key=lambda j: j.finished_at or 0.0)  # fmt: skip
        total = sum(self._bytes[j.id] for j in held)
        for job in held:
            if total <= budget:
                return
            total -= self._bytes[job.id]
            self._forget(job, "the asynchronous results of your minting key's tokens exceeded "
                         "their memory budget.")  # fmt: skip

    def _owner_bytes(self, owner: Owner) -> int:
        return sum(n for i, n in self._bytes.items() if owner_of(self._jobs[i].caller) == owner)

    def _largest_holder(self) -> Owner:
        totals: dict[Owner, int] = {}
        for job_id, n in self._bytes.items():
            owner = owner_of(self._jobs[job_id].caller)
            totals[owner] = totals.get(owner, 0) + n
        return max(totals, key=lambda o: totals[o])

    def _forget(self, job: Job, why: str) -> None:
        self._jobs.pop(job.id, None)
        self._bytes.pop(job.id, None)
        self._expired[job.id] = why

    # Running -----------------------------------------------------------------------------

    async def _run(self, job: Job, work: Work) -> None:
        if self._slots is None:  # created on the loop that runs the jobs
            self._slots = asyncio.Semaphore(self.max_running)
        owner = holder_of(job.caller)
        own = self._own_slots.get(owner)
        if own is None:
            # A group (a minting key's tokens) runs as many as a few callers, and never more
            # than half the workers, whatever subjects its tokens carry.
            size = self.max_running_per_caller if job.caller.group is None else min(
                self.max_running_per_caller * self.fanout, max(1, self.max_running // 2))
            own = self._own_slots[owner] = asyncio.Semaphore(size)
        self._own_users[owner] = self._own_users.get(owner, 0) + 1
        try:
            async with own, self._slots:
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
        finally:
            self._own_users[owner] -= 1
            if not self._own_users[owner]:  # no job of this caller runs or waits: forget it
                del self._own_users[owner], self._own_slots[owner]

    def _finish(
        self, job: Job, *, result: QueryResult | None = None, error: TallyError | None = None
    ) -> None:
        if job.done:
            return
        if result is not None and job.id in self._jobs:
            refused = self._hold_bytes(job, _nbytes(result))
            if refused is not None:
                result, error = None, refused
        job.result, job.error = result, error
        if result is not None and job.sql is None:
            job.sql = result.sql
        job.status = JobStatus.FAILED if error is not None else JobStatus.SUCCESSFUL
        job.finished_at = self.clock()
        with contextlib.suppress(RuntimeError):  # no running loop: swept at the next call
            # Forgotten when its retention ends, even if no one calls the job API again.
            asyncio.get_running_loop().call_later(self.retention_seconds + 1, self.sweep)


def _nbytes(result: object) -> int:
    table = getattr(result, "table", None)
    return max(int(table.nbytes), 1) if table is not None else 0


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"


def _same_caller(a: Caller, b: Caller) -> bool:
    return owner_of(a) == owner_of(b)
