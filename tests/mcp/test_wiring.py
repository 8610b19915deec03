"""How MCP is wired into the API app, in process: /mcp is a route of the app, and building the
app (which builds the MCP server) leaves the process's logging as it was."""

from __future__ import annotations

import logging

from tests.support.paths import PROJECT_DIR


def test_the_app_serves_mcp_and_leaves_logging_alone(monkeypatch):
    from tally.api.app import create_app
    from tally.settings import Settings

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # a process that configured no logging
    level = root.level
    app = create_app(Settings(project_dir=PROJECT_DIR), warm=False)
    assert "/mcp" in {getattr(r, "path", None) for r in app.routes}
    assert root.handlers == [] and root.level == level
