"""Rollups: saved queries with `config: cache: enabled: true`, materialised in the warehouse
(schema `tally_rollups`), versioned with the definitions and the data, refreshed per partition,
and the routing that answers a query from the smallest one that gives the same numbers."""
