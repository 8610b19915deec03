"""Which semantic manifests this tally reads: the writer's version, from the manifest itself.

dbt records, in `project_configuration.dsi_package_version`, the version of the library that
wrote the file:

* dbt 1.11 and earlier write it with dbt-semantic-interfaces (dbt 1.10 and 1.11 both write
  0.9.0);
* dbt 1.12 writes it with MetricFlow's own semantic interfaces, and records MetricFlow's
  version (0.213 and later), with the newer metric spec (simple metrics that carry their own
  aggregation, semantic models without measures).

tally reads them with the MetricFlow it is installed with (pyproject.toml pins it), which reads
both the older spec and its own. A manifest of a spec newer than that MetricFlow may hold
parts it does not know; pydantic ignores unknown fields, so it could load and answer wrongly:
tally refuses it, saying which versions it reads.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

# The newest dbt-semantic-interfaces spec MetricFlow's parser knows (0.10 added the metric
# fields MetricFlow's own interfaces carry).
_NEWEST_DSI = (0, 10)
# dsi_package_version minors from here on are MetricFlow's versions (dbt 1.12 and later).
_METRICFLOW_FROM = 100


def installed_metricflow() -> tuple[int, int, int]:
    try:
        return _parse(version("metricflow")) or (0, 0, 0)
    except PackageNotFoundError:  # pragma: no cover - tally depends on it
        return (0, 0, 0)


def writer_of(data: Any) -> tuple[str, tuple[int, int, int]] | None:
    """(who wrote the manifest, in words; its version), or None when it does not say."""
    try:
        v = data["project_configuration"]["dsi_package_version"]
        parsed = (int(v["major_version"]), int(v["minor_version"]), int(v["patch_version"]))
    except (KeyError, TypeError, ValueError):
        return None
    text = ".".join(map(str, parsed))
    if parsed[0] == 0 and parsed[1] >= _METRICFLOW_FROM:
        return f"MetricFlow {text} (dbt 1.12 or later)", parsed
    return f"dbt-semantic-interfaces {text} (dbt 1.11 or earlier)", parsed


def unsupported(data: Any) -> str | None:
    """Why this tally does not read the manifest (None: it does, or the manifest does not say
    which version wrote it and the parser decides)."""
    writer = writer_of(data)
    if writer is None:
        return None
    who, (major, minor, _) = writer
    mf = installed_metricflow()
    reads = (f"tally reads manifests of dbt-semantic-interfaces up to "
             f"{_NEWEST_DSI[0]}.{_NEWEST_DSI[1]} (dbt 1.11 and earlier) and of MetricFlow up to "
             f"{mf[0]}.{mf[1]} (dbt 1.12 with that MetricFlow)")  # fmt: skip
    if major == 0 and minor >= _METRICFLOW_FROM:
        newer = (major, minor) > mf[:2]
    else:
        newer = (major, minor) > _NEWEST_DSI
    if not newer:
        return None
    return (f"it was written by {who}, a newer semantic-layer spec than this tally's MetricFlow "
            f"{'.'.join(map(str, mf))} knows; {reads}. Install tally with a MetricFlow at least "
            f"as new, or write the manifest with a dbt version tally reads")  # fmt: skip


def _parse(text: str) -> tuple[int, int, int] | None:
    parts = text.split(".")
    try:
        numbers = [int("".join(c for c in p if c.isdigit()) or 0) for p in parts[:3]]
    except ValueError:
        return None
    numbers += [0] * (3 - len(numbers))
    return numbers[0], numbers[1], numbers[2]
