# Thin wrappers over the kedro commands. Every target runs inside the project's virtualenv.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# No usage data leaves the machine.
export KEDRO_DISABLE_TELEMETRY := 1
export DO_NOT_TRACK := 1
export MLFLOW_DISABLE_TELEMETRY := true
export TOKENIZERS_PARALLELISM := false
CONSTRAINTS := $(if $(wildcard constraints.txt),-c constraints.txt,)
KEDRO := $(BIN)/kedro
PARAMS ?=
RUN_ARGS := $(if $(PARAMS),--params "$(PARAMS)",)

.PHONY: setup validate-env data hpo hpo-resume train evaluate viz mlflow-ui test test-fast lint format clean-orphans

## setup: create .venv and install the project with its dev extras, at the pinned versions
setup: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml $(wildcard constraints.txt)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(CONSTRAINTS) -e '.[dev]'
	touch $@

## data: build the model inputs (synthetic ReDSM5 by default)
data: setup
	$(KEDRO) run --pipeline data_ingest $(RUN_ARGS)

## validate-env: python/torch versions, MLflow store, Optuna storage, free disk (VALIDATE_ARGS=--cuda --hf-token)
VALIDATE_ARGS ?=
validate-env: setup
	$(BIN)/python -m mental_health_hpo.validate_env $(VALIDATE_ARGS)

## hpo: run (or continue) the Optuna study; data_ingest runs first where its outputs are missing
hpo: setup validate-env
	$(KEDRO) run --pipeline hpo $(RUN_ARGS)

## hpo-resume: continue the same study after a crash or a kill (same name = same study)
hpo-resume: setup validate-env
	$(KEDRO) run --pipeline hpo $(RUN_ARGS)

## train: one training run of the base configuration (a study of a single trial)
train: setup validate-env
	$(KEDRO) run --pipeline hpo --params hpo.study.n_trials=1

## evaluate: evaluate the best trial of the latest study on the test split, once
evaluate: setup
	$(KEDRO) run --pipeline evaluate $(RUN_ARGS)

## viz: kedro-viz on http://127.0.0.1:4141
viz: setup
	$(KEDRO) viz run --host 127.0.0.1 --port 4141 --no-browser

## mlflow-ui: the kedro-mlflow UI on http://127.0.0.1:5000
mlflow-ui: setup
	$(KEDRO) mlflow ui

## test: the whole suite (tiny models, tiny data); "no tests collected" is not a failure
test: setup
	$(BIN)/python -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest: no tests collected"; rc=0; fi; exit $$rc

## test-fast: skip the end-to-end tests
test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

## lint: ruff (lint + format check) and mypy, clean on src/
lint: setup
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy src

## format: apply ruff's formatting and safe fixes
format: setup
	$(BIN)/ruff check --fix src tests bench scripts
	$(BIN)/ruff format src tests bench scripts
