"""Encoding a stream of record batches as it arrives: CSV, Arrow IPC stream, Parquet (one row
group per batch). Each yields the bytes written so far after every batch, so a transport can
send them on and memory stays bounded by one batch, whatever the result's size."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tally.core.encoding import neutralize_formulas


class _Sink:
    """A write-only file that hands over what was written since the last `take()`."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self.closed = False
        self._pos = 0

    def write(self, data) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        self._pos += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def take(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


def encode_stream(
    fmt: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch]
) -> Iterator[bytes]:
    """`fmt`: csv | arrow | parquet. An empty result is still a valid file (header, schema)."""
    sink = _Sink()
    out = pa.PythonFile(sink, mode="w")
    if fmt == "csv":
        writer = pacsv.CSVWriter(out, schema)
    elif fmt == "arrow":
        writer = pa.ipc.new_stream(out, schema)
    elif fmt == "parquet":
        writer = pq.ParquetWriter(out, schema)
    else:
        raise ValueError(fmt)
    try:
        for batch in batches:
            if fmt == "csv":
                writer.write_table(neutralize_formulas(pa.Table.from_batches([batch])))
            else:
                writer.write_batch(batch)
            data = sink.take()
            if data:
                yield data
    finally:
        writer.close()
    tail = sink.take()
    if tail:
        yield tail
