# Two entry points on a fresh machine: `make dev` (connector end to end on a local Kafka and
# registry) and `make test` (lint and the whole test suite, services included).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: dev test lint bench stack-down clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

dev: $(VENV)/.installed
	$(VENV)/bin/mms-connector dev

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check connector tests examples
	$(VENV)/bin/ruff format --check connector tests examples
	$(VENV)/bin/mypy -p connector
	MYPYPATH=examples/provider-plugin $(VENV)/bin/mypy -p mms_acme

# The build the image ships (setup.py: MMS_MYPYC=1, the translation path compiled by mypyc), for
# the unit tests to run against as well and for the benchmark to serve.
COMPILED := build/compiled
$(COMPILED)/.built: $(VENV)/.installed Makefile setup.py pyproject.toml $(shell find connector -name '*.py')
	rm -rf build  # setuptools and mypyc build in build/ too: nothing stale may reach the wheel
	MYPY_CACHE_DIR=build/mypy-cache MMS_MYPYC=1 $(PY) -m pip install -q --no-build-isolation --no-deps --target $(COMPILED) .
	touch $@

test: lint $(COMPILED)/.built
	$(PY) -m pytest
	MMS_EXPECT_COMPILED=1 MMS_SCHEMA_DIR=$(CURDIR)/schemas PYTHONPATH=$(COMPILED) \
		$(VENV)/bin/pytest -q -p no:cacheprovider --import-mode=append tests/unit

bench: $(VENV)/.installed
	$(PY) -m bench.run --mix all --duration 20

stack-down: $(VENV)/.installed
	$(VENV)/bin/mms-connector devstack down
	MMS_DEVSTACK_HOME=.devstack/test $(VENV)/bin/mms-connector devstack down

clean: stack-down
	rm -rf $(VENV) .devstack var build
