"""Dashboards as code over HTTP: their definitions (GET /api/v1/dashboards[/{name}]), the
built web components (GET /dashboards/assets/{file}) and a standalone page per dashboard
(GET /dashboards/{name}), which an iframe can show. The page itself holds no data: its
components query the API like any other client, with the token in the page's fragment
(`#token=...`: a fragment never reaches a server's logs)."""

from __future__ import annotations

import html
import mimetypes
from dataclasses import replace
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

import tally
from tally.api.deps import CallerDep, ServiceDep
from tally.core.caller import Caller
from tally.core.dashboards import Dashboard, load_dashboards, tile_request
from tally.core.request import QueryRequest
from tally.errors import NotFound, suggestion_suffix
from tally.service import TallyService

router = APIRouter(tags=["dashboards"])

BUNDLE = "tally-dashboard.js"
_SOURCE_ASSETS = Path(tally.__file__).resolve().parents[2] / "clients" / "dashboard" / "dist"


def assets_dir(svc: TallyService) -> Path:
    return (svc.settings.dashboard_assets_dir or _SOURCE_ASSETS).resolve()


def _dashboards(svc: TallyService) -> dict[str, Dashboard]:
    return load_dashboards(svc.settings.resolved_project_dir())


def _one(svc: TallyService, name: str) -> Dashboard:
    found = _dashboards(svc)
    if name not in found:
        suffix, best = suggestion_suffix(name, found)
        raise NotFound(f"Unknown dashboard '{name[:60]}'.{suffix}", code="unknown_dashboard",
                       suggestion=best)  # fmt: skip
    return found[name]


def _visible(svc: TallyService, d: Dashboard, caller: Caller) -> Dashboard:
    """The dashboard as the caller may see it: only the tiles whose every metric and
    dimension it may query (a denied metric's tile is not listed, not even by name)."""
    tiles = tuple(t for t in d.tiles if svc.may_see(tile_request(d, t), caller))
    names = {t.name for t in tiles}
    pickers = tuple(
        replace(p, applies_to=tuple(n for n in p.applies_to if n in names))
        for p in d.controls.pickers
        if svc.may_see(QueryRequest(group_by=(p.dimension,)), caller)
        and (not p.applies_to or names.intersection(p.applies_to))
    )
    if tiles == d.tiles and pickers == d.controls.pickers:
        return d
    return replace(d, tiles=tiles, controls=replace(d.controls, pickers=pickers))


def _definition(svc: TallyService, name: str, caller: Caller) -> dict[str, Any]:
    """The dashboard, with the label and number format of each metric of its tiles."""
    d = _visible(svc, _one(svc, name), caller)
    wanted = {m for t in d.tiles for m in t.metrics}
    visible = {m.name: m for m in svc.list_metrics(caller)}
    metrics = {n: {"label": visible[n].label, "format": visible[n].meta.get("format"),
                   "currency": visible[n].meta.get("currency")}
               for n in sorted(wanted) if n in visible}  # fmt: skip
    return {**d.to_dict(), "metrics": metrics}


def _listing(svc: TallyService, caller: Caller) -> list[dict[str, Any]]:
    shown = (_visible(svc, d, caller) for d in _dashboards(svc).values())
    return [{"name": d.name, "title": d.title, "description": d.description,
             "tiles": len(d.tiles)} for d in shown]  # fmt: skip


@router.get("/api/v1/dashboards", summary="List dashboards")
async def list_dashboards(svc: ServiceDep, caller: CallerDep) -> dict:
    return {"dashboards": await svc.run(_listing, svc, caller)}


@router.get("/api/v1/dashboards/{name}", summary="One dashboard: controls and tiles")
async def get_dashboard(name: str, svc: ServiceDep, caller: CallerDep) -> dict:
    return await svc.run(_definition, svc, name, caller)


@router.get("/dashboards/assets/{file:path}", include_in_schema=False)
async def asset(file: str, svc: ServiceDep) -> Response:
    folder = assets_dir(svc)
    path = (folder / file).resolve()
    if not path.is_relative_to(folder) or not path.is_file():
        hint = " Build them with `make dashboard-build`." if not folder.is_dir() else ""
        raise NotFound(f"No dashboard asset '{file[:60]}'.{hint}", code="not_found")
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if path.suffix in (".js", ".mjs"):
        media = "text/javascript"
    # Built names are stable (no content hash): revalidate rather than cache for a year.
    return Response(path.read_bytes(), media_type=media,
                    headers={"cache-control": "public, max-age=300"})  # fmt: skip


@router.get("/dashboards/{name}", include_in_schema=False, response_class=HTMLResponse)
async def page(name: str, request: Request, svc: ServiceDep) -> HTMLResponse:
    d = await svc.run(_one, svc, name)
    # A path, never the Host header: the page is the same whatever host a client named (a
    # shared cache may keep it), and its assets and API are on its own origin.
    return HTMLResponse(render_page(d, request.scope.get("root_path", "").rstrip("/")))


def render_page(d: Dashboard, base_url: str) -> str:
    title = html.escape(d.title)
    name = html.escape(d.name, quote=True)
    base = html.escape(base_url, quote=True)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body {{ margin: 0; padding: 12px; background: var(--tally-page-bg, #f6f7f9); }}</style>
<script type="module" src="{base}/dashboards/assets/{BUNDLE}"></script>
</head>
<body>
<tally-dashboard name="{name}" base-url="{base}"></tally-dashboard>
<script>
  // Runs before the deferred module defines the element. The token travels in the
  // fragment (#token=...), which browsers never send to a server.
  const board = document.querySelector("tally-dashboard");
  const useToken = () => {{
    const token = new URLSearchParams(location.hash.slice(1)).get("token");
    if (token) board.setAttribute("token", token); else board.removeAttribute("token");
  }};
  useToken();
  // A host that hands the page another token (another user) gets that user's view at once.
  addEventListener("hashchange", useToken);
</script>
<noscript>This dashboard needs JavaScript.</noscript>
</body>
</html>
"""
