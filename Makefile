PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-test
# The demo needs the package only; the test install includes it.
DEMO_STAMP := $(VENV)/.installed

.PHONY: test demo bench lint clean fuzz docs docs-serve suite other-pythons dist package-check

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

# `make test` is every check. In this order, stopping at the first failure:
#   1. lint: ruff, and mypy --strict on para_jwt;
#   2. suite: the pytest suite on .venv's interpreter (3.11 here) on two xdist
#      workers, including every Python example of README.md and docs/
#      (tests/test_docs_examples.py), except the packaging tests;
#   3. then side by side (make -j, each target's output printed as a block):
#      - docs: the documentation site, `mkdocs build --strict`;
#      - package-check: tests/test_packaging.py: builds the sdist and the wheel,
#        twine check --strict, installs the wheel in a fresh virtualenv and runs
#        `para-jwt demo` and the README's quick start from there, and runs
#        mypy --strict on an app against the editable install;
#      - other-pythons: the suite on each other supported interpreter the machine
#        has (noxfile.py names the absent ones), with a REDUCED profile: the files
#        in OTHER_PYTHONS_SKIP and the tests in OTHER_PYTHONS_DESELECT do not run
#        there. The files check what does not depend on the interpreter
#        (packaging, docs examples, benchmark and fuzz smoke runs, the pytest
#        plugin and MockPara's own tests: MockPara serves every other test) or are
#        the slowest (property tests); the tests are the slowest of the rest (a
#        10,000-token flood, subprocess round trips). What is left is about a third
#        of the suite's time and every test of the verifier, claims, JWS parsing,
#        key cache, ParaAPI, aiohttp, CLI and security regressions but those.
#        `.venv/bin/nox` runs the whole suite on every interpreter.
# Time, measured on this 2-core machine at a load average of 3-4 (other work
# running): lint + suite 131 CPU-seconds (2 min 22 s), docs + package-check 24
# (25 s), other-pythons 56 (1 min 51 s): about 210 CPU-seconds, so a little over
# two minutes on an idle machine; far more under heavy load (15 min at 10-13).
# A whole run at a load average falling from 2.9 to 0.8: 2 min 57 s, 220 CPU-s.
# The first run creates .venv and .nox/ (several minutes of installs).
PYTEST_WORKERS ?= 2
OTHER_PYTHONS_SKIP = tests/test_packaging.py tests/test_docs_examples.py \
	tests/test_benchmarks.py tests/test_fuzz_corpus.py tests/test_properties.py \
	tests/test_plugin.py tests/test_testing_kit.py
OTHER_PYTHONS_DESELECT = \
	tests/test_jwks_cache.py::test_a_random_kid_flood_is_bounded_and_a_real_rotation_still_gets_through \
	tests/test_verifier.py::test_no_member_breaks_the_set \
	tests/test_attacks.py::test_any_claim_value_is_accepted_or_an_invalid_token \
	tests/test_attacks.py::test_no_edit_of_a_genuine_token_verifies \
	tests/test_cli.py::test_the_installed_script_and_python_m_run_the_command \
	tests/test_cli.py::test_mock_server_serves_until_sigterm_and_its_token_verifies \
	tests/test_demo.py::test_the_installed_demo_command_exits_0 \
	tests/test_quickstart.py

test: lint suite
	@$(MAKE) --no-print-directory -j3 -O docs package-check other-pythons

suite: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS) -m "not packaging"

package-check: $(STAMP)
	$(BIN)/pytest -n 2 -m packaging tests/test_packaging.py

# Each supported interpreter except .venv's, one nox process each, side by side.
other-pythons: $(STAMP)
	@$(BIN)/nox -l > .nox-sessions 2>&1 || { cat .nox-sessions; exit 1; }
	@grep '^noxfile:' .nox-sessions
	@mine=$$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	present=$$(sed -n 's/^[*-] tests-\([0-9.]*\).*/\1/p' .nox-sessions); \
	pids=; for v in $$present; do \
		[ "$$v" = "$$mine" ] && continue; \
		echo "other-pythons: the suite on Python $$v (reduced profile)"; \
		$(BIN)/nox --no-color -s tests -p $$v -- -p no:cacheprovider \
			$(foreach f,$(OTHER_PYTHONS_SKIP),--ignore=$(f)) \
			$(foreach t,$(OTHER_PYTHONS_DESELECT),--deselect=$(t)) > .nox-$$v.log 2>&1 & \
		pids="$$pids $$!:$$v"; \
	done; \
	status=0; for pv in $$pids; do \
		if wait $${pv%%:*}; then echo "Python $${pv##*:}: $$(grep -E '[0-9]+ passed' .nox-$${pv##*:}.log | tail -n 1)"; \
		else status=1; echo "FAILED on Python $${pv##*:}:"; tail -n 40 .nox-$${pv##*:}.log; fi; \
	done; exit $$status

# The documentation site in site/; --strict turns every warning (a broken link, a
# reference mkdocstrings cannot resolve) into a failure.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# A wheel and an sdist in dist/, checked by twine.
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	$(BIN)/twine check --strict dist/*

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

# wrk is bench_http's load generator; without it, bench_http uses its own Python one.
bench: $(BENCH_STAMP)
	command -v wrk >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wrk) \
		|| echo "wrk not installed: bench_http falls back to its Python load generator"
	$(BIN)/python benchmarks/bench_verify.py
	$(BIN)/python benchmarks/bench_jwks.py
	$(BIN)/python benchmarks/bench_http.py
	$(BIN)/python benchmarks/bench_parts.py

# The instruction-count gate (benchmarks/README.md); `make test` runs it as
# tests/test_instruction_budget.py.
.PHONY: instructions
instructions: $(STAMP)
	$(BIN)/python benchmarks/instructions.py

clean:
	rm -rf $(VENV) .nox .nox-*.log .nox-sessions site dist .pytest_cache .mypy_cache .ruff_cache

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
