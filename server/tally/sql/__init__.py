"""SQL over metrics: the PostgreSQL-dialect SQL that BI tools write, answered through the
service. `SqlSession` (session.py) is the one entry point for a connection of any transport
(the PostgreSQL wire protocol, Flight SQL): session commands, catalog introspection over an
emulated `pg_catalog` / `information_schema` (pg_catalog.py), and metric queries translated
into `QueryRequest`s (translate.py) whose results the outer layers of the statement reshape in
an in-process DuckDB that can reach nothing else (outer.py)."""
