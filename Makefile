# lotedge developer commands. `make run` and `make test` set everything up on a fresh clone.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= config/demo-lot.toml

.PHONY: setup run docs test test-all bench lint torture soak fuzz clean install wheelhouse uninstall

# A Debian package the tests need, installed only when missing, and said so first:
# $(call need_pkg,PACKAGE,CHECK COMMAND,WHY)
need_pkg = ($(2)) >/dev/null 2>&1 || { echo "make: installing the Debian package $(1) ($(3)): apt-get install $(1)"; \
  (apt-get update -qq && apt-get install -y -qq $(1) >/dev/null) || echo "warning: $(1) not installed; $(3)"; }

$(STAMP): pyproject.toml
	@$(call need_pkg,mosquitto,command -v mosquitto,the MQTT tests need it)
	@$(call need_pkg,postgresql,command -v initdb || ls /usr/lib/postgresql/*/bin/initdb,the PostgreSQL cloud-store tests need it)
	@$(call need_pkg,systemd,command -v systemd-analyze,the systemd unit tests need systemd-analyze)
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# FRESH=1 starts an empty lot (the old var/ is moved aside); without it the lot goes on.
run: $(STAMP)
	$(BIN)/lotedge run --config $(CONFIG) --simulate $(if $(FRESH),--fresh)

# The documentation site into site/ (the config reference and the performance page are
# generated first); --strict: a broken link fails the build.
docs: $(STAMP)
	$(BIN)/python -m tools.gen_docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# CI subset: everything except the long soak/crash rounds (marked slow), on TEST_WORKERS
# pytest-xdist workers (2: most tests wait on real processes, brokers and databases).
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/pytest -q -n $(TEST_WORKERS) -m "not slow" --durations=25

test-all: $(STAMP)
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench

# Crash safety: SIGKILL the simulated appliance >= 1,000 times, checking the ledger after each.
torture: $(STAMP)
	$(BIN)/python -m tests.integration.crash_harness --rounds $${ROUNDS:-1000}

# 24 simulated hours, 600 vehicles/hour/lane on 4 lanes, 500 spot sensors; RSS sampled.
soak: $(STAMP)
	$(BIN)/python -m tests.integration.soak $(SOAK_ARGS)

# Coverage-guided fuzzing (atheris) of every byte parser, FUZZ_SECONDS (60) each; the corpus
# grows in .fuzz/ between runs and a finding stops with its input in .fuzz/TARGET-crash-*.
fuzz: $(STAMP)
	@mkdir -p .fuzz; for t in maxbotix registers control config bundle; do \
	  echo "== $$t"; \
	  $(BIN)/python -m tests.fuzz.atheris_targets $$t -max_total_time=$${FUZZ_SECONDS:-60} \
	    -print_final_stats=1 > .fuzz/$$t.log 2>&1; rc=$$?; \
	  grep -E "^(Done|stat::average_exec_per_sec|#[0-9]+ +DONE)" .fuzz/$$t.log; \
	  if [ $$rc -ne 0 ]; then tail -30 .fuzz/$$t.log; echo "finding: input kept in .fuzz/$$t-crash-*"; exit 1; fi; \
	done

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# As root on the box (docs/install.md): a release beside the others, config, units, data dir.
# Offline: `make wheelhouse` on a connected machine of the same architecture and Python, copy
# the clone, then `make install WHEELHOUSE=wheelhouse`.
install:
	deploy/install.sh $(if $(WHEELHOUSE),--wheelhouse $(WHEELHOUSE)) $(INSTALL_ARGS)

# Every wheel an offline install needs, incl. the build tools (pip, setuptools, wheel).
wheelhouse:
	$(PY) -m venv .cache/wheelhouse-venv
	.cache/wheelhouse-venv/bin/pip wheel -q --disable-pip-version-check -w wheelhouse '.[pi]' pip setuptools wheel
	@ls wheelhouse | wc -l | xargs echo "wheels in wheelhouse/:"

# Units, releases, venvs, link and user; the ledger, backups and config stay unless PURGE=1.
uninstall:
	deploy/uninstall.sh $(if $(PURGE),--purge) $(UNINSTALL_ARGS)

clean:
	rm -rf $(VENV) var site .pytest_cache .fuzz
