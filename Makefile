# RadGestMat — the two commands: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
export DJANGO_SETTINGS_MODULE ?= radgestmat.settings

.PHONY: run test lint format install migrate messages bench bench-large faults clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11+ (apt-get install python3 python3-venv)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { echo "Could not create $(VENV): install python3-venv"; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

## Run the whole stack (web, worker, beat, flower) on this machine. Flower on 127.0.0.1 without a
## password (FLOWER_LOCAL_ONLY=1): nothing proxies to it here.
run: install
	@mkdir -p var
	@DEBUG=$${DEBUG:-1} bash deploy/local/ensure-redis
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py migrate --noinput
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py seed_demo
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py setup_schedule
	DEBUG=$${DEBUG:-1} FLOWER_LOCAL_ONLY=$${FLOWER_LOCAL_ONLY:-1} PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/honcho start -f Procfile web worker beat flower

## Run the whole test suite against DATABASE_URL (SQLite by default).
test: install
	@mkdir -p var test-results
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Lint: ruff (rules and formatting), the import contracts, mypy with the Django plugin. CI runs it before the tests.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	DEBUG=1 $(BIN)/mypy

## Apply ruff's fixes and formatting.
format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

messages: install
	DEBUG=1 $(BIN)/python manage.py makemessages -l en -l fr --ignore=.venv --ignore=bench && DEBUG=1 $(BIN)/python manage.py compilemessages --ignore=.venv

## Run every bench script at its quick sizes; `make bench LARGE=1` (or `make bench-large`) adds the large
## sizes of the scripts that have them (`--large`). Benches are never part of `make test`. The delivery
## bench's peers (django-celery-email, django-post-office) come from requirements-bench.txt, installed here only.
bench: install
	$(BIN)/python -m pip install --quiet -r requirements-bench.txt
	@for script in bench/*.py; do \
		grep -q '__main__' $$script || continue; \
		args=""; if [ -n "$(LARGE)" ] && grep -q -- '"--large"' $$script; then args="--large"; fi; \
		echo "== $$script $$args"; $(BIN)/python $$script $$args || exit 1; \
	done

bench-large:
	@$(MAKE) --no-print-directory bench LARGE=1

## Every fault drill (worker killed, Redis/PostgreSQL restarted, SMTP/Twilio failing, two beats, bad input).
faults: install
	$(BIN)/python bench/faults/run.py $(DRILLS)

clean:
	rm -rf $(VENV) var/*.sqlite3 test-results .pytest_cache
