"""Time grains: the one list of standard grains, from finest to coarsest, and what follows
from it (which grains a time dimension can be asked at, which column names carry a date)."""

from __future__ import annotations

GRAINS = ("day", "week", "month", "quarter", "year")

# Column-name suffixes of time columns at day grain or coarser (their values are dates).
DATE_SUFFIXES = tuple(f"__{g}" for g in GRAINS)


def grains_from(min_grain: str | None) -> tuple[str, ...]:
    """The standard grains at or coarser than a dimension's own grain."""
    if min_grain not in GRAINS:
        return GRAINS
    return GRAINS[GRAINS.index(min_grain) :]


def split_grain(name: str) -> tuple[str, str | None]:
    """'metric_time__month' -> ('metric_time', 'month'); 'customer__country' -> (..., None)."""
    base, _, suffix = name.rpartition("__")
    if base and suffix in GRAINS:
        return base, suffix
    return name, None
