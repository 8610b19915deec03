"""The request context of the dbt Semantic Layer's GraphQL API: the service, the caller (one
per HTTP request, authenticated when its operation starts: graphql/gate.py), the environment
check, and catalog calls made as the caller in the service's pool. Shared by the schema and
the catalog types (which resolve their fields lazily)."""

from __future__ import annotations

from typing import Any

from strawberry.types import Info

from tally.api.deps import caller_of
from tally.core.caller import Caller
from tally.errors import NotFound
from tally.service import TallyService

TRANSPORT = "dbtsl-graphql"


def service_of(info: Info) -> TallyService:
    return info.context["request"].app.state.service


def caller_in(context: dict[str, Any]) -> Caller:
    """The authenticated caller of this HTTP request (authenticated once per request, when its
    operation starts: gate.py)."""
    if "tally_caller" not in context:
        context["tally_caller"] = caller_of(context["request"], TRANSPORT)
    return context["tally_caller"]


def info_caller(info: Info) -> Caller:
    return caller_in(info.context)


def check(info: Info, environment_id: int) -> tuple[TallyService, Caller]:
    """The service and caller, once the caller is authenticated and the environment is this
    server's (any id unless TALLY_DBT_ENVIRONMENT_ID is set)."""
    svc = service_of(info)
    caller = info_caller(info)
    served = svc.settings.dbt_environment_id
    if served is not None and environment_id != served:
        raise NotFound(
            f"Environment {environment_id} is not served here (this server serves environment "
            f"{served}).",
            code="unknown_environment",
        )
    return svc, caller


async def call(info: Info, method: str, *args: Any) -> Any:
    """A blocking service call (the catalog) in the service's pool, as the caller (who sees
    only what its grant allows)."""
    svc = service_of(info)
    return await svc.run(getattr(svc, method), *args, info_caller(info))
