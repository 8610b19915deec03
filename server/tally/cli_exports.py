"""`tally query --output FILE`: a query's whole result streamed to a file (CSV, Arrow IPC or
Parquet), with no row limit and in bounded memory, through the service's export."""

from __future__ import annotations

import sys
import time
from pathlib import Path


def export_to_file(service, request, caller, path: Path, fmt: str) -> int:
    """`tally query --output FILE`: the whole result streamed to a file, in bounded memory
    (the format from --format csv|arrow, else the file's extension), with progress."""
    from tally.core.stream_encoding import encode_stream
    from tally.service.exports import check_format

    by_ext = {".csv": "csv", ".arrow": "arrow", ".arrows": "arrow", ".parquet": "parquet"}
    chosen = fmt if fmt in ("csv", "arrow") else by_ext.get(path.suffix.lower(), "")
    if not chosen:
        print(f"error: cannot tell the format of {path}: name it .csv, .arrow or .parquet, or "
              "give --format csv|arrow", file=sys.stderr)
        return 2
    check_format(chosen)
    started = time.perf_counter()
    export = service.export(request, caller)
    rows = 0

    def counted():
        nonlocal rows
        for batch in export.batches:
            rows += batch.num_rows
            if rows // 1_000_000 != (rows - batch.num_rows) // 1_000_000:
                print(f"tally query: {rows:,} rows...", file=sys.stderr, flush=True)
            yield batch

    try:
        it = counted()
        first = next(it)  # always one, of no rows for an empty result: the file's columns
        tmp = path.with_name(path.name + ".part")
        with tmp.open("wb") as f:
            for chunk in encode_stream(chosen, first.schema, _chain(first, it)):
                f.write(chunk)
        tmp.replace(path)  # a failed export leaves no half file under the name asked for
    finally:
        export.close()
    print(f"tally query: {rows:,} rows written to {path} ({chosen}) in "
          f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


def _chain(first, rest):
    yield first
    yield from rest
