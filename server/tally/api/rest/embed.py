"""POST /api/v1/embed-tokens: a short-lived signed token for a browser (an embedded dashboard),
pinning the tenant's claims. Needs the admin scope, or a key with the embed scope (which can
mint only its own claims)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from tally.api.deps import ServiceDep, caller_of
from tally.api.errors import ERROR_RESPONSES
from tally.api.negotiation import require_json_body
from tally.core.caller import Caller

router = APIRouter(prefix="/api/v1", tags=["security"])


class EmbedTokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    claims: dict[str, Any] = Field(
        default_factory=dict,
        description="claims the token pins, read by the access policies "
        '(e.g. {"roles": ["tenant"], "countries": ["DE"]})',
    )
    metrics: list[str] | None = Field(None, description="the only metrics it may query")
    ttl_seconds: float = Field(900, ge=1, le=86400, strict=True,
                               description="lifetime in seconds, 1 to 86400 (a day)")
    scopes: list[str] | None = Field(None, description="meta and/or query (default both)")
    subject: str | None = Field(
        None,
        max_length=128,
        description="whom the token is for in your app (a user or tenant id): each subject has "
        "its own rate limit and asynchronous queries; default: one per set of pinned claims",
    )


async def _minter(request: Request) -> Caller:
    return caller_of(request, "rest")


@router.post(
    "/embed-tokens",
    summary="Mint a short-lived embed token pinning a tenant's claims",
    dependencies=[Depends(require_json_body)],
    responses=ERROR_RESPONSES,
)
async def mint(body: EmbedTokenBody, svc: ServiceDep, caller: Caller = Depends(_minter)) -> dict:
    token, expires = await svc.run(
        svc.mint_embed_token, caller, body.claims, body.metrics, body.ttl_seconds, body.scopes,
        body.subject,
    )
    return {"token": token, "token_type": "Bearer", "expires_at": expires.isoformat()}
