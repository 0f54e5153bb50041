# Two commands for a fresh machine (see README):
#   make demo   creates .venv, installs smbsentry, runs a demo scan and writes its report
#   make test   installs what the tests need (samba, nmap, tshark, test extras) and runs them
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test test-no-corpus venv system-deps clean

# The detector's hot modules are compiled (Cython, see setup.py) at install: a change
# to them, their .pxd files or setup.py reinstalls, so the build never goes stale.
# COMPILED_MODULES is smbsentry.detect._accel.COMPILED (a test checks they agree); discovery's
# SYN sender is plain C (setup.py).
COMPILED_MODULES := reassembly flows events smb1_exploits wormscan inventory engine pcap capture
COMPILED := $(foreach m,$(COMPILED_MODULES),$(wildcard src/smbsentry/detect/$(m).py src/smbsentry/detect/$(m).pxd)) \
	src/smbsentry/discover/_fastsend.c
$(BIN)/smbsentry: pyproject.toml setup.py $(COMPILED)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

venv: $(BIN)/smbsentry

# Debian packages the tests and the demo use; installed only when missing.
system-deps:
	@./scripts/install-system-deps

demo: system-deps venv
	$(BIN)/python scripts/demo.py

test: system-deps venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	@# the detector's tests once more on its plain-Python form (the fallback where nothing compiles)
	SMBSENTRY_PURE_PYTHON=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_detect.py tests/test_capture.py

# The tests that read the capture corpus, with the corpus hidden: what a clone
# without ../shared runs. They must skip, with the reason, never fail (CI runs this).
CORPUS_TESTS = $(shell grep -l corpus tests/test_*.py)
test-no-corpus: venv
	@empty=$$(mktemp -d) && trap 'rm -rf "$$empty"' EXIT && \
	SMBSENTRY_CORPUS=$$empty $(BIN)/python -m pytest -q -p no:cacheprovider $(CORPUS_TESTS)

clean:
	rm -rf $(VENV) build demo-output .pytest_cache
	rm -f src/smbsentry/detect/*.c src/smbsentry/detect/*.so src/smbsentry/detect/_compiled.json src/smbsentry/discover/*.so
