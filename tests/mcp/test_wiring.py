"""How MCP is wired into the API app, in process: /mcp is a route of the app (answering a 503 in
the one error shape until the app starts), and building the MCP server leaves the process's
logging as it was."""

from __future__ import annotations

import logging

from tests.support.clients import SyncASGIClient
from tests.support.paths import PROJECT_DIR


def test_mcp_is_a_route_of_the_app_and_needs_the_app_started():
    from tally.server import create_app
    from tally.settings import Settings

    app = create_app(Settings(project_dir=PROJECT_DIR), warm=False)
    assert "/mcp" in {getattr(r, "path", None) for r in app.routes}
    r = SyncASGIClient(app).post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "mcp_unavailable"


def test_building_the_server_leaves_logging_alone(monkeypatch):
    from tally.mcp.server import build_server
    from tally.service import TallyService
    from tally.settings import Settings

    # Built first: the service's first use of dbt imports snowplow_tracker, whose import calls
    # logging.basicConfig() (not tally's doing, and not what this test looks at).
    service = TallyService(Settings(project_dir=PROJECT_DIR))
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # a process that configured no logging
    level = root.level
    build_server(service, lambda: service.authenticate(None, transport="mcp"))
    assert root.handlers == [] and root.level == level
