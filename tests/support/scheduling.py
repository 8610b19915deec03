"""How `make test` spreads tests over its pytest-xdist workers: one test at a time to whichever
worker is free (as xdist's `load`), the slow ones first, except groups of tests that must share
one worker, each sent as one unit.

Slow first (heavy_first, on every worker's identical collection): tests that run dbt, the
`tally` command or a server in subprocesses, and the correctness suite on PostgreSQL. Started
early they are spread over both workers; left to the end, one of them can keep one worker busy
while the other has nothing left to do.

A group is every test under a path prefix (GROUPS). xdist's own groups (`xdist_group` marks
with --dist loadgroup) never reach its scheduler under pytest 9.2: xdist 3.8 appends the group
to a node id through an attribute pytest no longer reads. The controller sees node ids only,
so the groups are named by path; this scheduler stands in for xdist's with --dist loadgroup."""

from __future__ import annotations

from typing import Any

import pytest

# path prefix -> group
GROUPS = {
    # A module fixture generates raw data that every test of the module reads: once, not once
    # per worker.
    "tests/datagen/": "datagen",
    # Module fixtures: three `tally serve` replicas and a redis-server; a dbt-adapter service.
    "tests/cache/test_replicas.py": "replicas",
    "tests/warehouse/test_dbt_adapter.py": "dbt-adapter",
    # One `tally mcp` and one `tally serve` per module, shared by its tests.
    "tests/mcp/test_tools.py": "mcp-tools",
    "tests/mcp/test_tenant.py": "mcp-tenant",
    # One secured server, `tally mcp` processes and a Redis prefix; the cells invalidate the
    # shared cache in turn, so they run one at a time.
    "tests/security/test_tenant_matrix.py": "tenant-matrix",
    # One real server (and one browser) for the clients' and dashboards' tests.
    "tests/clients/": "clients",
    # One `tally serve --pg-port` for every real PostgreSQL client's tests.
    "tests/pgwire/": "pgwire",
    # A private PostgreSQL database (raw data copied, dbt build) with rollups built in it.
    "tests/rollups/test_postgres.py": "pg-rollups",
}

# Slow tests, by what their node id starts with or contains.
SLOW_PREFIXES = ("tests/validate/", "tests/e2e/", "tests/cli/", "tests/mcp/", "tests/clients/",
                 "tests/project/", "tests/pgwire/",
                 "tests/cache/test_replicas.py", "tests/warehouse/test_dbt_adapter.py",
                 "tests/rollups/test_postgres.py")
SLOW_PARTS = ("[postgres-",)  # the correctness suite's PostgreSQL transport


def group_of(nodeid: str) -> str | None:
    return next((group for prefix, group in GROUPS.items() if nodeid.startswith(prefix)), None)


def is_slow(nodeid: str) -> bool:
    return nodeid.startswith(SLOW_PREFIXES) or any(part in nodeid for part in SLOW_PARTS)


def heavy_first(items: list[pytest.Item]) -> None:
    """Slow tests first, in place; a stable sort, so each part keeps pytest's order (which
    sets a session fixture's parameters up once each)."""
    items.sort(key=lambda item: not is_slow(item.nodeid))


def make_scheduler(config: pytest.Config, log: Any) -> Any:
    """pytest_xdist_make_scheduler: ours for --dist loadgroup, xdist's for any other mode."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid) or nodeid

    return GroupScheduling(config, log)
