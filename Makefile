# `make run` and `make test` work on a fresh machine: they install uv if needed, then the venv.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
VENV := .venv
PYTEST_ARGS ?=

# Runs docker-compose.yml for real where no image registry is reachable: installs the Docker
# engine and compose from Debian packages and builds a local base image (the workplace's copy of
# the tool when it is there, else the one vendored in tools/).
COMPOSE_LOCAL := $(firstword $(wildcard ../shared/tools/compose-local.sh) tools/compose-local.sh)

.PHONY: run test compose-test lint format typecheck venv clean

$(VENV)/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen
	@touch $@

venv: $(VENV)/.synced

run: venv ## the whole stack locally (sandbox mode when no real keys are configured)
	$(VENV)/bin/python -m devkit run

test: venv lint ## lint and types first (a finding fails the run), then the suite against real servers
	$(VENV)/bin/pytest $(PYTEST_ARGS)

compose-test: venv ## the compose stack for real: sandbox profile, 3 workers, end to end
	bash $(COMPOSE_LOCAL) prepare
	$(VENV)/bin/python compose/e2e.py; status=$$?; bash $(COMPOSE_LOCAL) stop-daemon; exit $$status

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .run .pytest_cache .mypy_cache .ruff_cache
