"""POST /api/v1/exports: a query's whole result, any size, streamed in an export format of
core/formats.py (CSV, Arrow IPC, Parquet, NDJSON...) while the warehouse produces it (parse,
call the service, encode as it goes)."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse
from pydantic import Field

from tally.api.deps import CallerDep, ServiceDep
from tally.api.models import QueryBody, to_request
from tally.api.negotiation import require_json_body
from tally.core import formats
from tally.service.exports import Export

router = APIRouter(prefix="/api/v1", tags=["query"])


class ExportBody(QueryBody):
    format: str = Field(
        formats.exports()[0].name,
        description=" | ".join(f"{f.name} ({f.summary})" for f in formats.exports()),
    )


@router.post(
    "/exports",
    summary="Export a query's whole result (no row limit), streamed",
    dependencies=[Depends(require_json_body)],
    # Not JSONResponse: a 200 is only ever one of the export formats (errors are JSON).
    response_class=StreamingResponse,
    responses={200: {"content": {f.content_type: {} for f in formats.exports()}}},
)
async def post_export(body: ExportBody, svc: ServiceDep, caller: CallerDep) -> StreamingResponse:
    fmt = formats.find(body.format, formats.exports(), what="export format")
    request = to_request(body)

    def start() -> tuple[pa.RecordBatch, Export]:
        # The first batch is fetched before answering: a query the warehouse refuses is an
        # error response with its code, not a 200 with a broken body. There always is one
        # (of no rows for an empty result): its schema is the file's columns.
        export = svc.export(request, caller)
        return next(export.batches), export

    first, export = await svc.run(start)
    rest = export.batches
    assert fmt.stream is not None  # an export format

    def body_bytes() -> Iterator[bytes]:
        def all_batches() -> Iterator[pa.RecordBatch]:
            yield first
            yield from rest

        try:
            yield from fmt.stream(first.schema, all_batches())
        finally:
            export.close()

    name = f"export{fmt.extensions[0]}"
    return StreamingResponse(
        body_bytes(), media_type=fmt.content_type,
        headers={"content-disposition": f'attachment; filename="{name}"',
                 "x-tally-rollup": getattr(export.compiled.rollup, "used", None) or ""},  # type: ignore[attr-defined]
    )
