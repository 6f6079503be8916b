# Tapeline: `make demo` runs everything, `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO_USER ?= demo
DEMO_PASSWORD ?= tapeline-demo
WEB_PORT ?= 8000
HISTORY_DAYS ?= 10
export DEBUG ?= 1

.PHONY: demo test chaos bench services db static venv venv-test chromium lint clean

$(VENV)/.runtime: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements.txt
	@touch $@

$(VENV)/.test: requirements-test.txt requirements.txt $(VENV)/.runtime
	$(PIP) install -q -r requirements-test.txt
	@touch $@

venv: $(VENV)/.runtime
venv-test: $(VENV)/.test

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

static/vendor/lightweight-charts.standalone.production.js: node_modules/.package-lock.json
	mkdir -p static/vendor
	cp node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.js static/vendor/

static: static/vendor/lightweight-charts.standalone.production.js

# Start PostgreSQL and Redis when they are not answering (a fresh machine).
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 || { echo "Starting PostgreSQL"; \
	  $(SUDO) pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; \
	  for i in $$(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; }
	@(exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && timeout 2 head -c 5 <&3 | grep -q PONG) 2>/dev/null || { \
	  echo "Starting Redis"; $(SUDO) mkdir -p /var/lib/redis /var/log/redis; \
	  $(SUDO) redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
	    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log; sleep 1; }

db: venv services
	$(PY) manage.py ensure_database
	$(PY) manage.py migrate --noinput -v 0
	$(PY) manage.py seed_instruments

chromium:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -q && \
	  $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

demo: venv static db
	$(PY) manage.py demo_setup --username $(DEMO_USER) --password $(DEMO_PASSWORD)
	$(PY) manage.py demo_history --days $(HISTORY_DAYS)
	@echo
	@echo "  Tapeline is starting on http://127.0.0.1:$(WEB_PORT)/"
	@echo "  Log in as $(DEMO_USER) / $(DEMO_PASSWORD)   (Ctrl-C stops everything)"
	@echo
	WEB_PORT=$(WEB_PORT) $(VENV)/bin/honcho start -f Procfile

# Everything but the tests marked `chaos` (the chaos suite's long variants and
# the 30x scenarios another test already covers; see tests/chaos/test_faults.py).
# `static` runs `npm ci`, which also installs the TimescaleDB engine the suite
# starts (tests/timescale); TIMESCALE_ENGINE=require fails those tests, rather
# than skipping them, should it be missing.
test: venv-test static services chromium
	TIMESCALE_ENGINE=require $(PY) -m pytest --create-db -m "not chaos" --durations=30

# The tests marked `chaos`: the long variants (tests/chaos/test_faults_long.py,
# the same faults on the wall clock, longer outages and loads) and the 30x
# scenarios `make test` leaves out; about 45 minutes.
chaos: venv-test static services
	$(PY) -m pytest -m chaos tests/chaos

bench: venv-test static services
	$(PY) -m bench

# Style, formatting, and the import layers (`[tool.importlinter]` in pyproject.toml).
lint: venv-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) node_modules static/vendor staticfiles
