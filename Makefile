# lotedge developer commands. `make run` and `make test` set everything up on a fresh clone.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= config/demo-lot.toml

.PHONY: setup run test test-all bench lint torture soak fuzz clean install

$(STAMP): pyproject.toml
	@command -v mosquitto >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq mosquitto >/dev/null) || echo "warning: mosquitto not installed; MQTT tests need it"
	@(command -v initdb || ls /usr/lib/postgresql/*/bin/initdb) >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq postgresql >/dev/null) || echo "warning: PostgreSQL not installed; the PostgreSQL cloud-store tests need it"
	@command -v systemd-analyze >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq systemd >/dev/null) || echo "warning: systemd-analyze not installed; the systemd unit tests need it"
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/lotedge run --config $(CONFIG) --simulate

# CI subset: everything except the long soak/crash rounds (marked slow).
test: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

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

# On the Pi, as root: venv, config, units and data dir (see README "Deployment and diagnostics").
install:
	deploy/install.sh $(INSTALL_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .fuzz
