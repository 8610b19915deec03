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
DBT_VARS = '{"as_of_date": "$(AS_OF)", "time_spine_start": "$(HISTORY_START)"}'
PROJECT     := dbt_project
WAREHOUSE   := $(PROJECT)/warehouse.duckdb
BUILD_DIR   := $(PROJECT)/.build
export DBT_SEND_ANONYMOUS_USAGE_STATS := false

.PHONY: install warehouse warehouse-postgres demo test lint clean help

help:
	@echo "make demo       install, build the warehouse, show some metrics, serve on :8080"
	@echo "make test       run the test suite (builds its own small warehouse; TEST_WORKERS=$(TEST_WORKERS))"
	@echo "make install    create .venv and install tally (editable, with dev tools)"
	@echo "make warehouse  generate raw data (SEED=$(SEED) SCALE=$(SCALE) AS_OF=$(AS_OF)), dbt build, dbt parse"
	@echo "make warehouse-postgres  the same on the profile's postgres target"
	@echo "make lint       ruff, the import-layer contract (lint-imports), sqlfluff"
	@echo "make clean      remove the venv, the warehouse and dbt's outputs"

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

# The warehouse is built in $(BUILD_DIR), with dbt's target/ beside it, and moved into place by
# renames: first the DuckDB file, then target/ (the semantic manifest). A running server never
# sees a half-built file and never blocks the build: it reads the old file until the rename,
# then its next query opens the new one (and misses the cache); the new manifest is loaded
# after the data it describes is in place. The file keeps its name: dbt and MetricFlow call
# the DuckDB catalog after it ("warehouse").
warehouse: $(STAMP)
	@rm -rf $(BUILD_DIR) && mkdir -p $(BUILD_DIR)/target
	@# keep dbt's partial parse between builds (it is keyed on the project, profile and vars)
	@cp $(PROJECT)/target/partial_parse.msgpack $(BUILD_DIR)/target/ 2>/dev/null || true
	$(BIN)/tally generate --seed $(SEED) --scale $(SCALE) --start $(HISTORY_START) --end $(AS_OF) \
	    --out $(BUILD_DIR)/warehouse.duckdb
	cd $(PROJECT) && TALLY_DUCKDB_PATH=.build/warehouse.duckdb ../$(BIN)/dbt build \
	    --profiles-dir . --target-path .build/target --vars $(DBT_VARS)
	cd $(PROJECT) && TALLY_DUCKDB_PATH=.build/warehouse.duckdb ../$(BIN)/dbt parse \
	    --profiles-dir . --target-path .build/target --vars $(DBT_VARS) --quiet
	mv -f $(BUILD_DIR)/warehouse.duckdb $(WAREHOUSE)
	@rm -rf $(PROJECT)/target.old
	@if [ -d $(PROJECT)/target ]; then mv $(PROJECT)/target $(PROJECT)/target.old; fi
	@mv $(BUILD_DIR)/target $(PROJECT)/target
	@rm -rf $(PROJECT)/target.old $(BUILD_DIR)
	@echo "warehouse ready: $(WAREHOUSE), manifest: $(PROJECT)/target/semantic_manifest.json"

# The same demo on PostgreSQL, the profile's `postgres` target (TALLY_PG_HOST, TALLY_PG_PORT,
# TALLY_PG_USER, TALLY_PG_PASSWORD, TALLY_PG_DATABASE; default 127.0.0.1:5432, database test):
# the generated raw data copied into schema raw, then dbt build and parse there. dbt's target/
# then describes the PostgreSQL build: `TALLY_TARGET=postgres .venv/bin/tally serve`.
warehouse-postgres: $(STAMP)
	$(BIN)/tally generate --target postgres --seed $(SEED) --scale $(SCALE) \
	    --start $(HISTORY_START) --end $(AS_OF)
	cd $(PROJECT) && TALLY_TARGET=postgres ../$(BIN)/dbt build --profiles-dir . --vars $(DBT_VARS)
	cd $(PROJECT) && TALLY_TARGET=postgres ../$(BIN)/dbt parse --profiles-dir . \
	    --vars $(DBT_VARS) --quiet
	@echo "PostgreSQL warehouse ready; serve it with: TALLY_TARGET=postgres $(BIN)/tally serve"

demo: warehouse
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
	@echo; echo "== serving on http://127.0.0.1:8080 (docs at /docs, GraphiQL at /graphql); Ctrl-C stops"
	$(BIN)/tally serve --host 127.0.0.1 --port 8080

# pytest-xdist workers (0: one process). The builds every test needs are made once per run and
# shared (tests/support/shared.py); tests of one heavy fixture run on one worker (loadgroup).
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check server tests bench
	$(BIN)/lint-imports --no-cache
	$(BIN)/sqlfluff lint dbt_project

clean:
	rm -rf $(VENV) $(BUILD_DIR) $(WAREHOUSE) $(WAREHOUSE).wal $(PROJECT)/target $(PROJECT)/target.old \
	       $(PROJECT)/logs \
	       $(PROJECT)/dbt_packages .pytest_cache .ruff_cache *.egg-info
