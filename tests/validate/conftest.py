"""Fixtures of the validate suite: the broken copies of the project (tests/support/
project_copies.py), parsed once per run."""

from __future__ import annotations

import pytest

from tests.support.project_copies import Copy, broken_copies


@pytest.fixture(scope="session")
def broken(request: pytest.FixtureRequest) -> dict[str, Copy]:
    return broken_copies(request.config)
