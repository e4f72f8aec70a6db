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

.PHONY: setup lock demo test ui serve bench clean

setup: $(STAMP)  ## create .venv and install the project with its dev extra

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || python3 -m venv .venv
	@$(PY) -m pip install --quiet --upgrade pip > .venv/install.log 2>&1
	@# every version pinned by constraints.txt; vendor/: hydra rebuilt for antlr 4.13 (see pyproject.toml)
	@$(PY) -m pip install --find-links vendor -c constraints.txt -e ".[dev]" >> .venv/install.log 2>&1 \
	  || { tail -n 40 .venv/install.log; echo "install failed: the whole log is .venv/install.log"; exit 1; }
	@echo "installed $$($(PY) -m pip list --format=freeze 2>/dev/null | wc -l) packages at the versions pinned in constraints.txt (log: .venv/install.log)"
	@touch $(STAMP)

lock: setup  ## re-pin every installed version into constraints.txt (run after changing dependencies)
	{ echo "# Every installed version the tests passed with (make setup and CI install with -c); regenerate: make lock"; \
	  $(PY) -m pip list --format=freeze --exclude-editable | grep -v -e '^pip==' -e '^cxr-llm2clip=='; } > constraints.txt
	@echo "constraints.txt: $$(wc -l < constraints.txt) pinned versions"

demo: setup  ## run the pipeline on the embedded synthetic data (dvc repro), then every stage's headline figures
	$(BIN)/dvc repro
	$(BIN)/cxr report
	@echo
	@echo "every table with its intervals: data/eval/report.md; lineage of any output: .venv/bin/cxr lineage data/clip"
	@echo "next: make ui     (Dagster on http://127.0.0.1:3000: the asset graph, metadata, checks; materialize there)"
	@echo "      make serve  (BentoML on http://127.0.0.1:3001: /embed_text, /embed_image, /retrieve, /classify; README: Serving)"

test: setup  ## lint, then run the whole test suite (`pytest -m "not slow"` skips the end-to-end runs)
	$(BIN)/ruff check .
	$(BIN)/pytest -q

ui: setup  ## the Dagster UI on http://127.0.0.1:3000 (materialize assets there); state in .cxr/dagster
	mkdir -p $(DAGSTER_HOME) && cp orchestration/dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -m orchestration.definitions -h 127.0.0.1 -p 3000

serve: setup  ## the BentoML service on http://127.0.0.1:3001 (foreground, Ctrl-C stops it; models from `cxr package`)
	$(BIN)/bentoml serve serving.service:CXRService --host 127.0.0.1 --port 3001

bench: setup  ## benchmarks; each prints JSON
	for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:  ## remove everything the demo made: pipeline outputs, DVC's run cache, tool state (not .venv)
	find data -mindepth 1 -maxdepth 1 ! -name .gitignore -exec rm -rf {} +
	rm -rf $(CXR_HOME) .dvc/cache .dvc/tmp
	git checkout -- dvc.lock data/metrics 2>/dev/null || rm -f dvc.lock  # the committed record of the demo (lock, metrics) stays
