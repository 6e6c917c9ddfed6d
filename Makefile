# One-command entry points. `make run` starts the portal; `make test` runs every check.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
POSTGRES_TEST_URL ?= postgres://postgres@127.0.0.1:5432/byol_portal
# Test processes (pytest-xdist); each has its own test database, sandbox and Redis database,
# and for the browser journeys its own portal.
TEST_WORKERS ?= 3
BROWSER_WORKERS ?= 2

.PHONY: run test test-browser test-postgres lint format clean venv

# Running needs only the portal's and the sandbox's requirements; the test tools (pytest,
# Playwright, ruff) come in only for the targets that use them.
$(VENV)/.run-installed: requirements.txt requirements-sandbox.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-sandbox.txt
	touch $@

$(VENV)/.installed: $(VENV)/.run-installed requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

# The embedded default: SQLite, the filesystem broker, the local AWS sandbox (which takes any
# credentials), a short import delay, and quick polling so an import is seen finishing.
EMBEDDED_ENV := AWS_ACCESS_KEY_ID=sandbox AWS_SECRET_ACCESS_KEY=sandbox AWS_DEFAULT_REGION=us-east-1 \
	PORTAL_AUDIT_ANCHOR_BUCKET=byol-portal-audit-anchors PORTAL_AUDIT_ANCHOR_ENDPOINT_URL=http://127.0.0.1:5055 \
	PORTAL_POLL_SECONDS=10 PORTAL_SWEEP_SECONDS=30 PORTAL_PORT=$(PORT) PATH="$(CURDIR)/$(VENV)/bin:$$PATH"

run: $(VENV)/.run-installed
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	@echo "The portal runs on http://127.0.0.1:$(PORT)/ with a worker, beat and the local AWS sandbox (Ctrl-C stops all)"
	$(EMBEDDED_ENV) $(VENV)/bin/honcho -f Procfile start

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) -m pytest -n $(TEST_WORKERS)
	$(MAKE) test-browser

# Playwright drives Debian's Chromium (apt-get install chromium) against the portal as
# `make run` starts it; no test database, so pytest-django is switched off.
test-browser: venv
	$(PY) -m pytest browser_tests -p no:django -n $(BROWSER_WORKERS)

test-postgres: venv
	DATABASE_URL=$(POSTGRES_TEST_URL) $(PY) -m pytest -n $(TEST_WORKERS)

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
