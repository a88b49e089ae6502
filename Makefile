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
	$(BIN)/ruff format --check allocator streams tests bench
	$(BIN)/mypy allocator streams

# The services the tests talk to (Redis, PostgreSQL, Kafka's jars, Chromium),
# installed and started when missing (.ci/services).
.PHONY: services
services: $(BIN)/.installed
	bash .ci/services

test: services lint
	$(BIN)/pytest -ra

unit: $(BIN)/.installed
	$(BIN)/pytest -ra tests/unit

integration: $(BIN)/.installed
	$(BIN)/pytest -ra tests/integration

# Needs Redis at 127.0.0.1:6379 and, for stream_bench's Kafka runs, Java and
# Kafka's jars (`make services` starts them all, as for the tests).
bench: $(BIN)/.installed
	$(BIN)/python bench/quota_bench.py
	$(BIN)/python bench/stream_bench.py
	$(BIN)/python bench/replay_bench.py

# Apache Kafka 4.x (KRaft) for the tests and local runs: its jars, resolved
# once with Maven from kafka/pom.xml into ~/.cache/allocator/kafka-<version>
# (or ALLOCATOR_KAFKA_JARS). Idempotent; prints where they are.
.PHONY: kafka
kafka: $(BIN)/.installed
	$(BIN)/python -m streams.kafka_local

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

# Long fuzzing of the input boundary, beyond `unit`: the hypothesis fuzz tests
# with FUZZ_EXAMPLES inputs, then atheris (coverage-guided, libFuzzer) for
# FUZZ_RUNS inputs when it is installed. What atheris learns and any crashing
# input stay in .hypothesis/atheris (ignored by git, removed by `clean`).
FUZZ_EXAMPLES ?= 2000000
FUZZ_RUNS ?= 2000000
FUZZ_DIR ?= .hypothesis/atheris

.PHONY: fuzz
fuzz: $(BIN)/.installed
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -q tests/unit/allocator/models/test_fuzz.py
	@if $(BIN)/python -c "import atheris" 2>/dev/null; then \
		mkdir -p $(FUZZ_DIR)/corpus && \
		$(BIN)/python -m tests.fuzz.fuzz_records -runs=$(FUZZ_RUNS) \
			-dict=tests/fuzz/json.dict -artifact_prefix=$(FUZZ_DIR)/ \
			$(FUZZ_DIR)/corpus tests/fuzz/seeds; \
	else echo "atheris is not installed: the coverage-guided run is skipped"; fi
