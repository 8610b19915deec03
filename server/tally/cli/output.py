"""`tally query`'s output in a format of core/formats.py: a result on standard output, or the
whole result streamed to a file (`--output FILE`), with no row limit and in bounded memory,
through the service's export."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tally.core import formats
from tally.core.formats import Format


def print_result(result, name: str) -> int:
    """`tally query --format NAME`: the result on standard output."""
    fmt = formats.named(name)
    assert fmt is not None  # argparse allowed only the table's names
    if not fmt.answers:
        print(f"error: --format {name} writes files only: give --output FILE"
              f"{fmt.extensions[0]}", file=sys.stderr)
        return 2
    if not fmt.text and sys.stdout.isatty():
        print(f"error: --format {name} writes binary; redirect it to a file or a pipe",
              file=sys.stderr)
        return 2
    data = fmt.encode(result)
    sys.stdout.buffer.write(data)
    if fmt.text and data and not data.endswith(b"\n"):
        sys.stdout.buffer.write(b"\n")  # a shell prompt starts on its own line
    sys.stdout.flush()
    return 0


def file_format(path: Path, asked: str) -> Format | None:
    """The format of `--output FILE`: --format when it is an export format, else the file's
    extension's."""
    named = formats.named(asked)
    if named is not None and named.streams:
        return named
    by_extension = formats.by_extension(path.suffix)
    return by_extension if by_extension is not None and by_extension.streams else None


def export_to_file(service, request, caller, path: Path, asked: str) -> int:
    """`tally query --output FILE`: the whole result streamed to a file, in bounded memory
    (the format from --format, else the file's extension), with progress."""
    fmt = file_format(path, asked)
    if fmt is None or fmt.stream is None:
        streamed = formats.exports()
        known = formats.by_extension(path.suffix)
        why = (f"{known.name} is not written as a stream" if known is not None
               else f"cannot tell the format of {path}")
        print(f"error: {why}: name the file {formats.listed(formats.extensions(streamed))}, "
              f"or give --format {'|'.join(formats.names(streamed))}", file=sys.stderr)
        return 2
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
            for chunk in fmt.stream(first.schema, _chain(first, it)):
                f.write(chunk)
        tmp.replace(path)  # a failed export leaves no half file under the name asked for
    finally:
        export.close()
    print(f"tally query: {rows:,} rows written to {path} ({fmt.name}) in "
          f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


def _chain(first, rest):
    yield first
    yield from rest
