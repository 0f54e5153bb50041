# Two commands for a fresh machine (see README):
#   make demo   creates .venv, installs smbsentry, runs a demo scan and writes its report
#   make test   installs what the tests need (samba, nmap, tshark, test extras) and runs them
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test venv system-deps clean

$(BIN)/smbsentry: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

venv: $(BIN)/smbsentry

# Debian packages the tests and the demo use; installed only when missing.
system-deps:
	@./scripts/install-system-deps

demo: venv system-deps
	$(BIN)/python scripts/demo.py

test: venv system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build demo-output .pytest_cache
