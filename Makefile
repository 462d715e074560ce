# The two commands: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install run test lint format migrate chromium clean

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (found %d.%d); set PYTHON=python3.11" % sys.version_info[:2])'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

migrate: install
	$(BIN)/python manage.py migrate --noinput

## run: set up and start web + worker + beat on http://127.0.0.1:$(PORT) with the demo organisation.
# The demo runs with DEBUG on (the built-in key and hosts, no HTTPS redirect) unless DEBUG is set already.
run migrate: export DEBUG ?= true
run: migrate
	$(BIN)/python manage.py load_demo --if-empty
	@echo "Lead Router: http://127.0.0.1:$(PORT)/   (admin: /admin/; Ctrl-C stops web, worker and beat)"
	$(BIN)/honcho start --procfile Procfile --port $(PORT)

# The browser tests drive Debian's Chromium (Playwright cannot download its own
# browsers here). Installed when missing and we may; otherwise say how.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v "$$CHROMIUM_PATH" >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Debian's chromium for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "The browser tests need Chromium: install it (Debian: sudo apt-get install chromium) or set CHROMIUM_PATH." >&2; \
	    exit 1; \
	  fi; }

## test: set up and run the whole suite (SQLite by default; PostgreSQL/Redis tests when DATABASE_URL points at PostgreSQL).
PYTEST_ARGS ?= -n 2
test: install chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## lint: what CI checks besides the tests.
# The checks load the settings, which need DEBUG on when no SECRET_KEY is set; lint checks code, not a deployment.
lint: export DEBUG := true
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/python manage.py spectacular --validate --fail-on-warn --file /dev/null

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var/broker var/cache var/*.sqlite3* .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
