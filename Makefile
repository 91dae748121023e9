# The two commands of the README: `make demo` and `make test`. Each sets up what it needs itself.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pcseg-installed
PYTEST_ARGS ?= -n 2

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml scripts/setup.sh
	VENV=$(VENV) bash scripts/setup.sh
	touch $@

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/pcseg demo

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/bench_synth.py
	$(PY) benchmarks/bench_eval.py

clean:
	rm -rf $(VENV) out
