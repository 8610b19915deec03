"""MetricFlow's compile time for a saved query of 50+ metrics (a known pain: minutes in
dbt-labs/metricflow#1557) against tally's compiled-SQL cache for the repeat, side by side in
one run.

The demo project has about 30 metrics, so the bench first makes a bigger one:

1. copies the dbt project (and the folders its dbt_project.yml reads from outside it, like
   ../semantic) to a temporary folder, without dbt's, tally's or DuckDB's state;
2. generates extra metrics into a YAML file of the copy, from the measures the project's
   manifest has (none named here): per measure, simple metrics filtered to the top values of
   the categorical dimensions it can reach (found by asking tally, so it needs the warehouse:
   without one the filters are `is not null`), ratio metrics (a filtered share of the whole),
   derived metrics with offset_window (prior month, growth month over month and year over
   year), cumulative metrics (trailing windows, year to date) and derived ratios of two
   measures of one semantic model; plus saved queries of 10, 25, 50, --metrics and 100 of
   them (fewer if fewer exist) by TimeDimension('metric_time', 'month'), as a dbt user would
   declare them;
3. runs `dbt parse` on the copy (the venv's dbt, through tally's own parse step);
4. measures, for each saved query and for a plain query of the --metrics saved query's
   metrics by metric_time__month, with tally's own compiler:

   load      reading the semantic manifest (MetricFlow's parser and lookups)
   engine    building tally's Compiler (MetricFlow's engine) over it
   cold      the first compile, on that fresh engine (the cost of a new manifest, a restart)
   warm      compiling again with MetricFlow's own caches warm, bypassing tally's compiled-SQL
             cache (the cost of a new query shape on a long-running server)
   hit       the repeat, served from tally's compiled-SQL cache (median and p99 of --hits)

load, engine and cold are medians over --colds fresh manifests and engines per case (the
machine may be busy); a one-metric compile first pays the process's one-time costs (imports,
MetricFlow's process-wide setup), shown on its own line. The plain query's SQL is checked to
be the saved query's.
When the --metrics saved query's cold compile takes --profile-over seconds or more (or with
--profile), it is compiled once more under cProfile on a fresh engine and the top entries and
the time per package are printed.

    make warehouse
    .venv/bin/python bench/compile_many.py [--extra 90] [--metrics 60] [--hits 2000]
        [--project-dir dbt_project] [--keep DIR] [--profile]

`--keep DIR` writes the copy (with its generated YAML and dbt target) to DIR and keeps it.
tally's requests take at most 64 metrics; a saved query has no such limit, so the sizes above
64 are saved queries only.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import pstats
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tally.core.catalog import MeasureInfo, measure_infos  # noqa: E402
from tally.core.compiler import Compiler  # noqa: E402
from tally.core.engine import EngineSpec  # noqa: E402
from tally.core.request import QueryRequest  # noqa: E402
from tally.core.semantic_manifest import load_manifest  # noqa: E402
from tally.errors import TallyError  # noqa: E402
from tally.project import read_project  # noqa: E402
from tally.service import TallyService  # noqa: E402
from tally.settings import Settings  # noqa: E402

MONTH = "metric_time__month"
SIZES = (10, 25, 50, 100)
GENERATED_FILE = "bench_compile_many.yml"
OWNER = "@bench-compile-many"
# dbt's outputs, built warehouses, tally's and DuckDB's working state: the copy starts as a
# fresh checkout of the project would.
_IGNORE = shutil.ignore_patterns(
    "target", "target.old", "logs", ".build", "*.duckdb", "*.duckdb.wal", "__pycache__",
    ".tally", ".tmp",
)  # fmt: skip
_PATH_KEYS = ("model-paths", "macro-paths", "test-paths", "seed-paths", "snapshot-paths",
              "analysis-paths")  # fmt: skip
# Aggregations whose cumulative and offset forms and "a per b" ratios read naturally.
_ADDITIVE = ("sum", "count")


def log(message: str) -> None:
    print(f"  {message}", flush=True)


# The project copy -----------------------------------------------------------------------


def copy_project(project_dir: Path, dest: Path) -> Path:
    """The dbt project copied under `dest`, with every folder its dbt_project.yml reads from
    outside it (the demo's ../semantic) at the same place relative to it. Returns the copy's
    project folder."""
    project_dir = project_dir.resolve()
    raw = read_project(project_dir).raw
    outside: list[Path] = []
    for key in _PATH_KEYS:
        for rel in raw.get(key) or ():
            path = (project_dir / rel).resolve()
            if path.is_dir() and not path.is_relative_to(project_dir):
                outside.append(path)
    base = Path(_common_root([project_dir, *outside]))
    for folder in (project_dir, *dict.fromkeys(outside)):
        shutil.copytree(folder, dest / folder.relative_to(base), ignore=_IGNORE)
    return dest / project_dir.relative_to(base)


def _common_root(paths: Sequence[Path]) -> str:
    root = os.path.commonpath([str(p) for p in paths])
    # The project folder itself is the root only when nothing lies outside it: keep its name.
    return str(Path(root).parent) if root == str(paths[0]) else root


# What the project has -------------------------------------------------------------------


@dataclass(frozen=True)
class Filter:
    dimension: str  # the group-by name: customer__country
    value: Any  # None: `is not null` (no warehouse to ask for values)

    @property
    def short(self) -> str:
        return self.dimension.rsplit("__", 1)[-1]

    def sql(self) -> str:
        ref = f"{{{{ Dimension('{self.dimension}') }}}}"
        if self.value is None:
            return f"{ref} is not null"
        return f"{ref} = {_literal(self.value)}"

    def slug(self) -> str:
        value = "known" if self.value is None else _slug(str(self.value))
        return f"{self.short}_{value}"

    def words(self) -> str:
        if self.value is None:
            return f"{self.short.replace('_', ' ')} known"
        return f"{self.short.replace('_', ' ')} {self.value}"


@dataclass(frozen=True)
class MeasureSource:
    measure: MeasureInfo
    base: str  # an unfiltered simple metric over the measure (generated when there is none)
    base_exists: bool
    day_grain: bool  # its aggregation time dimension is at day grain (windows, offsets)
    filters: tuple[Filter, ...] = ()


@dataclass(frozen=True)
class Discovered:
    measures: tuple[MeasureSource, ...]
    taken: frozenset[str]  # metric and measure names the project has
    labels: frozenset[str]  # metric labels the project has (dbt wants them unique)
    usable: tuple[str, ...]  # the project's metrics that metric_time__month serves
    value_queries: int = 0
    value_errors: list[str] = field(default_factory=list)


def usable_metrics(compiler: Compiler, group_by: str = MONTH) -> list[str]:
    """The project's listed metrics (not hidden ones) that `group_by` serves, by name."""
    return sorted(
        m.name
        for m in compiler.metrics.values()
        if not m.hidden and compiler.index((m.name,)).resolve(group_by) is not None
    )


def compile_every_metric(service: TallyService, hits: int = 200) -> None:
    """One line (bench/scale.py's): the first compile of one query of every metric that
    metric_time__month serves (the saved query of a wide dashboard), on the service's engine
    as it is, vs the repeat from the compiled-SQL cache. This module's main measures more."""
    compiler = service.compiler
    usable = usable_metrics(compiler)
    try:
        timing = time_hits(compiler, QueryRequest.create(metrics=usable, group_by=[MONTH]), hits)
    except Exception as e:  # a report, not a failure
        print(f"\ncompile of {len(usable)} metrics failed: {e}")
        return
    print(f"\ncompile, {len(usable)} metrics by month: MetricFlow {_seconds(timing.first_s)}; "
          f"repeat from the compiled-SQL cache {timing.median_us:.0f} us "
          f"({timing.first_s * 1e6 / timing.median_us:,.0f}x); 50+ metrics, cold vs warm: "
          "bench/compile_many.py")  # fmt: skip


def discover(
    service: TallyService, dims_per_measure: int, values_per_dim: int, ask_values: bool
) -> Discovered:
    """Measures, their reachable categorical dimensions and those dimensions' top values (by
    the measure's own metric, asked of the warehouse through tally), from the served project."""
    compiler = service.compiler
    manifest = compiler.loaded.manifest
    measures = measure_infos(manifest)
    grains = {
        (model.name, d.name): d.type_params.time_granularity.value
        for model in manifest.semantic_models
        for d in model.dimensions
        if d.type_params is not None and d.type_params.time_granularity is not None
    }
    simple = [m for m in compiler.metrics.values() if m.type == "simple" and m.inputs]
    plain: dict[str, str] = {}  # measure -> its unfiltered metric: its namesake, or the first
    for m in simple:
        if m.filter is None and (m.name == m.inputs[0] or m.inputs[0] not in plain):
            plain[m.inputs[0]] = m.name
    by_model: dict[str, str] = {}  # a simple metric on each semantic model: its group-bys
    for m in simple:
        model = measures[m.inputs[0]].semantic_model if m.inputs[0] in measures else None
        if model:
            by_model.setdefault(model, m.name)
    taken = frozenset({*compiler.metrics, *measures})
    bases: set[str] = set()
    sources: list[MeasureSource] = []
    queries, errors = 0, []
    for i, info in enumerate(measures.values()):
        base = plain.get(info.name) or _free(f"{info.name}_total", taken | bases)
        bases.add(base)
        grain = grains.get((info.semantic_model, info.agg_time_dimension or ""), "day")
        filters: list[Filter] = []
        probe = plain.get(info.name) or by_model.get(info.semantic_model)
        if probe is not None:
            reachable = [
                d.name
                for d in compiler.index((probe,)).dimensions
                if d.type == "categorical" and len(d.entity_path) == 1
            ]
            # A different first dimension for each measure, so that all of them take part.
            dims = [reachable[(i + k) % len(reachable)]
                    for k in range(min(dims_per_measure, len(reachable)))]  # fmt: skip
            values: dict[str, list[Any]] = {}
            for dim in dims:
                values[dim] = [None]
                if not ask_values:
                    continue
                queries += 1
                try:
                    values[dim] = _top_values(service, probe, dim, values_per_dim)
                except TallyError as e:
                    errors.append(f"{probe} by {dim}: {e}")
            # The top value of each dimension first, then the second ones...
            for j in range(max(map(len, values.values()), default=0)):
                filters += [Filter(d, vs[j]) for d, vs in values.items() if j < len(vs)]
        sources.append(
            MeasureSource(info, base, info.name in plain, grain == "day", tuple(filters))
        )
    labels = frozenset(m.label.lower() for m in compiler.metrics.values())
    return Discovered(
        tuple(sources), taken, labels, tuple(usable_metrics(compiler)), queries, errors
    )


def _top_values(service: TallyService, metric: str, dim: str, n: int) -> list[Any]:
    """The `n` values of `dim` with the most `metric` (values of supported literal types)."""
    request = QueryRequest.create(metrics=[metric], group_by=[dim], order_by=[f"-{metric}"],
                                  limit=n * 2)  # fmt: skip
    column = service.query(request).table.column(dim).to_pylist()
    values = [v for v in column if isinstance(v, str | bool | int | float) and v != ""]
    return values[:n] or [None]


# Generated metrics ----------------------------------------------------------------------


@dataclass
class Generated:
    metrics: list[dict[str, Any]]  # YAML entries, dependencies (generated bases) first
    kinds: dict[str, int]  # how many of each kind
    order: list[str]  # the generated metrics (not the bases), kinds interleaved


def generate(found: Discovered, extra: int) -> Generated:
    """About `extra` new metrics (more when measures without a plain simple metric need one),
    of every kind in turn, from the discovered measures."""
    names = set(found.taken)
    labels = set(found.labels)

    def entry(name: str, label: str, description: str, kind: str, params: dict[str, Any],
              **more: Any) -> dict[str, Any] | None:  # fmt: skip
        if name in names or label.lower() in labels:
            return None
        names.add(name)
        labels.add(label.lower())
        meta = {"owner": OWNER, "tier": 3}
        return {"name": name, "label": label, "description": description, "type": kind,
                "type_params": params, **more, "meta": meta}  # fmt: skip

    bases, sources = [], []
    for s in found.measures:
        if not s.base_exists:
            made = entry(s.base, f"{_words(s.measure.name)} (all)",
                         f"The {s.measure.name} measure, unfiltered.", "simple",
                         {"measure": s.measure.name})  # fmt: skip
            if made is None:
                continue  # its name or label is the project's: leave the measure out
            bases.append(made)
        sources.append(s)
    pools: dict[str, list[Iterator[dict[str, Any] | None]]] = {
        "filtered simple": [], "ratio": [], "derived offset": [], "cumulative": [],
        "derived": [],
    }  # fmt: skip
    for s in sources:
        pools["filtered simple"].append(_filtered(s, entry))
        pools["ratio"].append(_shares(s, entry))
        if s.day_grain:
            pools["derived offset"].append(_offsets(s, entry))
            pools["cumulative"].append(_cumulative(s, entry))
    by_model: dict[str, list[MeasureSource]] = {}
    for s in sources:
        if s.measure.agg in _ADDITIVE:
            by_model.setdefault(s.measure.semantic_model, []).append(s)
    for group in by_model.values():
        pools["derived"].append(_per(group, entry))
    chosen: list[dict[str, Any]] = []
    kinds: dict[str, int] = dict.fromkeys(pools, 0)
    streams = {kind: _interleave(its) for kind, its in pools.items()}
    while len(chosen) < extra and streams:
        for kind in list(streams):
            made = next(streams[kind], StopIteration)
            if made is StopIteration:
                del streams[kind]
                continue
            chosen.append(made)
            kinds[kind] += 1
            if len(chosen) >= extra:
                break
    kinds["simple (base)"] = len(bases)
    return Generated([*bases, *chosen], kinds, [m["name"] for m in chosen])


Entry = Callable[..., "dict[str, Any] | None"]


def _filtered(s: MeasureSource, entry: Entry) -> Iterator[dict[str, Any] | None]:
    for f in s.filters:
        yield entry(
            f"{s.base}_{f.slug()}", f"{_words(s.base)}, {f.words()}",
            f"{_words(s.base)} where {f.words()}.", "simple",
            {"measure": s.measure.name}, filter=f.sql(),
        )  # fmt: skip


def _shares(s: MeasureSource, entry: Entry) -> Iterator[dict[str, Any] | None]:
    if s.measure.agg not in (*_ADDITIVE, "count_distinct"):
        return  # a filtered average over the whole average is no share
    for f in s.filters:
        part = {"name": s.base, "filter": f.sql(), "alias": f"{s.base}_where_{f.slug()}"}
        yield entry(
            f"{s.base}_share_{f.slug()}", f"{_words(s.base)} share, {f.words()}",
            f"{_words(s.base)} where {f.words()}, over all of it.", "ratio",
            {"numerator": part, "denominator": s.base},
        )  # fmt: skip


def _offsets(s: MeasureSource, entry: Entry) -> Iterator[dict[str, Any] | None]:
    b = s.base

    def lagged(window: str, alias: str) -> dict[str, str]:
        return {"name": b, "offset_window": window, "alias": alias}

    month, year = f"{b}_lag_1m", f"{b}_lag_1y"
    yield entry(f"{b}_prior_month", f"{_words(b)}, prior month", f"{b} one month earlier.",
                "derived", {"expr": month, "metrics": [lagged("1 month", month)]})  # fmt: skip
    for alias, window, words in ((month, "1 month", "month"), (year, "1 year", "year")):
        yield entry(
            f"{b}_growth_{'mom' if words == 'month' else 'yoy'}",
            f"{_words(b)} growth, {words} over {words}",
            f"({b} - {b} a {words} earlier) / {b} a {words} earlier.", "derived",
            {"expr": f"({b} - {alias}) / nullif({alias}, 0)",
             "metrics": [{"name": b}, lagged(window, alias)]},
        )  # fmt: skip


def _cumulative(s: MeasureSource, entry: Entry) -> Iterator[dict[str, Any] | None]:
    if s.measure.agg not in _ADDITIVE:
        return
    # A row for every spine day (0 when the window is empty), so that the end-of-period value
    # is the one on the period's last day.
    measure = {"name": s.measure.name, "fill_nulls_with": 0, "join_to_timespine": True}
    for suffix, words, params in (
        ("trailing_7d", "trailing 7 days", {"window": "7 days"}),
        ("ytd", "year to date", {"grain_to_date": "year"}),
        ("trailing_90d", "trailing 90 days", {"window": "90 days"}),
    ):
        yield entry(f"{s.base}_{suffix}", f"{_words(s.base)}, {words}",
                    f"{s.base}, {words} (end of period at coarser grains).", "cumulative",
                    {"measure": measure,
                     "cumulative_type_params": {**params, "period_agg": "last"}})  # fmt: skip


def _per(group: list[MeasureSource], entry: Entry) -> Iterator[dict[str, Any] | None]:
    for a in group:
        for b in group:
            if a is b:
                continue
            yield entry(f"{a.base}_per_{b.base}", f"{_words(a.base)} per {_words(b.base)}",
                        f"{a.base} / {b.base}.", "derived",
                        {"expr": f"{a.base} / nullif({b.base}, 0)",
                         "metrics": [{"name": a.base}, {"name": b.base}]})  # fmt: skip


def _interleave(
    iterators: Iterable[Iterator[dict[str, Any] | None]],
) -> Iterator[dict[str, Any]]:
    """One from each iterator in turn (so every measure takes part), skipping refusals."""
    live = list(iterators)
    while live:
        for it in list(live):
            made = next(it, StopIteration)
            if made is StopIteration:
                live.remove(it)
            elif made is not None:
                yield made


def saved_queries(ordered: Sequence[str], sizes: Iterable[int]) -> dict[int, dict[str, Any]]:
    """A saved query of the first n metrics of `ordered` for each size (capped to what there
    is), by month."""
    out: dict[int, dict[str, Any]] = {}
    for n in sorted({min(n, len(ordered)) for n in sizes if n > 0}):
        out[n] = {
            "name": f"bench_wide_n{n}",
            "label": f"Wide dashboard, {n} metrics by month",
            "description": f"{n} metrics month by month, in one query (the compile bench).",
            "query_params": {
                "metrics": list(ordered[:n]),
                "group_by": ["TimeDimension('metric_time', 'month')"],
            },
        }
    return out


# Measuring ------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    metrics: int
    load_s: float
    engine_s: float
    cold_s: float
    warm_s: float | None
    hit_us: float
    hit_p99_us: float
    error: str | None = None


@dataclass(frozen=True)
class HitTiming:
    first_s: float
    median_us: float
    p99_us: float


def time_hits(compiler: Compiler, request: QueryRequest, hits: int) -> HitTiming:
    """The first compile of `request` on this compiler, then `hits` repeats from its
    compiled-SQL cache."""
    t = time.perf_counter()
    compiler.compile(request)
    first = time.perf_counter() - t
    times = []
    for _ in range(hits):
        t = time.perf_counter()
        compiler.compile(request)
        times.append(time.perf_counter() - t)
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    return HitTiming(first, statistics.median(times) * 1e6, p99 * 1e6)


def fresh_compiler(manifest_path: Path, engine: EngineSpec) -> tuple[Compiler, float, float]:
    """What TallyService builds on first use: the manifest loaded, then the Compiler."""
    gc.collect()
    t = time.perf_counter()
    loaded = load_manifest(manifest_path)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    compiler = Compiler(loaded, engine)
    return compiler, load_s, time.perf_counter() - t


def measure(
    settings: Settings, name: str, request: QueryRequest, metrics: int, hits: int,
    colds: int, warm_budget_s: float,
) -> tuple[Case, str | None]:  # fmt: skip
    """One case: `colds` fresh engines (medians of their load, build and first compile), then
    on the last one the warm recompiles and the cache hits. Returns the case and the SQL."""
    engine = TallyService(settings).engine
    loads, builds, firsts = [], [], []
    for _ in range(max(colds, 1)):
        compiler, load_s, engine_s = fresh_compiler(settings.resolved_manifest_path(), engine)
        service = TallyService(settings, compiler=compiler)  # tally's own compiler, as served
        loads.append(load_s)
        builds.append(engine_s)
        t = time.perf_counter()
        try:
            sql = service.compiler.compile(request).sql
        except TallyError as e:
            return Case(name, metrics, load_s, engine_s, 0, None, 0, 0, error=str(e)), None
        firsts.append(time.perf_counter() - t)
    timing = time_hits(compiler, request, hits)
    # MetricFlow again, its caches warm, tally's compiled-SQL cache bypassed: up to five
    # rounds, within the budget.
    warm: list[float] = []
    while len(warm) < 5 and (not warm or sum(warm) < warm_budget_s):
        t = time.perf_counter()
        compiler._compile(request, None)
        warm.append(time.perf_counter() - t)
    median = statistics.median
    case = Case(name, metrics, median(loads), median(builds), median(firsts), median(warm),
                timing.median_us, timing.p99_us)  # fmt: skip
    return case, sql


def profile_compile(settings: Settings, request: QueryRequest, top: int = 8) -> str:
    """A fresh engine's compile of `request` under cProfile: where the time goes, as the
    functions with the most own time, the repeated work (functions called 100 times or more,
    by cumulative time: the per-node and per-metric costs) and own time per package."""
    engine = TallyService(settings).engine
    compiler, _, _ = fresh_compiler(settings.resolved_manifest_path(), engine)
    profiler = cProfile.Profile()
    profiler.enable()
    compiler.compile(request)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=io.StringIO())
    entries = [(_where(key), calls, own, cumulative)
               for key, (_, calls, own, cumulative, _) in stats.stats.items()]  # fmt: skip
    total = max(e[3] for e in entries)  # the outermost call: the compile
    lines = [f"cProfile of one cold compile: {total:.2f} s under the profiler (which inflates "
             "small, frequent calls: read the shares, not the seconds)",
             "  most own time (calls, own s, cumulative s):"]  # fmt: skip
    for where, calls, own, cumulative in sorted(entries, key=lambda e: -e[2])[:top]:
        lines.append(f"    {calls:>9,} {own:>6.2f} {cumulative:>6.2f}  {where}")
    lines.append("  repeated work, by cumulative time (called 100+ times):")
    repeated = [e for e in entries if e[1] >= 100 and not e[0].startswith(("~", "<"))]
    for where, calls, own, cumulative in sorted(repeated, key=lambda e: -e[3])[:top]:
        lines.append(f"    {calls:>9,} {own:>6.2f} {cumulative:>6.2f}  {where}  "
                     f"({cumulative / total:.0%})")  # fmt: skip
    parts = {"tally's request check": ("tally/core/resolve.py", "check_request"),
             "MetricFlow's explain": ("metricflow/engine/metricflow_engine.py", "explain")}
    shares = []
    for label, (file, func) in parts.items():
        found = [e[3] for e in entries if file in e[0] and e[0].endswith(f" {func}")]
        if found:
            shares.append(f"{label} {max(found) / total:.0%}")
    if shares:
        lines.append("  of the compile: " + ", ".join(shares))
    packages: dict[str, float] = {}
    for (path, _, _), (_, _, own, _, _) in stats.stats.items():
        packages[_package(path)] = packages.get(_package(path), 0.0) + own
    own_total = sum(packages.values())
    split = sorted(packages.items(), key=lambda kv: -kv[1])[:6]
    lines.append("  own time by package: " + ", ".join(
        f"{pkg} {own / own_total:.0%}" for pkg, own in split))  # fmt: skip
    return "\n".join(lines)


def _where(key: tuple[str, int, str]) -> str:
    path, line, func = key
    short = _short_path(path)
    return func if short.startswith(("~", "<")) else f"{short}:{line} {func}"


def _short_path(path: str) -> str:
    for marker in ("site-packages/", "/server/"):
        if marker in path:
            return path.split(marker, 1)[1]
    stdlib = re.search(r"/lib/python3[.\d]*/(.*)$", path)
    return f"stdlib/{stdlib.group(1)}" if stdlib else path


def _package(path: str) -> str:
    short = _short_path(path)
    if short.startswith(("~", "<")):
        return "builtins"
    if short == path:  # not installed, not tally's, not the standard library
        return Path(path).name
    return short.split("/", 1)[0].removesuffix(".py")


# Report ---------------------------------------------------------------------------------


def print_table(cases: Sequence[Case]) -> None:
    print(f"\n{'query':34}{'metrics':>8}{'load':>9}{'engine':>9}{'cold':>10}{'warm':>10}"
          f"{'hit':>9}{'hit p99':>9}{'cold/hit':>11}{'warm/hit':>10}")  # fmt: skip
    for c in cases:
        if c.error:
            print(f"{c.name:34}{c.metrics:>8}  failed: {c.error}")
            continue
        warm = f"{_seconds(c.warm_s):>10}" if c.warm_s is not None else f"{'-':>10}"
        warm_ratio = f"{c.warm_s * 1e6 / c.hit_us:>9,.0f}x" if c.warm_s else f"{'-':>10}"
        print(f"{c.name:34}{c.metrics:>8}{_seconds(c.load_s):>9}{_seconds(c.engine_s):>9}"
              f"{_seconds(c.cold_s):>10}{warm}{c.hit_us:>7.1f}us{c.hit_p99_us:>7.1f}us"
              f"{c.cold_s * 1e6 / c.hit_us:>10,.0f}x{warm_ratio}")  # fmt: skip


def _seconds(s: float) -> str:
    return f"{s:.2f} s" if s >= 1 else f"{s * 1000:.0f} ms"


class _PlainDumper(yaml.SafeDumper):
    """YAML without anchors and aliases (metrics share parameter dicts), as a person writes."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40] or "blank"


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _words(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _free(name: str, taken: set[str] | frozenset[str]) -> str:
    n, candidate = 2, name
    while candidate in taken:
        candidate, n = f"{name}_{n}", n + 1
    return candidate


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project-dir", type=Path, default=ROOT / "dbt_project")
    parser.add_argument("--extra", type=int, default=90, help="metrics to generate")
    parser.add_argument("--metrics", type=int, default=60,
                        help="metrics of the main saved query (and its plain query)")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)),
                        help="more saved-query sizes, for the scaling rows")
    parser.add_argument("--dims", type=int, default=2, help="dimensions to filter per measure")
    parser.add_argument("--values", type=int, default=2, help="top values per dimension")
    parser.add_argument("--hits", type=int, default=2000, help="cache hits to time per case")
    parser.add_argument("--colds", type=int, default=3,
                        help="fresh engines per case (the median cold compile is shown)")
    parser.add_argument("--warm-budget", type=float, default=10.0,
                        help="seconds to spend on warm recompiles per case (at least one)")
    parser.add_argument("--no-values", action="store_true",
                        help="do not ask the warehouse for values (filters are `is not null`)")
    parser.add_argument("--profile", action="store_true", help="always profile a cold compile")
    parser.add_argument("--profile-over", type=float, default=1.0,
                        help="profile when the main cold compile takes this many seconds")
    parser.add_argument("--keep", type=Path, help="write the project copy here and keep it")
    args = parser.parse_args(argv)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        return run(args, args.keep)
    with tempfile.TemporaryDirectory(prefix="tally-compile-many-") as tmp:
        return run(args, Path(tmp))


def run(args: argparse.Namespace, workdir: Path) -> int:
    from tally.validate.parse import run_parse

    started = time.perf_counter()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print("compile bench: MetricFlow's compile of many metrics vs tally's compiled-SQL cache "
          f"(load average {load} on {os.cpu_count()} cores)")  # fmt: skip
    source = TallyService(Settings(project_dir=args.project_dir))
    log(f"discovering measures and dimension values in {source.settings.resolved_project_dir()}")
    t = time.perf_counter()
    found = discover(source, args.dims, args.values, ask_values=not args.no_values)
    log(f"{len(found.measures)} measures, {len(found.usable)} of the project's metrics serve "
        f"{MONTH}; {found.value_queries} top-value queries in {time.perf_counter() - t:.1f} s")
    for error in found.value_errors[:3]:
        log(f"no values ({error}): filtering on `is not null`")
    made = generate(found, args.extra)
    ordered = [*made.order, *(m for m in found.usable if m not in made.order)]
    sizes = [*(int(s) for s in args.sizes.split(",") if s.strip()), args.metrics]
    queries = saved_queries(ordered, sizes)
    main_n = min(args.metrics, len(ordered))
    log(f"generated {len(made.metrics)} metrics: "
        + ", ".join(f"{n} {kind}" for kind, n in made.kinds.items() if n)
        + f"; saved queries of {', '.join(map(str, queries))} metrics")  # fmt: skip
    project = copy_project(source.settings.resolved_project_dir(), workdir / "project")
    paths = read_project(project).raw.get("model-paths") or ["models"]
    generated = project / paths[0] / GENERATED_FILE
    generated.parent.mkdir(parents=True, exist_ok=True)
    header = ("# Generated by bench/compile_many.py from the project's measures: extra metrics "
              "and wide saved queries.\n")  # fmt: skip
    generated.write_text(header + yaml.dump(
        {"metrics": made.metrics, "saved_queries": list(queries.values())},
        Dumper=_PlainDumper, sort_keys=False, width=100))  # fmt: skip
    log(f"project copy: {project} (+ {generated.relative_to(workdir)})")
    settings = Settings(project_dir=project)
    target = settings.resolved_manifest_path().parent
    outcome = run_parse(project, settings.resolved_profiles_dir(), target, progress=log)
    if not outcome.success:
        for event in outcome.events[-10:]:
            print(f"    {event.get('level')}: {event.get('msg')}", file=sys.stderr)
        print(f"dbt parse failed: {outcome.exception}", file=sys.stderr)
        return 1
    warnings = sum(1 for e in outcome.events if e.get("level") == "warn")
    if warnings:
        first_warning = next(e for e in outcome.events if e.get("level") == "warn")
        log(f"dbt warned {warnings} time(s), e.g. {first_warning.get('msg', '')[:160]}")
    engine = TallyService(settings).engine
    compiler, load_s, engine_s = fresh_compiler(settings.resolved_manifest_path(), engine)
    total = len(compiler.metrics)
    refused = [m for m in made.order if compiler.index((m,)).resolve(MONTH) is None]
    log(f"the copy has {total} metrics ({total - len(made.metrics)} of the project's, "
        f"{len(made.metrics)} generated); {len(refused)} generated ones do not serve {MONTH}"
        + (f": {', '.join(refused[:5])}" if refused else ""))  # fmt: skip
    t = time.perf_counter()
    compiler.compile(QueryRequest.create(metrics=ordered[:1], group_by=[MONTH]))
    log(f"process warm-up: manifest {_seconds(load_s)}, engine {_seconds(engine_s)}, first "
        f"one-metric compile {_seconds(time.perf_counter() - t)} (imports, one-time setup)")
    del compiler
    cases: list[Case] = []
    sqls: dict[str, str | None] = {}
    for n, saved in queries.items():
        log(f"saved query {saved['name']}, {n} metrics: {args.colds} fresh engine(s)...")
        request = QueryRequest.create(saved_query=saved["name"])
        case, sqls[saved["name"]] = measure(settings, f"saved query {saved['name']}", request,
                                            n, args.hits, args.colds, args.warm_budget)  # fmt: skip
        cases.append(case)
        log(f"  cold {_seconds(case.cold_s)}, warm {_seconds(case.warm_s or 0)}")
    main_saved = queries[main_n]["name"]
    try:
        plain = QueryRequest.create(metrics=queries[main_n]["query_params"]["metrics"],
                                    group_by=[MONTH])  # fmt: skip
    except TallyError as e:
        log(f"no plain query of {main_n} metrics: {e}")
    else:
        log(f"plain query of the same {main_n} metrics by {MONTH}: {args.colds} fresh engine(s)...")
        case, sql = measure(settings, f"plain query, {main_n} metrics", plain, main_n,
                            args.hits, args.colds, args.warm_budget)  # fmt: skip
        cases.append(case)
        same = sql is not None and sql == sqls[main_saved]
        log(f"  cold {_seconds(case.cold_s)}; the same SQL as {main_saved}: "
            f"{'yes' if same else 'no'}")  # fmt: skip
    print_table(cases)
    main_case = next((c for c in cases if c.metrics == main_n and not c.error), None)
    if main_case is None:
        return 1
    print(f"\nload: the semantic manifest read and MetricFlow's lookups built; engine: tally's "
          f"Compiler over it; cold: the first compile on that engine (load, engine, cold: "
          f"medians of {args.colds} fresh engines); warm: MetricFlow again with its caches warm "
          f"(tally's compiled-SQL cache bypassed); hit: median of {args.hits} repeats from "
          f"tally's compiled-SQL cache (p99 beside it).")  # fmt: skip
    saved_cases = [c for c in cases if c.name.startswith("saved") and not c.error]
    if len(saved_cases) >= 2:
        small, big = saved_cases[0], saved_cases[-1]
        slope = (big.cold_s - small.cold_s) / (big.metrics - small.metrics)
        print(f"cold compile from {small.metrics} to {big.metrics} metrics: "
              f"{slope * 1000:.0f} ms more per metric.")  # fmt: skip
    print(f"{main_n} metrics: MetricFlow {_seconds(main_case.cold_s)} cold, "
          f"{_seconds(main_case.warm_s or 0)} warm; the cached repeat "
          f"{main_case.hit_us:.1f} us ({main_case.cold_s * 1e6 / main_case.hit_us:,.0f}x "
          f"faster than cold).")  # fmt: skip
    if args.profile or main_case.cold_s >= args.profile_over:
        request = QueryRequest.create(saved_query=main_saved)
        print()
        print(profile_compile(settings, request))
    print(f"\n(total {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
