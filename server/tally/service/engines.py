"""The warehouse engine of a dbt profile output, for a tool that needs an engine's facts
without serving it (`tally generate --target` reads its demo data target): tools and
transports reach the warehouse registry through the service layer, never directly."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tally.core.engine import EngineSpec
from tally.warehouse import registry


def engine_of_output(output: Mapping[str, Any], path: str = "auto") -> EngineSpec:
    """The engine a rendered profile output runs on (`path`: TALLY_EXECUTION_PATH's values)."""
    return registry.engine_for(output.get("type"), path)
