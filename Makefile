# tally: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SEED   ?= 42
SCALE  ?= 1
# The generated history, and the as-of date every relative rule uses (dbt vars of the same
# names): change both together, e.g. `make warehouse AS_OF=2026-06-30`.
HISTORY_START ?= 2022-01-01
AS_OF         ?= 2025-12-31
# Anomalies for the monitors to catch (tally.datagen.anomalies), e.g.
# `make warehouse ANOMALIES=half_day:2025-12-30,country_stops:US,stale:customers`, then
# `.venv/bin/tally monitor` exits 1 naming each one.
ANOMALIES ?=
DBT_VARS = '{"as_of_date": "$(AS_OF)", "time_spine_start": "$(HISTORY_START)"}'
PROJECT     := dbt_project
WAREHOUSE   := $(PROJECT)/warehouse.duckdb
GENERATED   := $(PROJECT)/.tally/generated
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
# Material for MkDocs prints a banner about MkDocs 2.0 on every build; the site needs neither.
export NO_MKDOCS_2_WARNING := 1
# The dbt Semantic Layer's published Python SDK, in a virtualenv of its own: its graphql-core
# pin conflicts with strawberry's. The client tests (tests/dbtsl_clients/) run it unmodified.
SDK_VENV  := .venv-sdk
SDK_STAMP := $(SDK_VENV)/.installed-stamp
SDK_SPEC  := dbt-sl-sdk[sync,async]==0.13.4
# Apache Superset (tests/bi/: a BI tool over tally's PostgreSQL wire endpoint), in a virtualenv
# of its own (its pins conflict with tally's); psycopg2 is its postgres driver. rich and
# cachetools: 6.1.0 imports them without declaring them; flask-caching: its own lockfile's pin
# (2.5 passes an argument Superset's metastore cache does not take).
SUPERSET_VENV  := .venv-superset
SUPERSET_STAMP := $(SUPERSET_VENV)/.installed-stamp
SUPERSET_SPEC  := "apache-superset==6.1.*" psycopg2-binary rich cachetools flask-caching==2.3.1

.PHONY: install sdk-venv warehouse warehouse-postgres warehouse-spark install-spark test-spark \
        demo test test-refresh test-big lint docs clean help browser jdbc dashboard-build \
        superset-venv test-bi

help:
	@echo "make demo       install, build the warehouse, show some metrics, serve on :8080"
	@echo "make test       run the test suite (builds its own small warehouse; TEST_WORKERS=$(TEST_WORKERS))"
	@echo "make test-refresh  the refresh pipeline's end-to-end tests (real server, dbt builds)"
	@echo "make install    create .venv and install tally (editable, with dev tools)"
	@echo "make sdk-venv   create .venv-sdk with the dbt Semantic Layer SDK (for its tests)"
	@echo "make superset-venv  create .venv-superset with Apache Superset (for make test-bi)"
	@echo "make test-bi    Apache Superset over tally's PostgreSQL wire endpoint (real processes)"
	@echo "make warehouse  generate raw data (SEED=$(SEED) SCALE=$(SCALE) AS_OF=$(AS_OF)), then tally build"
	@echo "make warehouse-postgres  the same on the profile's postgres target"
	@echo "make warehouse-spark     the same on the profile's spark target (TALLY_SPARK_MASTER, TALLY_SPARK_WAREHOUSE)"
	@echo "make test-spark the correctness suite on a Spark cluster (master + 2 workers; slow)"
	@echo "make lint       ruff, the import-layer contract (lint-imports), sqlfluff, the docs site (strict)"
	@echo "make docs       build the documentation site into site/ (mkdocs --strict)"
	@echo "make dashboard-build  npm ci + build the TypeScript client and dashboard components"
	@echo "make browser    install Debian's chromium for the browser tests (root; idempotent)"
	@echo "make jdbc       install Debian's pgjdbc for the JDBC client's tests (root; idempotent)"
	@echo "make clean      remove the venv, the warehouse and dbt's outputs"

install: $(STAMP) dashboard-build

$(STAMP): pyproject.toml clients/python/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]" -e clients/python
	@touch $(STAMP)

# The TypeScript client and the dashboard's web components: `npm ci` from the committed
# lockfile (once per lockfile change), then the build (tsc, esbuild), which prints the page's
# gzipped JavaScript against its 250 KB budget. tally serves clients/dashboard/dist.
NPM_STAMP := clients/node_modules/.npm-ci-stamp
DASHBOARD_JS := clients/dashboard/dist/tally-dashboard.js

dashboard-build: $(DASHBOARD_JS)

$(NPM_STAMP): clients/package-lock.json
	cd clients && npm ci --no-audit --no-fund
	@touch $(NPM_STAMP)

$(DASHBOARD_JS): $(NPM_STAMP) $(wildcard clients/js/src/*.ts clients/dashboard/src/*.ts) \
                 clients/dashboard/build.mjs
	cd clients && npm run build

# Debian's chromium for the browser tests (Playwright drives it; its own download cannot work
# here). Needs root, as CI has.
browser:
	@command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

# Debian's pgjdbc for tests/pgwire/test_jdbc.py (a Java program against tally's PostgreSQL
# endpoint; Java 17 is installed). Needs root, as CI has.
jdbc:
	@test -f /usr/share/java/postgresql.jar || \
	    (apt-get update && apt-get install -y libpostgresql-jdbc-java)

sdk-venv: $(SDK_STAMP)

$(SDK_STAMP):
	@test -x $(SDK_VENV)/bin/python || $(PYTHON) -m venv $(SDK_VENV)
	$(SDK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SDK_VENV)/bin/python -m pip install --quiet "$(SDK_SPEC)"
	@touch $(SDK_STAMP)

superset-venv: $(SUPERSET_STAMP)

$(SUPERSET_STAMP):
	@test -x $(SUPERSET_VENV)/bin/python || $(PYTHON) -m venv $(SUPERSET_VENV)
	$(SUPERSET_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SUPERSET_VENV)/bin/python -m pip install --quiet $(SUPERSET_SPEC)
	@touch $(SUPERSET_STAMP)

# `tally build` rebuilds safely while a server runs (docs/operations.md, "Rebuilding while
# serving"): dbt builds a side copy of the DuckDB file, then the file and dbt's target/ are
# swapped in, data first. Here the side copy starts from freshly generated raw data (--from).
warehouse: $(STAMP)
	@mkdir -p $(GENERATED)
	$(BIN)/tally generate --seed $(SEED) --scale $(SCALE) --start $(HISTORY_START) --end $(AS_OF) \
	    --out $(GENERATED)/warehouse.duckdb $(if $(ANOMALIES),--anomalies $(ANOMALIES))
	$(BIN)/tally build --project-dir $(PROJECT) --from $(GENERATED)/warehouse.duckdb \
	    --vars $(DBT_VARS)

# The same demo on PostgreSQL, the profile's `postgres` target (PGHOST, PGPORT,
# PGUSER, PGPASSWORD, PGDATABASE; default 127.0.0.1:5432, database test):
# the generated raw data copied into schema raw, then `tally build` (dbt builds in place there).
# dbt's target/ then describes the PostgreSQL build: `TALLY_TARGET=postgres .venv/bin/tally serve`.
warehouse-postgres: $(STAMP)
	$(BIN)/tally generate --target postgres --seed $(SEED) --scale $(SCALE) \
	    --start $(HISTORY_START) --end $(AS_OF)
	TALLY_TARGET=postgres $(BIN)/tally build --project-dir $(PROJECT) --vars $(DBT_VARS)
	@echo "PostgreSQL warehouse ready; serve it with: TALLY_TARGET=postgres $(BIN)/tally serve"

# Apache Spark (dbt-spark's session method; Java 17): heavy, so its own extra and targets.
SPARK_STAMP := $(VENV)/.spark-stamp
install-spark: $(SPARK_STAMP)

$(SPARK_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,spark]"
	@touch $(SPARK_STAMP)

# The demo on Spark: raw data into the profile's spark target, then dbt run + parse there
# (TALLY_SPARK_MASTER: a cluster's spark://host:port, default local threads).
warehouse-spark: $(SPARK_STAMP)
	$(BIN)/tally generate --target spark --seed $(SEED) --scale $(SCALE) \
	    --start $(HISTORY_START) --end $(AS_OF)
	cd $(PROJECT) && TALLY_TARGET=spark ../$(BIN)/dbt run --profiles-dir . --vars $(DBT_VARS) && \
	    TALLY_TARGET=spark ../$(BIN)/dbt parse --profiles-dir . --vars $(DBT_VARS)
	@echo "Spark warehouse ready; serve it with: TALLY_TARGET=spark $(BIN)/tally serve"

# Every glossary metric against the hand-written SQL, on a Spark master and two workers.
test-spark: $(SPARK_STAMP)
	TALLY_TEST_SPARK=1 $(BIN)/python -m pytest tests/correctness -n 0 -k spark

demo: warehouse dashboard-build
	@echo; echo "== tally list metrics"; $(BIN)/tally list metrics
	@echo; echo "== revenue and orders by year"
	$(BIN)/tally query --metrics revenue,order_count,average_order_value --group-by metric_time__year
	@echo; echo "== customer segments"
	$(BIN)/tally query --saved-query customer_segments
	@echo; echo "== revenue by country, 2025, top 5"
	$(BIN)/tally query --metrics revenue --group-by customer__country --start 2025-01-01 --end 2025-12-31 --order-by -revenue --limit 5
	@echo; echo "== cohort retention of the first cohorts, first months"
	$(BIN)/tally query --metrics retention_rate --group-by cohort__cohort_month__month,cohort__period_number --where "{{ Dimension('cohort__period_number') }} <= 3" --limit 8
	@echo; echo "== a typo gets a suggestion (exit code 2)"
	-$(BIN)/tally query --metrics revenu
	@echo; echo "== demo dashboard: http://127.0.0.1:8080/dashboards/overview"
	@echo; echo "== SQL over metrics from psql (or any PostgreSQL driver): psql \"host=127.0.0.1 port=5433 user=tally dbname=tally\""
	@echo; echo "== serving on http://127.0.0.1:8080 (docs at /docs, GraphiQL at /graphql) and PostgreSQL on 5433; Ctrl-C stops"
	TALLY_WARM_ON_START=true $(BIN)/tally serve --host 127.0.0.1 --port 8080 --pg-port 5433

# pytest-xdist workers (0: one process). The builds every test needs are made once per run and
# shared (tests/support/shared.py); tests of one heavy fixture run on one worker (loadgroup).
TEST_WORKERS ?= 2
# Which tests `make test` runs: all by default; a path, a node id or @file of ids narrows it.
TESTS ?=

# Slow on purpose (about 3 minutes): a multi-million row export through a real server, its
# peak memory measured. Not part of `make test`; CI runs it as a job of its own.
test-big: $(STAMP)
	TALLY_BIG_TESTS=1 $(BIN)/python -m pytest tests/api/rest/test_exports.py -k multi_million -n 0 -s

test: $(STAMP) $(SDK_STAMP) dashboard-build browser jdbc
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --ignore=tests/refresh \
	    --ignore=tests/bi $(TESTS)

# The refresh pipeline end to end (a real server, `tally build` and POST /api/v1/refresh with
# real dbt builds: two to three minutes on its own), kept out of `make test`'s time; .ci/run
# runs it after `make test`.
test-refresh: $(STAMP)
	$(BIN)/python -m pytest tests/refresh -n 0

# Apache Superset (.venv-superset) over tally's PostgreSQL wire endpoint: real `tally serve
# --pg-port` and Superset processes, its REST API against hand SQL, a chart drawn in headless
# Chromium (its screenshot: bench/screenshots/superset_chart.png). .ci/run runs it.
test-bi: $(STAMP) $(SUPERSET_STAMP) browser
	$(BIN)/python -m pytest tests/bi -n 0 -s

lint: $(STAMP)
	$(BIN)/ruff check server tests bench clients/python clients/dashboard/example docs
	$(BIN)/lint-imports --no-cache
	$(BIN)/sqlfluff lint dbt_project
	$(BIN)/mkdocs build --strict --quiet --site-dir site

# The documentation site (mkdocs.yml, docs/): --strict fails on a broken link or anchor. The
# settings, CLI and GraphQL references are written from the code at build time (docs/hooks.py).
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf clients/node_modules clients/js/dist clients/dashboard/dist
	rm -rf $(VENV) $(SDK_VENV) $(SUPERSET_VENV) $(PROJECT)/.tally $(WAREHOUSE) $(WAREHOUSE).wal $(PROJECT)/target \
	       $(PROJECT)/target.old \
	       $(PROJECT)/logs \
	       $(PROJECT)/dbt_packages .pytest_cache .ruff_cache *.egg-info
