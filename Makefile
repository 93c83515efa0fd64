# ledgersync: the front door. `make run` and `make test` install what is missing first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
LEDGERSYNC := $(VENV)/bin/ledgersync
# PyFlink 1.20 (MSF's FLINK-1_20 runtime) runs on Python 3.11; pyenv's 3.11 is found by its
# minor version (the patch release differs between machines).
BASE_PYTHON ?= $(shell for p in python3.11 $(sort $(wildcard /root/.pyenv/versions/3.11.*/bin/python3)) python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info[:2] != (3,11))' 2>/dev/null \
	&& { command -v $$p; break; }; done)
# The Kinesis connector, its runtime dependencies and our schema class, one shaded jar (connectors/jvm).
JAR := connectors/jvm/target/ledgersync-kinesis.jar
JAR_SOURCES := connectors/jvm/pom.xml $(shell find connectors/jvm/src -type f 2>/dev/null)
PYTEST_ARGS ?=
# Test processes (pytest-xdist; 0: pytest's own single process). Most of an integration
# test's time is waiting, so two take about 40% off pytest on a 2-core machine
# (docs/development.md#tests).
PYTEST_WORKERS ?= 2
XDIST := -n $(PYTEST_WORKERS) --dist worksteal

.PHONY: help install java jar run test test-unit test-integration test-localstack services services-down services-status clean package fuzz

help:
	@echo "make run      - install, start local MariaDB + moto, put a demo stream, replicate it, show the tables"
	@echo "make run-cdc  - Aurora DSQL CDC: a simulated change stream (split records, deletes) replicated and shown"
	@echo "make run-audit - audit-log sync: MariaDB with server_audit -> CloudWatch Logs -> Kinesis -> replayed, compared"
	@echo "make test     - install, then run unit and integration tests (starts and stops the services itself)"
	@echo "make package  - build dist/ledgersync-msf.zip for Amazon Managed Service for Apache Flink"
	@echo "make bench    - benchmark ledgersync vs a per-record and a batched consumer and the stream/database ceilings (BENCH_ARGS=...)"
	@echo "make test-localstack - the tests moto cannot serve (resharding, EFO) against LocalStack, in a private network namespace"
	@echo "make fuzz     - coverage-guided fuzzing (atheris) of every decoder, FUZZ_SECONDS per target (default 60)"
	@echo "make test-unit | test-integration | services | services-down | services-status | clean"

java:
	@command -v javac >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1 || { echo "installing Java 17 and Maven (Debian openjdk-17-jdk-headless, maven)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless maven >/dev/null; }

$(JAR): $(JAR_SOURCES)
	@echo "building $(JAR) (Maven: the Flink Kinesis connector and its dependencies, shaded; the first build downloads them)"
	cd connectors/jvm && mvn -q -B package -DskipTests
	@touch $@

jar: java $(JAR)

$(VENV)/.installed: pyproject.toml
	@test -n "$(BASE_PYTHON)" || { echo "need Python 3.11 (PyFlink 1.20, as on MSF FLINK-1_20)"; exit 1; }
	@test -x $(PY) || $(BASE_PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --only-binary apache-beam -e '.[local]'
	@touch $@

install: jar $(VENV)/.installed

services: install
	$(LEDGERSYNC) services up

# Everything the project starts: the shared MariaDB and moto, and the audited source MariaDB
# of `make run-audit`.
services-down:
	@test -x $(LEDGERSYNC) && { $(LEDGERSYNC) audit-source down; $(LEDGERSYNC) services down; } || true

services-status: install
	$(LEDGERSYNC) services status

STILL_RUNNING = @echo "make: still running: MariaDB (127.0.0.1:$${LEDGERSYNC_MYSQL_PORT:-13306}) and moto (127.0.0.1:$${LEDGERSYNC_AWS_PORT:-15000}), \
	for the next run; 'make services-down' stops everything the project started"

run: services
	$(LEDGERSYNC) simulate qldb --tables 3 --documents 200 --revisions 4 --duplicates 0.05 --shuffle
	$(LEDGERSYNC) run --until-caught-up --timeout 600
	$(LEDGERSYNC) show --rows 3
	$(STILL_RUNNING)

# Aurora DSQL CDC (README "Change streams from Aurora DSQL and DynamoDB"): a simulated
# workload with split records on its own stream, replicated into database ledgersync_dsql.
DSQL_PROPERTIES := flink-conf/dsql_properties.json
.PHONY: run-cdc
run-cdc: services
	$(LEDGERSYNC) simulate dsql-cdc --properties $(DSQL_PROPERTIES) --rows 100 --duplicates 0.1 --split-bytes 600
	$(LEDGERSYNC) run --properties $(DSQL_PROPERTIES) --until-caught-up --timeout 600
	$(LEDGERSYNC) show --properties $(DSQL_PROPERTIES) --rows 3
	$(STILL_RUNNING)

# Audit-log sync (README "Audit-log sync"): a MariaDB with server_audit (127.0.0.1:13307) runs a
# workload; ship-audit puts its audit log into CloudWatch Logs (moto), whose subscription filter
# puts it on Kinesis; the job replays it on the shared MariaDB; then source and replica are compared.
AUDIT_PROPERTIES := flink-conf/audit_properties.json
.PHONY: run-audit
run-audit: services
	$(LEDGERSYNC) audit-source up
	$(LEDGERSYNC) audit-source workload --properties $(AUDIT_PROPERTIES) --reset --connections 4 --operations 200
	$(LEDGERSYNC) ship-audit --properties $(AUDIT_PROPERTIES)
	$(LEDGERSYNC) run --properties $(AUDIT_PROPERTIES) --until-caught-up --timeout 600
	$(LEDGERSYNC) audit-source compare --properties $(AUDIT_PROPERTIES)
	$(STILL_RUNNING)
	@echo "make: ... and the audited source MariaDB (127.0.0.1:$${LEDGERSYNC_AUDIT_SOURCE_PORT:-13307}), which services-down stops too"

package: install
	$(LEDGERSYNC) package

# Starts the services itself (ledgersync bench --help lists the flags); e.g. make bench BENCH_ARGS="--revisions 20000 --json bench.json"
BENCH_ARGS ?=
.PHONY: bench
bench: install
	$(LEDGERSYNC) bench $(BENCH_ARGS)

# Start the services if they are down, run pytest, and stop again only what this run started.
# The audit-log tests start the audited source MariaDB themselves; stop it too if it was down.
WITH_SERVICES = started=0; audit_up=1; $(LEDGERSYNC) audit-source status >/dev/null 2>&1 || audit_up=0; \
	$(LEDGERSYNC) services status >/dev/null 2>&1 || { $(LEDGERSYNC) services up && started=1; }; \
	trap '[ $$audit_up = 1 ] || $(LEDGERSYNC) audit-source down >/dev/null; [ $$started = 1 ] && $(LEDGERSYNC) services down' EXIT;

test: install
	@$(WITH_SERVICES) $(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

test-unit: install
	$(PY) -m pytest -m "not integration" $(XDIST) $(PYTEST_ARGS)

test-integration: install
	@$(WITH_SERVICES) $(PY) -m pytest -m integration $(XDIST) $(PYTEST_ARGS)

# The tests marked `localstack` (what moto cannot serve: resharding, EFO; plus one end-to-end
# run as a cross-check) against LocalStack instead of moto: installs LocalStack (Python 3.13
# venv under .local/localstack) if missing, then runs them with their own MariaDB in a private
# network namespace; the host's services are not used (tests/support/localstack_namespace.py).
# LOCALSTACK_TESTS="-m integration" runs the whole integration suite there (about 30 minutes).
LOCALSTACK_TESTS ?= -m localstack
test-localstack: install
	$(PY) tests/support/localstack_namespace.py -- $(PY) -m pytest $(LOCALSTACK_TESTS) $(XDIST) $(PYTEST_ARGS)

# Coverage-guided fuzzing (atheris) of every decoder that takes outside bytes; corpora and
# crash files under .local/fuzz/ (tests/fuzz/decoders.py). The unit tests run 2 s per target.
FUZZ_SECONDS ?= 60
fuzz: install
	$(PY) -m tests.fuzz.decoders --all --seconds $(FUZZ_SECONDS)

clean: services-down
	rm -rf .local build dist *.egg-info
