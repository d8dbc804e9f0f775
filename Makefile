# Two commands for a new user: `make demo` and `make test`. Both bootstrap a fresh
# clone: a pinned uv, the locked venv (uv.lock), the JVM jars (jvm/pom.xml).
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/uv/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
JARS := .jars
JAR_STAMP := $(JARS)/.stamp
DRIVER_ARCHIVE := $(JARS)/driver-classes.jsa
KAFKA_JARS := .jars-test/kafka-broker
KAFKA_STAMP := $(KAFKA_JARS)/.stamp
LINEAGE_JARS := .jars-lineage
LINEAGE_STAMP := $(LINEAGE_JARS)/.stamp
S3_JARS := .jars-test/s3
S3_STAMP := $(S3_JARS)/.stamp
CHECKOV := $(TOOLS)/checkov/bin/checkov
# One Maven at a time: the fetches below run side by side (make -j, see `test`) and
# share one local repository, which Maven 3.8 does not lock across processes.
MVN := mkdir -p $(TOOLS) && flock $(TOOLS)/.mvn.lock mvn
# What `make test` sets up before its tests: independent downloads (the venv, four jar
# sets, checkov's venv) and the lint and type checks, run side by side. In a row they
# took 141 s on a fresh machine.
SETUP_JOBS := 4
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Python's bytecode cache stays on under make even where the environment turns it off:
# every process (each job driver, Airflow, moto, checkov) would otherwise compile its
# imports from source on every start (Great Expectations alone: 10.5 s of CPU, 5.0 s
# from bytecode). Lazily, so only what is imported is compiled (ADR 0010).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: help bootstrap checkov chromium jars demo test lint typecheck pytest bench spark-submit clean postgres-bin kafka-broker openlineage-spark s3-jars test-property test-extended test-emr mwaa-airflow mwaa-lock

help:
	@echo "make demo   run the whole pipeline locally on generated data"
	@echo "make test   lint, type-check and run the test suite"
	@echo "make bench  run the benchmarks"

$(UV):
	@command -v python3 >/dev/null || { echo "python3 (3.11) is required" >&2; exit 1; }
	python3 -m venv $(TOOLS)/uv
	$(TOOLS)/uv/bin/pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python python3.11
	@touch $@

bootstrap: $(VENV)/.synced jars $(DRIVER_ARCHIVE)

jars: $(JAR_STAMP)

$(JAR_STAMP): jvm/pom.xml
	@command -v java >/dev/null || { echo "Java 17 is required for Spark (apt-get install openjdk-17-jdk-headless)" >&2; exit 1; }
	@command -v mvn >/dev/null || { echo "Maven is required once, to fetch the JVM jars (apt-get install maven)" >&2; exit 1; }
	rm -rf $(JARS)
	$(MVN) -q -B -f jvm/pom.xml dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/$(JARS) -DincludeScope=runtime
	@touch $@

# The local driver's class-data archive (jobs/tools/driver_archive.py, ADR 0010): built
# once per jar set and venv, mapped by every later local driver (a third less CPU to
# start and warm up).
$(DRIVER_ARCHIVE): $(JAR_STAMP) $(VENV)/.synced
	$(PY) -m jobs.tools.driver_archive

# A real Kafka broker (single KRaft node) for the Kafka-path tests; run by
# tests/support/kafka.py in its own JVM on 127.0.0.1. Test-only, never deployed.
kafka-broker: $(KAFKA_STAMP)

$(KAFKA_STAMP): jvm/kafka-broker/pom.xml
	rm -rf $(KAFKA_JARS)
	$(MVN) -q -B -f jvm/kafka-broker/pom.xml dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/$(KAFKA_JARS) -DincludeScope=runtime
	@touch $@

# The openlineage-spark listener (lineage.spark_listener; on in dev/prod). Locally it is
# fetched for the smoke test and for runs that switch the listener on.
openlineage-spark: $(LINEAGE_STAMP)

$(LINEAGE_STAMP): jvm/openlineage-spark/pom.xml
	rm -rf $(LINEAGE_JARS)
	$(MVN) -q -B -f jvm/openlineage-spark/pom.xml dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/$(LINEAGE_JARS) -DincludeScope=runtime
	@touch $@

# The lake on S3 locally (tests, `make demo DEMO_ARGS=--storage s3`): S3A and the SDK v1
# DynamoDB client of Delta's S3DynamoDBLogStore. The log store's own jar is not served by
# this machine's Maven mirror: it is read from ../shared/jars (jobs/common/jars.py).
s3-jars: $(S3_STAMP)

$(S3_STAMP): jvm/s3/pom.xml
	rm -rf $(S3_JARS)
	$(MVN) -q -B -f jvm/s3/pom.xml dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/$(S3_JARS) -DincludeScope=runtime
	@touch $@

# The DAGs on the Airflow MWAA runs (terraform/modules/mwaa: 3.0.6, Python 3.12, the
# provider versions of its constraints): a second venv from the hash-locked
# tests/dags/mwaa/requirements.txt, for tests/dags/test_dags_on_mwaa_airflow.py.
MWAA_VENV := $(TOOLS)/mwaa-airflow
MWAA_STAMP := $(MWAA_VENV)/.stamp
MWAA_LOCK := tests/dags/mwaa/requirements.txt
PY312 = $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12 /usr/bin/python3.12 /usr/local/bin/python3.12))

mwaa-airflow: $(MWAA_STAMP)

$(MWAA_STAMP): $(MWAA_LOCK) $(UV)
	@test -n "$(PY312)" || { echo "Python 3.12 (MWAA's) is needed for the MWAA Airflow tests: pyenv install 3.12" >&2; exit 1; }
	rm -rf $(MWAA_VENV)
	$(UV) venv -q --python $(PY312) $(MWAA_VENV)
	$(UV) pip install -q --require-hashes --python $(MWAA_VENV)/bin/python -r $(MWAA_LOCK)
	@touch $@

# Re-lock after editing tests/dags/mwaa/requirements.in or constraints.txt.
mwaa-lock: $(UV)
	$(UV) pip compile -q --python-version 3.12 --python-platform x86_64-manylinux_2_28 \
	  --generate-hashes -c tests/dags/mwaa/constraints.txt tests/dags/mwaa/requirements.in -o $(MWAA_LOCK)

# checkov in its own venv (terraform/checkov-requirements.txt, hash-pinned): installed
# into the project venv it would downgrade boto3. The Terraform tests run it.
checkov: $(CHECKOV)

$(CHECKOV): terraform/checkov-requirements.txt $(UV)
	rm -rf $(TOOLS)/checkov
	$(UV) venv -q --python python3.11 $(TOOLS)/checkov
	$(UV) pip install -q --require-hashes --python $(TOOLS)/checkov/bin/python -r terraform/checkov-requirements.txt
	@touch $@

demo:
	@$(MAKE) --no-print-directory -j$(SETUP_JOBS) --output-sync=target bootstrap s3-jars
	$(VENV)/bin/lakehouse demo $(DEMO_ARGS)

lint: $(VENV)/.synced
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check jobs aws

typecheck: $(VENV)/.synced
	$(VENV)/bin/mypy

# The JDBC tests start their own throwaway PostgreSQL server (tests/support/postgres.py);
# this only makes sure the server binaries are installed (Debian package postgresql).
postgres-bin:
	@if command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing PostgreSQL server binaries (apt-get install postgresql)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else echo "PostgreSQL server binaries are needed for the JDBC tests: apt-get install postgresql" >&2; exit 1; fi

# The report's browser test opens the page in headless Chromium (Debian package; driven
# by Playwright, no browser download). After postgres-bin: one apt-get at a time.
chromium: postgres-bin
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Chromium for the report's browser test (apt-get install chromium)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "Chromium is needed for the report's browser test: apt-get install chromium" >&2; exit 1; fi

# Two workers; long tests are scheduled first (tests/conftest.py). Tests marked
# `extended` (further crash points of a kill test whose main case runs here, the lake on
# S3, the emulated EMR runs, MWAA's Airflow) and the SCD2 property test are left to
# `make test-extended`, which CI runs after `make test`.
#
# tests/terraform (fmt, validate, checkov, the dev env applied to moto) mostly waits on
# the provider (S3 lifecycle settling) and uses little CPU: it runs beside the two Spark
# workers rather than in one of their slots; its output follows theirs.
TF_TEST_LOG := $(TOOLS)/terraform-tests.log

pytest: bootstrap postgres-bin chromium kafka-broker openlineage-spark s3-jars checkov
	@$(VENV)/bin/pytest -q tests/terraform > $(TF_TEST_LOG) 2>&1 & tf=$$!; \
	$(VENV)/bin/pytest -q -n 2 --dist load --durations=15 -m "not extended and not property" \
	  --ignore=tests/terraform $(PYTEST_ARGS); main=$$?; \
	wait $$tf; tf_rc=$$?; echo "--- tests/terraform (run alongside) ---"; cat $(TF_TEST_LOG); \
	test $$main -eq 0 -a $$tf_rc -eq 0

test:
	@$(MAKE) --no-print-directory -j$(SETUP_JOBS) --output-sync=target \
	  bootstrap lint typecheck postgres-bin chromium kafka-broker openlineage-spark s3-jars checkov
	@$(MAKE) --no-print-directory pytest

# The SCD2 property test alone, at 60 random examples (make test-extended runs it too).
test-property: bootstrap
	HYPOTHESIS_PROFILE=thorough $(VENV)/bin/pytest -q tests/jobs/silver/test_scd2.py -k batch_invariant

# What make test leaves out: extended crash points, the lake on S3, the DAGs on MWAA's
# Airflow, and the property test at 60 examples. worksteal: with load, xdist hands each
# worker two tests at first, and the two 12-minute tests queued on one worker.
test-extended: bootstrap postgres-bin chromium kafka-broker openlineage-spark s3-jars mwaa-airflow
	HYPOTHESIS_PROFILE=thorough $(VENV)/bin/pytest -q -n 2 --dist worksteal --durations=15 \
	  -m "extended or property" $(PYTEST_ARGS)

# The jobs on the emulated EMR Serverless alone (make test-extended runs them too): two
# days on S3 with day 2's FX chain on the image, and what the image shows a job.
test-emr: bootstrap chromium s3-jars openlineage-spark
	$(VENV)/bin/pytest -q -s tests/dags/test_dag_on_emr_emulator.py $(PYTEST_ARGS)

bench: bootstrap
	$(PY) -m tests.benchmarks.run $(BENCH_ARGS)

# Ad-hoc local spark-submit of the same entry point EMR runs, e.g.
#   make spark-submit ARGS="run runtime_check --env local --date 2026-01-01"
spark-submit: bootstrap
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" PYSPARK_PYTHON="$(CURDIR)/$(PY)" \
	  spark-submit $$($(PY) -m jobs.common.jars) jobs/main.py $(ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) $(JARS) $(LINEAGE_JARS) .jars-test .lakehouse .pytest_cache .mypy_cache .ruff_cache
