"""Dashboards as code: `dashboards:` YAML files in a `dashboards/` folder of the dbt project's
model paths (the demo: semantic/dashboards/*.yml). A dashboard is a title, dashboard-level
controls (a date range, a grain, dimension pickers) and tiles, each tile one metric query.

Pure: reading and checking the shape of the files, and turning each tile into the one request
model (`tile_request`) with the dashboard's default controls or chosen ones. Whether the names
exist is the catalog's business (`tally validate`'s dashboard rule compiles every tile); the
refresh engine warms `dashboard_requests(...)`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tally.core.request import QueryRequest
from tally.errors import CallerError, InvalidRequest, NotFound, suggestion_suffix
from tally.project import model_paths

TILE_TYPES = ("kpi", "line", "bar", "area", "table", "heatmap")
# Tiles drawn over time: grouped by metric_time at the tile's (or the dashboard's) grain.
TIME_TILES = ("line", "area")
GRAINS = ("hour", "day", "week", "month", "quarter", "year")
_TILE_KEYS = {"name", "type", "title", "description", "metrics", "group_by", "grain", "where",
              "order_by", "limit", "compare", "date_range", "pickers", "width", "x", "y",
              "color", "__line__"}  # fmt: skip
_DASHBOARD_KEYS = {"name", "title", "description", "controls", "tiles", "__line__"}
_CONTROL_KEYS = {"date_range", "grain", "pickers", "__line__"}


class DashboardError(CallerError):
    code = "invalid_dashboard"


def _dym(name: str, candidates: Iterable[str]) -> str:
    return suggestion_suffix(name, candidates)[0]


class _LineLoader(yaml.SafeLoader):
    """Records each mapping's line (1-based) under `__line__`, for file:line findings."""


def _mapping_with_line(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_with_line)
# Dates stay text until _date reads them: YAML's own timestamp parsing fails on 2025-13-01
# without a line to point at.
_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class Picker:
    dimension: str
    label: str | None = None
    # the tiles it filters (names); empty: every tile
    applies_to: tuple[str, ...] = ()
    line: int | None = None


@dataclass(frozen=True)
class Controls:
    start: dt.date | None = None
    end: dt.date | None = None
    grain: str = "month"
    grains: tuple[str, ...] = ("week", "month", "quarter")
    pickers: tuple[Picker, ...] = ()


@dataclass(frozen=True)
class Tile:
    name: str
    type: str
    title: str
    metrics: tuple[str, ...]
    group_by: tuple[str, ...] = ()
    grain: str | None = None
    where: tuple[Any, ...] = ()
    order_by: tuple[str, ...] = ()
    limit: int | None = None
    # kpi: also ask the period of the same length just before the range
    compare: str | None = None
    # false: the dashboard's date range does not apply (a tile over all history)
    date_range: bool = True
    description: str | None = None
    width: int = 1
    line: int | None = None


@dataclass(frozen=True)
class Dashboard:
    name: str
    title: str
    tiles: tuple[Tile, ...]
    controls: Controls = field(default_factory=Controls)
    description: str | None = None
    path: Path | None = None
    line: int | None = None

    def tile(self, name: str) -> Tile:
        for t in self.tiles:
            if t.name == name:
                return t
        raise NotFound(f"Unknown tile '{name}' in dashboard '{self.name}'."
                       f"{_dym(name, [t.name for t in self.tiles])}", code="unknown_tile")

    def to_dict(self) -> dict[str, Any]:
        """The JSON the web components read (GET /dashboards/{name}.json)."""
        c = self.controls
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "controls": {
                "start": c.start.isoformat() if c.start else None,
                "end": c.end.isoformat() if c.end else None,
                "grain": c.grain,
                "grains": list(c.grains),
                "pickers": [{"dimension": p.dimension, "label": p.label or p.dimension,
                             "applies_to": list(p.applies_to)} for p in c.pickers],
            },
            "tiles": [
                {"name": t.name, "type": t.type, "title": t.title, "description": t.description,
                 "metrics": list(t.metrics), "group_by": list(t.group_by), "grain": t.grain,
                 "where": list(t.where), "order_by": list(t.order_by), "limit": t.limit,
                 "compare": t.compare, "date_range": t.date_range, "width": t.width}
                for t in self.tiles
            ],
        }  # fmt: skip


def dashboard_dirs(project_dir: Path) -> list[Path]:
    """`dashboards/` in each of the dbt project's model paths (where dbt reads semantic YAML)."""
    return [p / "dashboards" for p in model_paths(project_dir)]


def dashboard_files(project_dir: Path) -> list[Path]:
    files: list[Path] = []
    for folder in dashboard_dirs(project_dir):
        if folder.is_dir():
            files += sorted(p for p in folder.iterdir() if p.suffix in (".yml", ".yaml"))
    return files


def load_dashboards(project_dir: Path) -> dict[str, Dashboard]:
    """Every dashboard of the project, by name. A malformed file raises DashboardError naming
    file:line; two dashboards of one name too."""
    found: dict[str, Dashboard] = {}
    for path in dashboard_files(project_dir):
        for d in read_file(path):
            if d.name in found:
                raise DashboardError(f"{path}:{d.line}: dashboard '{d.name}' is defined twice "
                                     f"(also in {found[d.name].path}).")  # fmt: skip
            found[d.name] = d
    return found


def read_file(path: Path) -> list[Dashboard]:
    try:
        data = yaml.load(path.read_text(), Loader=_LineLoader)
    except OSError as e:
        raise DashboardError(f"Cannot read {path}: {e.strerror}.") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise DashboardError(f"{where}: not valid YAML ({getattr(e, 'problem', e)}).") from None
    if data is None:
        return []
    if not isinstance(data, dict) or not isinstance(data.get("dashboards"), list):
        raise DashboardError(f"{path}: expected a top-level `dashboards:` list.")
    return [parse_dashboard(d, path) for d in data["dashboards"]]


def _fail(path: Path | None, line: int | None, message: str) -> DashboardError:
    where = f"{path}:{line}: " if path and line else (f"{path}: " if path else "")
    return DashboardError(f"{where}{message}")


def _unknown_keys(data: Mapping[str, Any], allowed: set[str], what: str,
                  path: Path | None) -> None:  # fmt: skip
    for key in data:
        if key not in allowed:
            raise _fail(path, data.get("__line__"), f"unknown key '{key}' in {what}."
                        f"{_dym(str(key), sorted(allowed - {'__line__'}))}")


def _names(value: Any, what: str, path: Path | None, line: int | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _fail(path, line, f"{what} must be a list of names.")
    return tuple(v.strip().lower() for v in value)


def _date(value: Any, what: str, path: Path | None, line: int | None) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise _fail(path, line, f"{what} must be an ISO date (YYYY-MM-DD), got "
                    f"'{value}'.") from None


def _grain(value: Any, path: Path | None, line: int | None) -> str:
    grain = str(value).strip().lower()
    if grain not in GRAINS:
        raise _fail(path, line, f"unknown grain '{value}' (grains: {', '.join(GRAINS)})."
                    f"{_dym(grain, GRAINS)}")  # fmt: skip
    return grain


def _strip(data: Any) -> Any:
    """The value without the loader's line markers (filters are passed on as written)."""
    if isinstance(data, dict):
        return {k: _strip(v) for k, v in data.items() if k != "__line__"}
    if isinstance(data, list):
        return [_strip(v) for v in data]
    return data


def parse_dashboard(data: Any, path: Path | None = None) -> Dashboard:
    if not isinstance(data, dict):
        raise _fail(path, None, "each dashboard must be a mapping with name, title and tiles.")
    line = data.get("__line__")
    _unknown_keys(data, _DASHBOARD_KEYS, "a dashboard", path)
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _fail(path, line, "a dashboard needs a `name`.")
    name = name.strip()
    tiles_data = data.get("tiles")
    if not isinstance(tiles_data, list) or not tiles_data:
        raise _fail(path, line, f"dashboard '{name}' needs a non-empty `tiles:` list.")
    tiles = tuple(_tile(t, path) for t in tiles_data)
    seen: set[str] = set()
    for t in tiles:
        if t.name in seen:
            raise _fail(path, t.line, f"tile '{t.name}' appears twice in dashboard '{name}'.")
        seen.add(t.name)
    controls = _controls(data.get("controls") or {}, path, {t.name for t in tiles})
    return Dashboard(
        name=name, title=str(data.get("title") or name), tiles=tiles, controls=controls,
        description=data.get("description"), path=path, line=line,
    )  # fmt: skip


def _controls(data: Any, path: Path | None, tile_names: set[str]) -> Controls:
    if not isinstance(data, dict):
        raise _fail(path, None, "`controls` must be a mapping.")
    _unknown_keys(data, _CONTROL_KEYS, "controls", path)
    line = data.get("__line__")
    rng = data.get("date_range") or {}
    if not isinstance(rng, dict):
        raise _fail(path, line, "`date_range` must be a mapping with start and end.")
    start = _date(rng.get("start"), "date_range.start", path, line)
    end = _date(rng.get("end"), "date_range.end", path, line)
    if start and end and start > end:
        raise _fail(path, line, f"date_range.start {start} is after its end {end}.")
    grain_data = data.get("grain") or {}
    if isinstance(grain_data, str):
        grain_data = {"default": grain_data}
    grain = _grain(grain_data.get("default", "month"), path, line)
    options = tuple(_grain(g, path, line) for g in grain_data.get("options") or (grain,))
    if grain not in options:
        options = (grain, *options)
    pickers = []
    for p in data.get("pickers") or []:
        if isinstance(p, str):
            p = {"dimension": p}
        p_line = p.get("__line__", line) if isinstance(p, dict) else line
        if not isinstance(p, dict) or not isinstance(p.get("dimension"), str):
            raise _fail(path, p_line, "a picker needs a `dimension`.")
        applies = _names(p.get("applies_to"), "applies_to", path, p_line)
        for t in applies:
            if t not in tile_names:
                raise _fail(path, p_line, f"picker applies to unknown tile '{t}'."
                            f"{_dym(t, sorted(tile_names))}")  # fmt: skip
        pickers.append(Picker(p["dimension"].strip().lower(), p.get("label"), applies, p_line))
    return Controls(start, end, grain, options, tuple(pickers))


def _tile(data: Any, path: Path | None) -> Tile:
    if not isinstance(data, dict):
        raise _fail(path, None, "each tile must be a mapping.")
    line = data.get("__line__")
    _unknown_keys(data, _TILE_KEYS, "a tile", path)
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _fail(path, line, "a tile needs a `name`.")
    kind = str(data.get("type", "")).strip().lower()
    if kind not in TILE_TYPES:
        raise _fail(path, line, f"tile '{name}': unknown type '{data.get('type')}' (types: "
                    f"{', '.join(TILE_TYPES)}).{_dym(kind, TILE_TYPES)}")
    metrics = _names(data.get("metrics"), f"tile '{name}': metrics", path, line)
    if not metrics:
        raise _fail(path, line, f"tile '{name}' needs at least one metric.")
    limit = data.get("limit")
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise _fail(path, line, f"tile '{name}': limit must be a whole number, 0 or more.")
    where = data.get("where") or []
    if isinstance(where, str | dict):
        where = [where]
    compare = data.get("compare")
    if compare not in (None, "previous_period"):
        raise _fail(path, line, f"tile '{name}': compare must be previous_period.")
    return Tile(
        name=name.strip(), type=kind, title=str(data.get("title") or name),
        metrics=metrics,
        group_by=_names(data.get("group_by"), f"tile '{name}': group_by", path, line),
        grain=_grain(data["grain"], path, line) if data.get("grain") else None,
        where=tuple(_strip(where)), order_by=_names(data.get("order_by"), "order_by", path, line),
        limit=limit, compare=compare, date_range=bool(data.get("date_range", True)),
        description=data.get("description"), width=int(data.get("width", 1)), line=line,
    )  # fmt: skip


@dataclass(frozen=True)
class Choices:
    """What a viewer chose with the dashboard's controls (None: the dashboard's default)."""

    start: dt.date | None = None
    end: dt.date | None = None
    grain: str | None = None
    # dimension -> the values picked (an empty list: no filter)
    picked: Mapping[str, Sequence[Any]] = field(default_factory=dict)


def group_by_of(tile: Tile, grain: str) -> tuple[str, ...]:
    """A bare `metric_time` gets the tile's grain, else the dashboard's; time tiles with no
    group-by are drawn by metric_time."""
    group_by = tile.group_by or (("metric_time",) if tile.type in TIME_TILES else ())
    return tuple(f"metric_time__{tile.grain or grain}" if g == "metric_time" else g
                 for g in group_by)  # fmt: skip


def tile_request(dashboard: Dashboard, tile: Tile, choices: Choices | None = None) -> QueryRequest:
    """The tile's query under the dashboard's controls: its date range (unless the tile opts
    out), its grain for a bare metric_time, and the picked values of the pickers that apply."""
    choices = choices or Choices()
    c = dashboard.controls
    grain = choices.grain or c.grain
    where = list(tile.where)
    for picker in c.pickers:
        values = choices.picked.get(picker.dimension)
        if values and (not picker.applies_to or tile.name in picker.applies_to):
            where.append({"dimension": picker.dimension, "op": "in", "values": list(values)})
    start = (choices.start or c.start) if tile.date_range else None
    end = (choices.end or c.end) if tile.date_range else None
    try:
        return QueryRequest.create(
            metrics=tile.metrics, group_by=group_by_of(tile, grain), where=where,
            order_by=tile.order_by, limit=tile.limit, start=start, end=end,
        )  # fmt: skip
    except InvalidRequest as e:
        raise DashboardError(f"tile '{tile.name}': {e.message}") from None


def previous_period(start: dt.date, end: dt.date) -> tuple[dt.date, dt.date]:
    """The period just before [start, end] (a KPI's comparison): whole months shift by their
    number of months (2025 -> 2024, a quarter -> the quarter before), any other range by its
    number of days."""
    next_day = end + dt.timedelta(days=1)
    if start.day == 1 and next_day.day == 1:
        months = (next_day.year - start.year) * 12 + next_day.month - start.month
        index = start.year * 12 + start.month - 1 - months
        return dt.date(index // 12, index % 12 + 1, 1), start - dt.timedelta(days=1)
    days = (end - start).days + 1
    return start - dt.timedelta(days=days), start - dt.timedelta(days=1)


def dashboard_requests(
    project_dir: Path, names: Iterable[str] | None = None
) -> list[tuple[str, str, QueryRequest]]:
    """(dashboard, tile, request) for every tile of every dashboard (or of `names`) under its
    default controls: what a cache warmer runs so that a dashboard's first viewer is served
    from cache. A KPI with a comparison adds its previous period's request."""
    out: list[tuple[str, str, QueryRequest]] = []
    wanted = set(names) if names is not None else None
    for d in load_dashboards(project_dir).values():
        if wanted is not None and d.name not in wanted:
            continue
        for t in d.tiles:
            request = tile_request(d, t)
            out.append((d.name, t.name, request))
            if t.compare and d.controls.start and d.controls.end and t.date_range:
                s, e = previous_period(d.controls.start, d.controls.end)
                out.append((d.name, f"{t.name}:previous",
                            tile_request(d, t, Choices(start=s, end=e))))  # fmt: skip
    return out
