PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-test
# The demo needs the package only; the test install includes it.
DEMO_STAMP := $(VENV)/.installed

.PHONY: test demo bench lint clean fuzz

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

# Coverage-guided fuzzing, both targets in parallel for FUZZ_SECONDS each:
#   make fuzz                     # 10 minutes per target
#   make fuzz FUZZ_SECONDS=30     # a smoke run
# New corpus entries and crash inputs go to fuzz/corpus-work/ (not committed).
FUZZ_SECONDS ?= 600
FUZZ_STAMP := $(VENV)/.installed-fuzz
FUZZ_FLAGS = -dict=fuzz/para.dict -max_total_time=$(FUZZ_SECONDS) -timeout=5 \
	-rss_limit_mb=2048 -print_final_stats=1

$(FUZZ_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,fuzz]'
	touch $(FUZZ_STAMP)

fuzz: $(FUZZ_STAMP)
	mkdir -p fuzz/corpus-work/verify fuzz/corpus-work/jwks fuzz/corpus-work/artifacts
	$(BIN)/python fuzz/fuzz_verify.py fuzz/corpus-work/verify fuzz/corpus/verify \
		$(FUZZ_FLAGS) -max_len=17000 -artifact_prefix=fuzz/corpus-work/artifacts/verify- \
		> fuzz/corpus-work/verify.log 2>&1 & verify=$$!; \
	$(BIN)/python fuzz/fuzz_jwks.py fuzz/corpus-work/jwks fuzz/corpus/jwks \
		$(FUZZ_FLAGS) -max_len=65536 -artifact_prefix=fuzz/corpus-work/artifacts/jwks- \
		> fuzz/corpus-work/jwks.log 2>&1 & jwks=$$!; \
	wait $$verify; v=$$?; wait $$jwks; j=$$?; \
	tail -n 12 fuzz/corpus-work/verify.log fuzz/corpus-work/jwks.log; \
	echo "fuzz_verify exit $$v, fuzz_jwks exit $$j (crash inputs: fuzz/corpus-work/artifacts/)"; \
	test $$v -eq 0 && test $$j -eq 0

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

# Model-based tests of the key cache and the verified-token cache (tests/test_model_*.py)
# in their long profile: random seeds, batches of examples for MODEL_MINUTES in all.
# `make test` runs them in the bounded CI profile (about 30 s).
#   make model                    # 20 minutes
#   make model MODEL_MINUTES=2    # a smoke run
.PHONY: model
MODEL_MINUTES ?= 20

model: $(STAMP)
	MODEL_PROFILE=long MODEL_MINUTES=$(MODEL_MINUTES) $(BIN)/pytest -s -p no:cacheprovider \
		tests/test_model_keycache.py tests/test_model_keycache_findings.py tests/test_model_tokencache.py
