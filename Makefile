# The commands the README names. Each target sets up its own virtual environment.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test lint unit integration bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/allocator demo

lint: $(BIN)/.installed
	$(BIN)/ruff check allocator streams tests bench
	$(BIN)/ruff format --check allocator streams
	$(BIN)/mypy allocator streams

test: lint
	$(BIN)/pytest -ra

unit: $(BIN)/.installed
	$(BIN)/pytest -ra tests/unit

integration: $(BIN)/.installed
	$(BIN)/pytest -ra tests/integration

bench: $(BIN)/.installed
	$(BIN)/python bench/quota_bench.py
	$(BIN)/python bench/stream_bench.py
	$(BIN)/python bench/replay_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
