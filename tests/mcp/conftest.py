"""One `tally mcp` (stdio) and one `tally serve` (HTTP, /mcp) per test module over the session's
demo warehouse, each reached through the `mcp` SDK's own client; `mcp` is either of them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.mcp_clients import McpSession, http_session, stdio_session, tally_env
from tests.support.processes import Server, start_server, stop_server


@pytest.fixture(scope="module")
def stdio(warehouse) -> Iterator[McpSession]:
    session = stdio_session(tally_env(warehouse))
    yield session
    session.close()


@pytest.fixture(scope="module")
def served(warehouse, tmp_path_factory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("mcp") / "serve.log", tally_env(warehouse),
                          flight=False)
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def http(served) -> Iterator[McpSession]:
    session = http_session(f"{served.http}/mcp")
    yield session
    session.close()


@pytest.fixture(scope="module", params=["stdio", "http"])
def mcp(request) -> McpSession:
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def small_country(raw_connection) -> str:
    """The country with the fewest valid orders (by hand SQL over raw.*): filters narrow the
    answer to few rows, months without orders included."""
    from tests.support.hand_sql import expected_rows

    cursor = raw_connection.cursor()
    try:
        rows = expected_rows(cursor, "select customer__country as c, count(*) as n "
                                     "from enriched_orders group by 1 order by n, c limit 1")
    finally:
        cursor.close()
    return rows[0]["c"]
