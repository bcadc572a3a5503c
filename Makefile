PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-test

.PHONY: test demo bench lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy --strict para_jwt

test: lint
	$(BIN)/pytest

# The peers and matplotlib (the `bench` extra), then the benchmarks; results
# (JSON, Markdown, a PNG chart) go to benchmarks/results/. Takes a few minutes.
BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/bench_verify.py
	$(BIN)/python benchmarks/bench_jwks.py
	$(BIN)/python benchmarks/bench_http.py
	$(BIN)/python benchmarks/bench_parts.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
