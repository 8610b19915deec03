"""POST /api/v1/exports: a query's whole result, any size, streamed as CSV, Arrow IPC or
Parquet while the warehouse produces it (parse, call the service, encode as it goes)."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse
from pydantic import Field

from tally.api.deps import CallerDep, ServiceDep
from tally.api.models import QueryBody, to_request
from tally.api.negotiation import require_json_body
from tally.core.stream_encoding import encode_stream
from tally.service.exports import FORMATS, Export, check_format

router = APIRouter(prefix="/api/v1", tags=["query"])
_EXT = {"csv": "csv", "arrow": "arrows", "parquet": "parquet"}


class ExportBody(QueryBody):
    format: str = Field("csv", description="csv | arrow (Arrow IPC stream) | parquet")


@router.post(
    "/exports",
    summary="Export a query's whole result (no row limit), streamed",
    dependencies=[Depends(require_json_body)],
    responses={200: {"content": {v: {} for v in FORMATS.values()}}},
)
async def post_export(body: ExportBody, svc: ServiceDep, caller: CallerDep) -> StreamingResponse:
    fmt = check_format(body.format)
    request = to_request(body)

    def start() -> tuple[pa.RecordBatch, Export]:
        # The first batch is fetched before answering: a query the warehouse refuses is an
        # error response with its code, not a 200 with a broken body. There always is one
        # (of no rows for an empty result): its schema is the file's columns.
        export = svc.export(request, caller)
        return next(export.batches), export

    first, export = await svc.run(start)
    rest = export.batches

    def body_bytes() -> Iterator[bytes]:
        def all_batches() -> Iterator[pa.RecordBatch]:
            yield first
            yield from rest

        try:
            yield from encode_stream(fmt, first.schema, all_batches())
        finally:
            export.close()

    name = f"export.{_EXT[fmt]}"
    return StreamingResponse(
        body_bytes(), media_type=FORMATS[fmt],
        headers={"content-disposition": f'attachment; filename="{name}"',
                 "x-tally-rollup": getattr(export.compiled.rollup, "used", None) or ""},  # type: ignore[attr-defined]
    )

