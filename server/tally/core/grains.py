"""Time grains and date parts: the one list of standard grains, from finest to coarsest, and what
follows from it. A project adds custom grains (`fiscal_quarter`) on its time spine; those are
known only from its manifest, so functions that read a name take them as an argument."""

from __future__ import annotations

from collections.abc import Iterable

# MetricFlow's standard grains, finest first.
STANDARD_GRAINS = (
    "nanosecond",
    "microsecond",
    "millisecond",
    "second",
    "minute",
    "hour",
    "day",
    "week",
    "month",
    "quarter",
    "year",
)
# The grains at day or coarser: the grains of a date dimension.
GRAINS = STANDARD_GRAINS[STANDARD_GRAINS.index("day") :]
SUB_DAILY_GRAINS = STANDARD_GRAINS[: STANDARD_GRAINS.index("day")]
DATE_PARTS = ("year", "quarter", "month", "day", "dow", "doy")
EXTRACT = "extract_"

# Column-name suffixes of time columns at day grain or coarser (their values are dates).
DATE_SUFFIXES = tuple(f"__{g}" for g in GRAINS)


def grains_from(min_grain: str | None, custom: Iterable[str] = ()) -> tuple[str, ...]:
    """The grains a time dimension of grain `min_grain` can be asked at: the standard grains at
    or coarser than its own, then the project's custom grains (built on days, so only for
    dimensions at day grain or finer)."""
    if min_grain not in STANDARD_GRAINS:
        min_grain = "day"
    standard = STANDARD_GRAINS[STANDARD_GRAINS.index(min_grain) :]
    if STANDARD_GRAINS.index(min_grain) <= STANDARD_GRAINS.index("day"):
        return (*standard, *custom)
    return standard


def split_grain(name: str, custom: Iterable[str] = ()) -> tuple[str, str | None]:
    """'metric_time__month' -> ('metric_time', 'month'); 'customer__country' -> (..., None)."""
    base, _, suffix = name.rpartition("__")
    if base and (suffix in STANDARD_GRAINS or suffix in tuple(custom)):
        return base, suffix
    return name, None


def split_date_part(name: str) -> tuple[str, str | None]:
    """'metric_time__extract_year' -> ('metric_time', 'year')."""
    base, _, suffix = name.rpartition("__")
    if base and suffix.startswith(EXTRACT) and suffix[len(EXTRACT) :] in DATE_PARTS:
        return base, suffix[len(EXTRACT) :]
    return name, None
