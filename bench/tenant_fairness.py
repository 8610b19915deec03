"""One tenant attacks, another keeps working: a real secured `tally serve` (two tenants by
country, JWTs) under the resource attacks of the hardening review, side by side with the same
server idle. Prints the victim's fresh-query latency in each phase against idle (the target:
within 3x) and the server's resident memory against its configured bound.

The attacker follows the rate limit as a client does (it waits out a 429's Retry-After): the
attacks are those of the review, within the limits; refusing a flood of requests beyond them
is a proxy's job. Phases (each `--seconds` long, the victim asking a fresh question every
`--pause` seconds):
  jobs      the attacker fills the asynchronous-query table: GraphQL documents of 30 aliased
            createQuery and REST POST /api/v1/queries, from 6 threads;
  results   the attacker holds job results: jobs of a ~70,000-row result, then polls them;
  filters   4 concurrent bodies with a 25,000-value `in` filter, and 8 threads of the largest
            filters allowed (1,000 values) on fresh questions.

    .venv/bin/python bench/tenant_fairness.py [--seconds 20] [--pause 0.25]

Needs the demo warehouse (`make warehouse`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import jwt
from serving import ROOT, tally_serve_process

SECRET = "bench-jwt-secret-that-is-long-enough-for-hs256"
TALLY_YML = """
policies:
  - role: tenant
    row_filters:
      - {dimension: customer__country, op: in, values: "{{ claims.countries }}"}
"""
MIB = 1024 * 1024
# Budgets of this run (small, so that an unbounded store would show at once).
BUDGETS = {"TALLY_CACHE_MAX_BYTES": 64 * MIB, "TALLY_JOB_RESULTS_MAX_BYTES": 64 * MIB,
           "TALLY_JOB_RESULTS_MAX_BYTES_PER_CALLER": 16 * MIB}
BIG = {"metrics": ["order_count", "revenue"],
       "group_by": ["metric_time__day", "customer__country", "order__order_status"]}


def token(country: str, who: str = "") -> str:
    now = int(time.time())
    return jwt.encode({"sub": f"tenant-{country}{who}", "roles": ["tenant"],
                       "countries": [country], "iat": now, "exp": now + 3600},
                      SECRET, algorithm="HS256")  # fmt: skip


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class Victim:
    """Fresh questions (a filter no one asked before), one at a time, timed."""

    def __init__(self, base: str, tok: str) -> None:
        self.client = httpx.Client(base_url=base, timeout=120,
                                   headers={"authorization": f"Bearer {tok}"})
        self.counter = itertools.count()

    def ask(self) -> float:
        n = next(self.counter)
        body = {"metrics": ["revenue"], "group_by": ["metric_time__month"],
                "where": [{"dimension": "customer__country", "op": "!=", "value": f"X{n}"}]}
        t = time.perf_counter()
        r = self.client.post("/api/v1/query", json=body)
        elapsed = time.perf_counter() - t
        assert r.status_code == 200, r.text
        return elapsed

    def during(self, seconds: float, pause: float) -> list[float]:
        out, end = [], time.monotonic() + seconds
        while time.monotonic() < end:
            out.append(self.ask())
            time.sleep(pause)
        return out


class PeakMemory:
    """The most resident memory a process had, sampled every 0.1 s until end()."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, rss(self.pid))
            time.sleep(0.1)

    def end(self) -> int:
        self.stop.set()
        self.thread.join()
        return self.peak


class Attack:
    def __init__(self, base: str, tok: str) -> None:
        self.base, self.tok = base, tok
        self.stop = threading.Event()
        self.counts: dict[int, int] = {}
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def start(self, work, threads: int) -> None:
        def loop() -> None:
            with httpx.Client(base_url=self.base, timeout=120,
                              headers={"authorization": f"Bearer {self.tok}"}) as c:
                while not self.stop.is_set():
                    try:
                        status, wait = work(c)
                    except httpx.HTTPError:
                        status, wait = -1, 0.0
                    with self.lock:
                        self.counts[status] = self.counts.get(status, 0) + 1
                    if wait:  # as a client following the rate limit does (Retry-After)
                        self.stop.wait(min(wait, 5.0))

        for _ in range(threads):
            t = threading.Thread(target=loop, daemon=True)
            t.start()
            self.threads.append(t)

    def end(self) -> dict[int, int]:
        self.stop.set()
        for t in self.threads:
            t.join(150)
        return dict(sorted(self.counts.items()))


def _answer(r: httpx.Response) -> tuple[int, float]:
    """The status, and how long to wait before the next request (429's Retry-After; a dbt SL
    GraphQL refusal says it in its error's extensions)."""
    if r.status_code == 429:
        return 429, float(r.headers.get("retry-after", 1))
    if r.headers.get("content-type", "").startswith("application/json") and "/graphql" in str(
            r.url):
        errors = r.json().get("errors") or []
        if errors and errors[0].get("extensions", {}).get("code") == "too_many_requests":
            return 429, 1.0
    return r.status_code, 0.0


def _aliases(c: httpx.Client) -> tuple[int, float]:
    fields = " ".join(f'q{i}: createQuery(environmentId: 1, metrics: [{{name: "order_count"}}],'
                      f" limit: {time.monotonic_ns() % 10**9 + i}) {{ queryId }}"
                      for i in range(30))
    return _answer(c.post("/api/graphql", json={"query": f"mutation {{ {fields} }}"}))


def _rest_job(c: httpx.Client) -> tuple[int, float]:
    return _answer(c.post("/api/v1/queries", json={"metrics": ["order_count"],
                                                   "limit": time.monotonic_ns() % 10**9}))


def _big_job(c: httpx.Client) -> tuple[int, float]:
    r = c.post("/api/v1/queries", json={**BIG, "limit": 10**6 + time.monotonic_ns() % 10**6})
    if r.status_code == 202:
        location = r.headers["location"]
        for _ in range(600):
            state = c.get(location)
            if state.status_code != 200 or state.json()["status"] in ("SUCCESSFUL", "FAILED"):
                break
            time.sleep(0.05)
    return _answer(r)


# The attacker's bodies are built once: an attacker's own CPU is not the server's, and a bench
# client encoding 25,000 values per request would take the cores the server and the victim share.
_HUGE = json.dumps({"metrics": ["revenue"], "where": [
    {"dimension": "customer__country", "op": "in",
     "values": [f"V{i}" for i in range(25_000)]}]}).encode()
_LARGEST = json.dumps({"metrics": ["revenue"], "group_by": ["metric_time__month"], "where": [
    {"dimension": "customer__country", "op": "in",
     "values": ["FRESH"] + [f"W{i}" for i in range(999)]}]})
_JSON = {"content-type": "application/json"}


def _huge_filter(c: httpx.Client) -> tuple[int, float]:
    return _answer(c.post("/api/v1/query", content=_HUGE, headers=_JSON))


def _largest_allowed(c: httpx.Client) -> tuple[int, float]:
    """The largest filter allowed, on a question no one asked before (one value changes)."""
    body = _LARGEST.replace("FRESH", f"F{time.monotonic_ns()}", 1).encode()
    return _answer(c.post("/api/v1/query", content=body, headers=_JSON))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--pause", type=float, default=0.25)
    args = parser.parse_args()
    warehouse = ROOT / "dbt_project" / "warehouse.duckdb"
    if not warehouse.exists():
        print("run `make warehouse` first", file=sys.stderr)
        return 2
    project = Path(tempfile.mkdtemp(prefix="tally-fairness-")) / "project"
    project.mkdir()
    for name in ("dbt_project.yml", "profiles.yml"):
        shutil.copy(ROOT / "dbt_project" / name, project / name)
    (project / "tally.yml").write_text(TALLY_YML)
    env = {"TALLY_PROJECT_DIR": str(project), "TALLY_DUCKDB_PATH": str(warehouse),
           "TALLY_MANIFEST_PATH": str(ROOT / "dbt_project" / "target" / "semantic_manifest.json"),
           "TALLY_JWT_SECRET": SECRET, **{k: str(v) for k, v in BUDGETS.items()}}
    results: list[tuple[str, list[float], dict[int, int]]] = []
    peak = 0
    with tally_serve_process(env) as (base, proc):
        victim = Victim(base, token("FR"))
        for _ in range(5):
            victim.ask()  # warm: engine, compiled SQL
        base_rss = rss(proc.pid)
        print(f"server up; resident memory after warm-up {base_rss / MIB:.0f} MiB", file=sys.stderr)
        idle = victim.during(args.seconds, args.pause)
        results.append(("idle", idle, {}))
        phases = {
            "jobs": [(_aliases, 3), (_rest_job, 3)],
            "results": [(_big_job, 6)],
            "filters": [(_huge_filter, 4), (_largest_allowed, 8)],
        }
        for name, works in phases.items():
            print(f"phase {name} ({args.seconds:.0f} s) ...", file=sys.stderr)
            attack = Attack(base, token("DE", name))  # a fresh attacker per phase
            for work, threads in works:
                attack.start(work, threads)
            memory = PeakMemory(proc.pid)
            times = victim.during(args.seconds, args.pause)
            counts = attack.end()
            peak = max(peak, memory.end())
            results.append((name, times, counts))
        final = rss(proc.pid)
    cache, jobs = BUDGETS["TALLY_CACHE_MAX_BYTES"], BUDGETS["TALLY_JOB_RESULTS_MAX_BYTES"]
    bound = base_rss + cache + cache // 4 + jobs + 128 * MIB
    idle_median = statistics.median(idle)
    print(f"\n{'phase':10}{'victim asks':>12}{'median ms':>11}{'p95 ms':>9}{'x idle':>8}"
          "   attacker's answers (status: count)")
    for name, times, counts in results:
        p95 = statistics.quantiles(times, n=20)[-1] if len(times) > 1 else times[0]
        print(f"{name:10}{len(times):12}{statistics.median(times) * 1000:11.1f}{p95 * 1000:9.1f}"
              f"{statistics.median(times) / idle_median:8.2f}   {counts}")
    print(f"\nresident memory: after warm-up {base_rss / MIB:.0f} MiB, peak {peak / MIB:.0f} MiB, "
          f"at the end {final / MIB:.0f} MiB; configured bound {bound / MIB:.0f} MiB (warm-up + "
          f"cache {BUDGETS['TALLY_CACHE_MAX_BYTES'] // MIB} MiB + stale copies "
          f"{BUDGETS['TALLY_CACHE_MAX_BYTES'] // 4 // MIB} MiB + job results "
          f"{BUDGETS['TALLY_JOB_RESULTS_MAX_BYTES'] // MIB} MiB + 128 MiB for queries in flight)")
    worst = max(statistics.median(t) for _, t, _ in results[1:]) / idle_median
    print(f"worst phase / idle (median): {worst:.2f}x (target <= 3x); peak within bound: "
          f"{'yes' if peak <= bound else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
