"""Dashboards as code (`dashboards/*.yml` in the project's model paths): every file reads, and
every tile compiles under the dashboard's controls, so a renamed metric or dimension fails CI
before it breaks a customer's page. Compiled, not run: `--skip-dw` checks them too."""

from __future__ import annotations

from tally.core.dashboards import (
    Choices,
    Dashboard,
    DashboardError,
    Tile,
    dashboard_files,
    read_file,
    tile_request,
)
from tally.errors import TallyError
from tally.validate.compile_rules import quiet_metricflow
from tally.validate.context import Context
from tally.validate.findings import Location, Severity, Stage, register_rule

DASHBOARD_VALID = register_rule(
    "dashboard_valid", Stage.TALLY, Severity.ERROR,
    "every dashboard file reads: known keys, tile types, grains, dates",
    "fix the key or value the message names (see docs/dashboards.md, \"Dashboards as code\")",
)  # fmt: skip
DASHBOARD_TILE_COMPILES = register_rule(
    "dashboard_tile_compiles", Stage.TALLY, Severity.ERROR,
    "every dashboard tile (and picker) names metrics, dimensions and grains that exist",
    "rename the tile's metric or dimension to one in `tally list metrics` / `tally list "
    "dimensions --metrics <metric>`",
)  # fmt: skip


def run_dashboard_rules(ctx: Context) -> None:
    dashboards: list[Dashboard] = []
    for path in dashboard_files(ctx.project_dir):
        if not ctx.enabled(DASHBOARD_VALID):
            break
        ctx.report.count(DASHBOARD_VALID.id)
        try:
            dashboards += read_file(path)
        except DashboardError as e:
            ctx.add(DASHBOARD_VALID, e.message, location=Location(path, _line_of(e.message)))
    if ctx.compiler is None or not ctx.enabled(DASHBOARD_TILE_COMPILES):
        return
    with quiet_metricflow():
        for d in dashboards:
            broken = set()
            for tile in d.tiles:
                ctx.report.count(DASHBOARD_TILE_COMPILES.id)
                if not _compile(ctx, d, tile, Choices(), f"tile '{tile.name}'"):
                    broken.add(tile.name)  # one root cause, one finding: no picker check
            for picker in d.controls.pickers:
                # a picked value adds the picker's filter: its dimension must reach each tile
                choices = Choices(picked={picker.dimension: ["x"]})
                for tile in d.tiles:
                    if tile.name in broken:
                        continue
                    if not picker.applies_to or tile.name in picker.applies_to:
                        _compile(ctx, d, tile, choices,
                                 f"picker '{picker.dimension}' on tile '{tile.name}'",
                                 picker.line)  # fmt: skip


def _compile(ctx: Context, d: Dashboard, tile: Tile, choices: Choices, what: str,
             line: int | None = None) -> bool:  # fmt: skip
    """Whether the tile compiles under these choices; a finding when it does not."""
    try:
        ctx.compiler.compile(tile_request(d, tile, choices), limit=1)
    except TallyError as e:
        ctx.add(DASHBOARD_TILE_COMPILES, f"dashboard '{d.name}', {what}: {e.message}",
                kind="dashboard", element=d.name,
                location=Location(d.path, line or tile.line) if d.path else None)  # fmt: skip
        return False
    return True


def _line_of(message: str) -> int | None:
    """The line of a `path:line: ...` message."""
    head = message.split(": ", 1)[0]
    tail = head.rsplit(":", 1)
    return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else None
