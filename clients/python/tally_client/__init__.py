"""tally_client: the tally metrics API from Python.

    from tally_client import Client
    table = Client("http://127.0.0.1:8080").query(
        metrics=["revenue"], group_by=["metric_time__month"], limit=12)   # a pyarrow.Table
"""

from __future__ import annotations

from tally_client.catalog import Dimension, Entity, Metric, SavedQuery
from tally_client.client import AsyncClient, Client
from tally_client.errors import TallyAPIError, TallyConnectionError
from tally_client.request import Filter, GroupBy, Query, desc

__all__ = [
    "AsyncClient",
    "Client",
    "Dimension",
    "Entity",
    "Filter",
    "GroupBy",
    "Metric",
    "Query",
    "SavedQuery",
    "TallyAPIError",
    "TallyConnectionError",
    "desc",
]
