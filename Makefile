# The README's two commands: `make serve` and `make test` (extra pytest/serve arguments: make test ARGS="-k ledger").
# Both build what they need first: the virtualenv (again whenever pyproject.toml or the Python client's changes; the
# client, clients/python, is installed into it for its tests) and, once the project has a package.json (anvil for the
# Ethereum tests), node_modules.

PYTHON ?= python3
VENV := .venv
ARGS ?=

VENV_READY := $(VENV)/.installed
NODE_READY := $(if $(wildcard package.json),node_modules/.installed)

LINTED := kernel gateway billing chains scheduler paygo regtest benchmarks tests

.PHONY: serve test lint

serve: $(VENV_READY)
	$(VENV)/bin/paygo serve $(ARGS)

test: $(VENV_READY) $(NODE_READY)
	$(VENV)/bin/pytest -q $(ARGS)

# ruff over the product's packages, the stand-ins, the benchmarks and the tests; mypy over the product's packages
# (both configured in pyproject.toml) and the client library (strict, its own configuration); .ci/run runs this
# before the tests.
lint: $(VENV_READY)
	$(VENV)/bin/ruff check $(LINTED) clients/python
	$(VENV)/bin/mypy
	cd clients/python && ../../$(VENV)/bin/mypy paygo_client

$(VENV_READY): pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[test]' -e './clients/python[ethereum,dev]'
	touch $@

node_modules/.installed: package.json $(wildcard package-lock.json)
	npm install --no-audit --no-fund
	touch $@
