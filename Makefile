# sensorflow: every command a platform engineer, CI or a newcomer runs.
# Needs only python3 (3.11+), node/npm and make on the machine; everything else is installed here, pinned.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
POLICY_VENV := policies/.venv
STACK ?= dev
STACKS := dev prod
DEVICES ?=
DAYS ?=
ROWS ?= 1000000
INPUT ?=
ARGS ?=

VENV_STAMP := $(VENV)/.installed
POLICY_STAMP := $(POLICY_VENV)/.installed
NODE_STAMP := node_modules/.installed
PACKAGE_STAMP := build/lambda/.packaged
DETECTOR_SOURCES := $(wildcard functions/detector/*.py)

.PHONY: help setup package synth check-definition demo test lint format unit policy tune bench lock clean distclean

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV_STAMP): requirements.txt requirements-dev.txt functions/detector/requirements.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	touch $@

$(POLICY_STAMP): policies/requirements.txt constraints.txt
	$(PYTHON) -m venv $(POLICY_VENV)
	$(POLICY_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r policies/requirements.txt -c constraints.txt
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The Lambda packages: the detector package (handler `detector.handler.lambda_handler`) plus its vendored
# dependencies, one per (lambdaRuntime, lambdaArchitecture) the stacks deploy, under
# build/lambda/<runtime>-<architecture> (tools/package.py: orjson is compiled, so pip fetches the wheel for
# the target). The Pulumi component zips the one for its stage.
$(PACKAGE_STAMP): $(VENV_STAMP) $(DETECTOR_SOURCES) functions/detector/requirements.txt constraints.txt tools/package.py $(addprefix Pulumi.,$(addsuffix .yaml,$(STACKS)))
	rm -rf build/lambda
	$(PY) -m tools.package $(addprefix --stack ,$(STACKS))
	touch $@

setup: $(VENV_STAMP) $(POLICY_STAMP) $(NODE_STAMP) $(PACKAGE_STAMP) ## install every pinned dependency

package: $(PACKAGE_STAMP) ## build the Lambda packages under build/lambda/<runtime>-<architecture>

synth: setup ## render dev and prod under recording mocks into build/<stage>/ (the offline preview)
	$(PY) -m tools.synth $(addprefix --stack ,$(STACKS))
	$(foreach s,$(STACKS),$(PY) -m tools.check_definition build/$(s)/definition.asl.json &&) true

check-definition: setup ## every validator and rule on a definition: make check-definition FILE=build/dev/definition.asl.json
	$(PY) -m tools.check_definition $(FILE)

demo: synth ## run the whole pipeline locally: make demo [STACK=prod DEVICES=50 DAYS=1 INPUT=readings.csv]
	$(PY) -m tools.localrun --stack $(STACK) $(if $(DEVICES),--devices $(DEVICES)) $(if $(DAYS),--days $(DAYS)) \
		$(if $(INPUT),--input $(INPUT)) $(ARGS)

lint: $(VENV_STAMP) ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV_STAMP) ## apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

unit: setup ## the pytest suite only
	$(PY) -m pytest -n 2 -q $(ARGS)

policy: setup ## the offline policy gate for one stage: make policy STACK=prod
	$(PY) -m tools.policy_gate --stack $(STACK)

test: setup lint unit ## everything CI runs: lint, the test suite, the policy gate for every stage
	$(foreach s,$(STACKS),$(PY) -m tools.policy_gate --stack $(s) &&) true

tune: $(VENV_STAMP) ## capacity and cost plan for a stage: make tune STACK=prod ROWS=100000000
	$(PY) -m tools.tune --stack $(STACK) --rows $(ROWS) $(ARGS)

bench: setup ## run the benchmarks under benchmarks/
	$(PY) -m benchmarks.run $(ARGS)

lock: ## re-resolve constraints.txt from requirements-dev.txt in a throwaway venv
	rm -rf build/lock-venv && $(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/python -m pip install --quiet -r requirements-dev.txt
	(echo "# Transitive pins for requirements-dev.txt (pip freeze of a clean install); regenerate with 'make lock'."; \
		build/lock-venv/bin/python -m pip freeze) > constraints.txt

clean: ## remove build outputs and local runs (build/, out/, caches); installed tools stay
	rm -rf build out .pytest_cache .ruff_cache .hypothesis

distclean: clean ## also remove every installed dependency (.venv, policies/.venv, node_modules)
	rm -rf $(VENV) $(POLICY_VENV) node_modules
