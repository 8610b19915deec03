"""`tally validate`'s dbt parse, side by side in one run: through dbt's programmatic API in this
process (what `tally validate` does) vs the same call in a child process (what it did before,
and still does for a second parse running at the same time), full and partial parses of the
demo project, interleaved so that both meet the same machine.

    .venv/bin/python bench/validate_parse.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tally.validate import parse  # noqa: E402

PROJECT = ROOT / "dbt_project"


def timed(target: Path, child: bool, seed: Path | None) -> float:
    started = time.perf_counter()
    if child:  # a parse holding the in-process slot sends this one to a child process
        with parse._in_process:
            outcome = parse.run_parse(PROJECT, PROJECT, target, seed=seed)
    else:
        outcome = parse.run_parse(PROJECT, PROJECT, target, seed=seed)
    assert outcome.success, outcome.exception
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        seed_dir = root / "seed"
        timed(seed_dir, False, None)  # dbt imported and warmed in this process, as in the CLI
        seed = seed_dir / "partial_parse.msgpack"
        times: dict[tuple[str, bool], list[float]] = {}
        for i in range(args.repeat):
            for kind, seed_for in (("full", None), ("partial", seed)):
                for child in (True, False):
                    target = root / f"{kind}-{child}-{i}"
                    times.setdefault((kind, child), []).append(timed(target, child, seed_for))
            print(f"  round {i + 1}/{args.repeat}", file=sys.stderr)
    print(f"dbt parse of {PROJECT.name}, median of {args.repeat} (seconds)")
    print(f"{'parse':<10}{'child process':>15}{'in process':>12}{'ratio':>8}")
    for kind in ("full", "partial"):
        child = statistics.median(times[(kind, True)])
        inside = statistics.median(times[(kind, False)])
        print(f"{kind:<10}{child:>15.2f}{inside:>12.2f}{child / inside:>7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
