PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-test
# The demo needs the package only; the test install includes it.
DEMO_STAMP := $(VENV)/.installed

.PHONY: test demo bench lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP) $(DEMO_STAMP)

$(DEMO_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $(DEMO_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy --strict para_jwt

test: lint
	$(BIN)/pytest

demo: $(DEMO_STAMP)
	$(BIN)/para-jwt demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
