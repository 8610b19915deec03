"""dbt-spark session paths, made absolute from the project folder."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_DERBY_PATH = re.compile(r"(databaseName=)([^;]+)")


def spark_session_paths(output: Mapping[str, Any], project_dir: Path) -> dict[str, Any]:
    """A dbt-spark output with a relative Spark warehouse folder and Derby metastore made
    absolute from the project folder, where dbt runs and reads them: tally (and `tally
    generate`) may run from anywhere and must open the same tables."""

    def absolute(path: str) -> str:
        return path if Path(path).is_absolute() else str((project_dir / path).resolve())

    params = dict(output.get("server_side_parameters") or {})
    if "spark.sql.warehouse.dir" in params:
        params["spark.sql.warehouse.dir"] = absolute(str(params["spark.sql.warehouse.dir"]))
    key = "spark.hadoop.javax.jdo.option.ConnectionURL"
    if key in params:
        params[key] = _DERBY_PATH.sub(lambda m: m[1] + absolute(m[2]), str(params[key]))
    return {**output, "server_side_parameters": params}
