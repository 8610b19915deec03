"""`make test` before and after a change, on the same tests, side by side in one run.

The suite grows between the two commits, so comparing whole runs compares different work. This
script collects the node ids of the `--before` checkout's suite, finds each one in this
checkout's suite (by test name and parameters: tests move between folders), and times

1. `make test` in the before checkout (its own venv, its own pytest options), then
2. `make test TESTS=@ids` here: this checkout's `make test`, on the matched tests only,

and prints both times and their ratio (optionally also this checkout's whole `make test`).
A before-test with no counterpart here (renamed, or removed on purpose) is listed, not hidden.

    git worktree add /work/wt-before 3bbb62b && make -C /work/wt-before install
    .venv/bin/python bench/suite_time.py --before /work/wt-before [--whole]
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def collect(checkout: Path) -> list[str]:
    """Node ids of a checkout's suite, as its own venv's pytest collects them."""
    proc = subprocess.run(
        [str(checkout / ".venv/bin/python"), "-m", "pytest", "--collect-only", "-q",
         "-p", "no:cacheprovider"],
        cwd=checkout, capture_output=True, text=True)  # fmt: skip
    ids = [line.strip() for line in proc.stdout.splitlines() if "::" in line]
    if not ids:
        sys.exit(f"no tests collected in {checkout}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return ids


def match(before: list[str], after: list[str]) -> tuple[list[str], list[str]]:
    """Each before-id's counterpart here: the same `name[params]` (else the same name without
    parameters, where a parametrization was dropped), in the file of the same name when several
    files have it. Returns (matched after-ids, unmatched before-ids)."""
    by_name: dict[str, list[str]] = collections.defaultdict(list)
    for node in after:
        by_name[node.split("::", 1)[1]].append(node)
    matched, missing = [], []
    for node in before:
        path, name = node.split("::", 1)
        candidates = by_name.get(name) or by_name.get(name.split("[", 1)[0])
        if not candidates:
            missing.append(node)
            continue
        stem = Path(path).name
        same_file = [c for c in candidates if Path(c.split("::")[0]).name == stem]
        matched.append((same_file or candidates)[0])
    return sorted(set(matched)), missing


def timed(label: str, cmd: list[str], cwd: Path) -> float:
    print(f"-- {label}: {' '.join(cmd)} (in {cwd})", flush=True)
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env={**os.environ, "PYTEST_ADDOPTS": "-p no:cacheprovider"})
    elapsed = time.monotonic() - started
    tail = [line for line in proc.stdout.splitlines() if line.strip()][-1:]
    print(f"   {elapsed:,.1f} s, exit {proc.returncode}: {tail[0] if tail else ''}", flush=True)
    if proc.returncode != 0:
        sys.exit(f"{label} failed:\n{proc.stdout[-4000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True,
                        help="a checkout of the earlier commit, with its .venv installed")
    parser.add_argument("--whole", action="store_true",
                        help="also time this checkout's whole `make test`")
    args = parser.parse_args()

    before_ids, after_ids = collect(args.before), collect(HERE)
    matched, missing = match(before_ids, after_ids)
    print(f"before: {len(before_ids)} tests; here: {len(after_ids)} tests; "
          f"{len(matched)} here match {len(before_ids) - len(missing)} of the before-tests")
    for node in missing:
        print(f"   no counterpart here: {node}")

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(matched) + "\n")
    before_s = timed("before, make test", ["make", "-s", "test"], args.before)
    after_s = timed("here, make test on the matched tests",
                    ["make", "-s", "test", f"TESTS=@{f.name}"], HERE)
    print(f"\nsame tests: before {before_s:,.1f} s, here {after_s:,.1f} s: "
          f"{after_s / before_s:.2f}x the time ({(1 - after_s / before_s) * 100:+.0f}% faster)")
    if args.whole:
        whole_s = timed("here, the whole make test", ["make", "-s", "test"], HERE)
        print(f"whole suite here: {len(after_ids)} tests in {whole_s:,.1f} s")


if __name__ == "__main__":
    main()
