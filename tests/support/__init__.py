"""Everything the tests share, imported by test modules and conftest.py files alike (no test
module imports another test module or a conftest):

* paths: ROOT, PROJECT_DIR, SEMANTIC_DIR, DBT, TALLY (the installed commands).
* shared: builds that every pytest process of one run shares (xdist workers included): one
  build under a file lock, reused read-only; the clean-up of what they leave outside the
  run's folder (PostgreSQL databases).
* builds: the session warehouse (generated raw data, `dbt build`, `dbt parse`).
* postgres: the local PostgreSQL server, `postgres_or_skip`, and the PostgreSQL build of the
  session's raw data.
* services: the service factory (settings overrides, a warehouse object, a clock), and the
  MetricFlow engine it shares between services of one manifest.
* clients: the in-process ASGI client (async, and the synchronous one of the correctness
  suite).
* warehouses: DuckDB warehouses that are slow, held until released, endless, or missing.
* clock: a fake clock for TTLs and ages.
* assertions: the one error shape, Prometheus samples.
* hand_sql: the correctness suite's reference SQL over raw.* and its strict row comparison.
* transports: the correctness suite's REST and GraphQL adapters.
* project_copies: copies of the dbt project broken on purpose, the in-process `tally` CLI.
* corpus: the corpus of dbt project shapes (tests/fixtures/corpus/), each built once per run;
  running tally from a project's folder with no options; hand SQL over a fixture's CSV.
* interrupts: stopping a running warehouse query.
* scheduling: the order and grouping of tests over pytest-xdist workers.
* waiting: `eventually(condition)`, instead of sleeping for a guessed time.
"""
