"""Builds shared by every pytest process of one run.

Under pytest-xdist each worker is a process with session fixtures of its own. The expensive
builds (the DuckDB warehouse, its PostgreSQL copy, the broken project copies) are done once
per run all the same: the first process that needs one builds it in the run's shared folder
while holding a file lock; the others wait on the lock, then reuse the files read-only.

The shared folder is made by the controlling process (the only process without xdist) and
handed to the workers; the controller removes it at the end, after dropping the PostgreSQL
databases that the builds recorded (they live outside the folder)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import tempfile
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

_DIR = pytest.StashKey[Path]()
_WORKER_KEY = "tally_shared_dir"


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def configure(config: pytest.Config) -> None:
    """pytest_configure: the controller makes the folder; a worker reads it from its input."""
    if is_worker(config):
        config.stash[_DIR] = Path(config.workerinput[_WORKER_KEY])  # type: ignore[attr-defined]
    else:
        config.stash[_DIR] = Path(tempfile.mkdtemp(prefix="tally-tests-"))


def configure_node(node: Any) -> None:
    """pytest_configure_node (xdist, on the controller): tell the worker where the folder is."""
    node.workerinput[_WORKER_KEY] = str(node.config.stash[_DIR])


def shared_dir(config: pytest.Config) -> Path:
    return config.stash[_DIR]


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock between the processes of this run (released if a process dies)."""
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build_once(
    config: pytest.Config, name: str, build: Callable[[Path], dict[str, Any]]
) -> dict[str, Any]:
    """`build(folder)` once per run; every caller gets the JSON-able description it returned.
    A failed build fails every later caller with the first failure, instead of building
    again; a skipped one (no PostgreSQL on a developer machine) is left to each caller."""
    root = shared_dir(config)
    done, failed = root / f"{name}.json", root / f"{name}.failed"
    with locked(root / f"{name}.lock"):
        if done.exists():
            return json.loads(done.read_text())
        if failed.exists():
            pytest.fail(f"the shared build {name!r} failed earlier in this run:\n"
                        f"{failed.read_text()}")
        folder = root / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        try:
            info = build(folder)
        except pytest.skip.Exception:
            raise
        except BaseException as e:
            failed.write_text(str(e) or "".join(traceback.format_exception(e))[-6000:])
            raise
        done.write_text(json.dumps(info))
        return info


def record(config: pytest.Config, kind: str, value: str) -> None:
    """Remember something outside the folder for the controller to clean up at the end."""
    root = shared_dir(config)
    with locked(root / "records.lock"), (root / "records.jsonl").open("a") as f:
        f.write(json.dumps({"kind": kind, "value": value}) + "\n")


def recorded(config: pytest.Config, kind: str) -> list[str]:
    path = shared_dir(config) / "records.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r["value"] for r in rows if r["kind"] == kind]


def remove(config: pytest.Config) -> None:
    """pytest_unconfigure on the controller: the folder goes (workers have all stopped)."""
    if not is_worker(config) and _DIR in config.stash:
        shutil.rmtree(config.stash[_DIR], ignore_errors=True)
