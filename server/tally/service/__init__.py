"""The service: the one entry point every transport calls (see service.py)."""

from tally.service.service import TallyService

__all__ = ["TallyService"]
