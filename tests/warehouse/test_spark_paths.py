"""A Spark profile's relative warehouse folder and metastore resolve from the project folder
(where dbt runs), whatever folder tally runs from. No Spark needed."""

from __future__ import annotations

from pathlib import Path

from tally.warehouse.spark import session_paths

URL = "spark.hadoop.javax.jdo.option.ConnectionURL"


def test_relative_paths_resolve_from_the_project_folder(tmp_path: Path):
    output = {"type": "spark", "server_side_parameters": {
        "spark.sql.warehouse.dir": "spark-warehouse",
        URL: "jdbc:derby:;databaseName=spark-warehouse/metastore_db;create=true",
        "spark.master": "local[2]"}}
    params = session_paths(output, tmp_path)["server_side_parameters"]
    assert params["spark.sql.warehouse.dir"] == str(tmp_path.resolve() / "spark-warehouse")
    assert params[URL] == (f"jdbc:derby:;databaseName={tmp_path.resolve()}/spark-warehouse/"
                           "metastore_db;create=true")
    assert params["spark.master"] == "local[2]"
    assert output["server_side_parameters"]["spark.sql.warehouse.dir"] == "spark-warehouse"


def test_absolute_paths_and_outputs_without_them_are_kept(tmp_path: Path):
    absolute = {"spark.sql.warehouse.dir": "/data/wh", URL: "jdbc:derby:;databaseName=/data/m"}
    assert session_paths({"server_side_parameters": absolute}, tmp_path)[
        "server_side_parameters"] == absolute
    assert session_paths({"type": "spark"}, tmp_path)["server_side_parameters"] == {}
