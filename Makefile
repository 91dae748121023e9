# The two commands of the README: `make demo` and `make test`. Each sets up what it needs itself.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pcseg-installed
TEST_STAMP := $(VENV)/.pcseg-test-tools
PYTEST_ARGS ?= -n 2

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml scripts/setup.sh
	VENV=$(VENV) bash scripts/setup.sh
	touch $@

# the tests also need system tools (headless Chromium opens the HTML report): the same setup plus them
$(TEST_STAMP): pyproject.toml scripts/setup.sh
	PCSEG_TEST_TOOLS=1 VENV=$(VENV) bash scripts/setup.sh
	touch $(STAMP) $@

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/pcseg demo

test: $(TEST_STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/bench_synth.py
	$(PY) benchmarks/bench_eval.py

clean:
	rm -rf $(VENV) out
