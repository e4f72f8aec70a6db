# The verbs a newcomer types. Everything runs inside .venv; tool state stays in .cxr/.
PY      := .venv/bin/python
BIN     := .venv/bin
STAMP   := .venv/.installed
export PATH          := $(CURDIR)/.venv/bin:$(PATH)
export CXR_HOME      ?= $(CURDIR)/.cxr
export DAGSTER_HOME  ?= $(CXR_HOME)/dagster
export BENTOML_HOME  ?= $(CXR_HOME)/bentoml
export HF_HOME       ?= $(CXR_HOME)/hf
export HF_HUB_OFFLINE := 1
export DO_NOT_TRACK  := 1
export BENTOML_DO_NOT_TRACK := True
export DAGSTER_DISABLE_TELEMETRY := 1

.PHONY: setup demo test ui bench clean

setup: $(STAMP)  ## create .venv and install the project with its dev extra

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --find-links vendor -e ".[dev]"  # vendor/: hydra rebuilt for antlr 4.13
	touch $(STAMP)

demo: setup  ## run the pipeline on the embedded synthetic data (dvc repro), then every stage's headline figures
	$(BIN)/dvc repro
	$(BIN)/cxr report

test: setup  ## lint, then run the whole test suite (`pytest -m "not slow"` skips the end-to-end runs)
	$(BIN)/ruff check .
	$(BIN)/pytest -q

ui: setup  ## the Dagster UI on http://127.0.0.1:3000 (materialize assets there); state in .cxr/dagster
	mkdir -p $(DAGSTER_HOME) && cp orchestration/dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -m orchestration.definitions -h 127.0.0.1 -p 3000

bench: setup  ## benchmarks; each prints JSON
	for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:  ## remove pipeline outputs and tool state (not .venv)
	rm -rf data/raw data/ingested data/metrics $(CXR_HOME)
