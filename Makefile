# Two commands: `make run` evaluates the bundled transcripts, `make test` runs the tests.
# Each creates .venv and installs the project on a fresh machine (Python >= 3.11 needed); `make test`
# also builds llama.cpp's llama-server once for the real-server tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/evaluator run transcripts --rubric rubrics --output results

# The llama-server suite (tests/test_llama_server.py) needs llama.cpp's server: built once per machine
# (10-15 minutes on 2 cores) and cached outside the repo; build.sh prints its path.
test: $(STAMP)
	server="$$(bash tests/llama_server/build.sh)" && LLAMA_SERVER="$$server" $(BIN)/python -m pytest

# Types and lint of the package, as CI checks them before the tests.
lint: $(STAMP)
	$(BIN)/ruff check evaluator tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache
