"""Apache Spark for the tests: a small standalone cluster of separate processes (a master and
two workers, started with pyspark's own `spark-class`), the session's raw data loaded into it,
and the demo project built there by `dbt run --target spark` and parsed. dbt and the raw-data
load run in subprocesses: the Derby metastore serves one JVM at a time, and the test process's
own SparkSession (tally's warehouse) is the last to open it.

Opt-in: `make test-spark` (TALLY_TEST_SPARK=1). Needs `pip install -e .[spark]` and Java 17."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.builds import BuiltWarehouse, run_dbt
from tests.support.processes import free_port

ENABLED = os.environ.get("TALLY_TEST_SPARK") == "1"


def spark_home() -> Path:
    try:
        import pyspark
    except ImportError:
        pytest.fail("make test-spark needs pyspark and dbt-spark: pip install -e '.[spark]'")
    if shutil.which("java") is None:
        pytest.fail("Spark needs Java (17) on the PATH")
    return Path(pyspark.__file__).parent


class SparkCluster:
    """A standalone master and `workers` workers (1 core, 1 GiB each) on loopback."""

    def __init__(self, root: Path, workers: int = 2) -> None:
        self.home = spark_home()
        self.root = root
        self.port = free_port()
        self.workers = workers
        self.procs: list[subprocess.Popen] = []

    @property
    def master_url(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    def _start(self, name: str, *args: str) -> None:
        log = (self.root / f"{name}.log").open("w")
        env = {**os.environ, "SPARK_HOME": str(self.home), "SPARK_LOG_DIR": str(self.root)}
        self.procs.append(subprocess.Popen(
            [str(self.home / "bin" / "spark-class"), *args], env=env, stdout=log,
            stderr=subprocess.STDOUT))

    def start(self, timeout: float = 300) -> None:
        self._start("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                    "--port", str(self.port), "--webui-port", str(free_port()))
        for i in range(self.workers):
            self._start(f"worker-{i}", "org.apache.spark.deploy.worker.Worker",
                        "--host", "127.0.0.1", "--cores", "1", "--memory", "1g",
                        "--webui-port", str(free_port()), "--work-dir",
                        str(self.root / f"work-{i}"), self.master_url)
        deadline = time.monotonic() + timeout
        master_log = self.root / "master.log"
        while master_log.read_text().count("Registering worker") < self.workers:
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                self.stop()
                pytest.fail(f"the Spark cluster did not start:\n{master_log.read_text()[-3000:]}")
            time.sleep(0.5)
        print(f"Spark cluster up at {self.master_url} with {self.workers} workers",
              file=sys.stderr)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs = []


@dataclass(frozen=True)
class BuiltSpark:
    cluster: SparkCluster
    warehouse_dir: Path
    target_dir: Path
    manifest_path: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "TALLY_TARGET": "spark",
                "TALLY_SPARK_MASTER": self.cluster.master_url,
                "TALLY_SPARK_WAREHOUSE": str(self.warehouse_dir),
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}


def build_spark(root: Path, warehouse: BuiltWarehouse) -> BuiltSpark:
    """Start the cluster, load the session's raw data, dbt run + parse on Spark."""
    cluster = SparkCluster(root)
    cluster.start()
    built = BuiltSpark(cluster, root / "warehouse", root / "target",
                       root / "target" / "semantic_manifest.json")
    env = built.env()
    t0 = time.monotonic()
    load = subprocess.run(
        [sys.executable, "-c",
         "import sys; from pathlib import Path; from tally.project import read_profile_target "
         "as r; from tally.warehouse.spark_demo import load_raw_into_spark as load; "
         "from tally.warehouse.spark import session; "
         f"p = Path(sys.argv[1]); load({str(warehouse.duckdb_path)!r}, r(p, p, 'spark'), "
         "session, print)",
         str(Path(__file__).resolve().parents[2] / "dbt_project")],
        env=env, capture_output=True, text=True, timeout=1800)
    if load.returncode != 0:
        cluster.stop()
        pytest.fail(f"loading raw data into Spark failed:\n{load.stdout[-3000:]}"
                    f"\n{load.stderr[-3000:]}")
    print(f"raw data in Spark in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    for command in ("run", "parse"):
        t0 = time.monotonic()
        result = run_dbt([command, "--log-path", str(root / "logs")], built.target_dir, env)
        if result.returncode != 0:
            cluster.stop()
            pytest.fail(f"dbt {command} on Spark failed:\n{result.stdout[-6000:]}")
        print(f"dbt {command} on Spark in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return built
