"""The query history: a bounded, persistent record of query shapes (never result data, never
credentials): how often each was asked, when last, how long it took, how often from cache."""

from tally.history.store import HISTORY_FILE, QueryHistory, ShapeStats, request_of, shape_of

__all__ = ["HISTORY_FILE", "QueryHistory", "ShapeStats", "request_of", "shape_of"]
