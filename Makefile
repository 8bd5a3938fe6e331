# Two entry points for a new user: `make demo` and `make test` (see README.md).
# TORCH_SPEC picks the torch build: here the local CPU wheel (torch==2.13.0 resolves to it through
# pip's find-links); elsewhere the same pin gets PyPI's normal (CUDA-capable) wheel.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
DEMO_OUT ?= demo_output
# --timeout: a hung test (a deadlocked worker, say) fails after 20 minutes instead of eating CI.
PYTEST_ARGS ?= -m "not slow" --timeout 1200

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-all test-min lock lint container-test clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/bids-eeg2fmri-demo $(DEMO_OUT)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -m ""

# The lowest allowed versions in a separate venv (.venv-min), then a smoke test; needs PyPI.
# Measured: about 6 min on 2 shared cores with a fresh venv (pip 3.5 min, tests 2.5 min).
test-min:
	PYTHON=$(PYTHON) TORCH_SPEC="$(TORCH_SPEC)" bash ci/test-min.sh

# requirements.lock: the exact versions the image installs (from this venv; torch is installed
# separately by the Dockerfile, the project itself with --no-deps).
lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable --exclude torch | grep -v '^-e ' > requirements.lock

lint: $(STAMP)
	$(BIN)/hadolint Dockerfile

container-test: $(STAMP)
	bash scripts/container-test.sh

clean:
	rm -rf $(VENV) .venv-min $(DEMO_OUT) .pytest_cache
