# Task runner. Each recipe says what it does; `make help` lists them.
# The two a newcomer needs: `make run` (set up and start the app on its embedded defaults)
# and `make test` (set up and run the test suite).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: help run test lint security format typecheck migrate lock bench scaleout clean

help:  ## list the recipes
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# A virtual environment with the locked dependencies. The stamp files re-run the install only
# when a lock file changes.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.base-installed: requirements/base.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/base.txt
	@touch $@

$(VENV)/.dev-installed: requirements/dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/dev.txt
	@touch $@ $(VENV)/.base-installed

migrate: $(VENV)/.base-installed  ## apply database migrations (SQLite file in var/ by default)
	$(BIN)/python manage.py migrate --noinput

run: migrate  ## set up and start the app: web server and Celery worker, at http://$(HOST):$(PORT)/
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py seed_demo
	@echo "Starting on http://$(HOST):$(PORT)/ (stop with Ctrl-C)"
	HOST=$(HOST) $(BIN)/honcho --procfile deploy/Procfile.dev --app-root . start --port $(PORT)

test: $(VENV)/.dev-installed  ## set up and run the whole test suite (browser tests need /usr/bin/chromium)
	$(BIN)/python manage.py makemigrations --check --dry-run --verbosity 0
	$(BIN)/python -m pytest

lint: $(VENV)/.dev-installed  ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

security: $(VENV)/.dev-installed  ## static security scan of the application's code (bandit; skips justified in pyproject.toml)
	$(BIN)/bandit -c pyproject.toml -r config elicit graph -q

format: $(VENV)/.dev-installed  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(VENV)/.dev-installed  ## mypy with django-stubs
	$(BIN)/mypy config elicit graph

lock: $(VENV)/.dev-installed  ## re-resolve the lock files from pyproject.toml
	$(BIN)/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links -o requirements/base.txt pyproject.toml
	$(BIN)/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links --extra dev -o requirements/dev.txt pyproject.toml

bench: $(VENV)/.dev-installed  ## run the benchmarks under bench/ (each prints JSON on its last line)
	@for script in bench/*.py; do case $$script in */__init__.py|*/journey.py) continue;; esac; \
		echo "== $$script"; $(BIN)/python $$script || exit 1; done

scaleout: $(VENV)/.dev-installed  ## two ASGI servers + two workers, 200 participants, exactly-once checks (needs DATABASE_URL=postgres://..., REDIS_URL)
	$(BIN)/python deploy/scaleout.py

clean:  ## remove the virtual environment and the local state in var/
	rm -rf $(VENV) var
