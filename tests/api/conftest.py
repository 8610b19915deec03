"""In-process HTTP tests: the real app over the session warehouse, through httpx's ASGI
transport (no socket). Each test gets a fresh service, so caches and counters start empty;
services share the process's MetricFlow engine (tests/support/services.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from tests.support.clients import asgi_client
from tests.support.services import ServiceFactory


@pytest.fixture
def make_app(services: ServiceFactory) -> Callable:
    """make_app(warehouse=None, *, clock=None, shared_engine=True, **settings_overrides)."""
    return services.app


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(app) as c:
        yield c
