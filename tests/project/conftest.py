"""The corpus of dbt project shapes (tests/support/corpus.py), each built once per run."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.corpus import CorpusProject, corpus_project


@pytest.fixture(scope="session")
def corpus(request: pytest.FixtureRequest) -> Callable[[str], CorpusProject]:
    """name -> the shape, built on first use (once per run, shared read-only)."""
    return lambda name: corpus_project(request.config, name)
