# Two commands set up a fresh machine that has Python 3.11:
#   make run   the product on its embedded default (SQLite, no servers), with a demo company
#   make test  the whole test suite against PostgreSQL and Redis
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/voicedesk
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: install run test bench clean

# A line per step; pip shows what it collects and installs (the first install takes a few minutes).
$(STAMP): pyproject.toml
	@echo "==> [1/3] Python environment in $(VENV)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "==> [2/3] Updating pip"
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@echo "==> [3/3] Installing VoiceDesk and its dependencies (the first time takes a few minutes)"
	@$(BIN)/python -m pip install --disable-pip-version-check --progress-bar on -e '.[dev]'
	@touch $(STAMP)
	@echo "==> Installed."

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py seed_demo --print-login
	$(BIN)/python manage.py serve_embedded

test: $(STAMP)
	$(BIN)/ruff check --quiet .
	DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" REDIS_URL="$${REDIS_URL:-$(TEST_REDIS_URL)}" \
		$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var/static var/celery-broker
