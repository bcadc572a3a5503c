PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-test
# The demo needs the package only; the test install includes it.
DEMO_STAMP := $(VENV)/.installed

.PHONY: test check demo bench lint clean fuzz docs docs-serve suite slow-checks other-pythons \
	other-pythons-smoke dist package-check

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

# Two commands:
#   make test   the everyday check, under two minutes: side by side lint (ruff, mypy
#               --strict), the documentation site (`mkdocs build --strict`) and a SMOKE
#               run of core tests (OTHER_PYTHONS_SMOKE) on every other supported
#               interpreter present (noxfile.py names the absent ones); then the
#               suite on .venv's interpreter (3.11 here) on two xdist workers,
#               without the `slow` tests and with the smaller example budgets of
#               HYPOTHESIS_PROFILE=quick and MODEL_PROFILE=quick (every state-machine
#               rule still runs), with every Python example of README.md and docs/
#               (tests/test_docs_examples.py) and the instruction-count gate.
#   make check  what CI runs (.ci/run): `make test`, then the slow checks (`-m slow`:
#               fuzz-target and benchmark-script smoke runs, the 10,000-token flood,
#               the 300-example attack properties, repeated subprocess runs; and `-m
#               budget`: the property and model-based tests again at their CI
#               budget), the packaging checks (wheel and sdist built, twine --strict,
#               the wheel installed in a fresh virtualenv running `para-jwt demo` and
#               the README quick start, mypy --strict on an app against the editable
#               install) and the suite on the other interpreters with the reduced
#               profile below.
# Time on this 2-core machine (2 shared AMD EPYC cores, CPython 3.11.7), steady state
# (.venv, .nox/ and the caches exist), no other load: `make test` 1 min 46 s, 186
# CPU-seconds (lint, docs and the 203-test smoke on 3.12 and 3.13 about 15 s; the
# suite, 1,541 tests, 1 min 31 s); it was 4 min 6 s, with the slow tests, the CI
# budgets and every example in a fresh interpreter. `make check` took 5 min 39 s, 597
# CPU-seconds: `make test`, then the slow and budget tests (74) 1 min 23 s, packaging
# 13 s, the reduced profile on 3.12 and 3.13 (1,359 tests each) 2 min 10 s. The first
# run creates .venv and .nox/ (several minutes of installs); a cold mypy adds 10 s.
PYTEST_WORKERS ?= 2
# This machine's environment sets PYTHONDONTWRITEBYTECODE; without bytecode caches
# each of a run's interpreters (two workers, nox's, one per subprocess test) compiles
# every module it imports again, and pytest rewrites every test module again (about
# 2 s of each worker's collection, 1 s of each `python -m pytest` subprocess).
unexport PYTHONDONTWRITEBYTECODE
# What most depends on the interpreter, on the other ones: signatures (the crypto
# bindings), the key cache's HTTP and clocks (asyncio, aiohttp), the sync facade's
# threads and loops. About 12 CPU-seconds each.
OTHER_PYTHONS_SMOKE = tests/test_jws.py tests/test_jwks_clocks.py tests/test_sync.py
# The reduced profile of `make check` on the other interpreters: everything but what does
# not depend on the interpreter (packaging, docs examples, benchmark and fuzz smoke runs,
# the pytest plugin and MockPara's own tests) and the slowest tests (property tests, a
# 10,000-token flood, subprocess round trips). `.venv/bin/nox` runs everything everywhere.
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
OTHER_PYTHONS_REDUCED = $(foreach f,$(OTHER_PYTHONS_SKIP),--ignore=$(f)) \
	$(foreach t,$(OTHER_PYTHONS_DESELECT),--deselect=$(t))

# First lint, docs and the smoke runs side by side (about 15 s), then the suite alone:
# run alongside them, its first tests met a timing-dependent leak of a MockPara
# connection (an unclosed-transport error) in two runs out of four.
test: $(STAMP)
	@$(MAKE) --no-print-directory -j4 -O lint docs other-pythons-smoke
	@$(MAKE) --no-print-directory suite

check: test
	@$(MAKE) --no-print-directory slow-checks package-check other-pythons

suite: $(STAMP)
	HYPOTHESIS_PROFILE=quick MODEL_PROFILE=quick \
		$(BIN)/pytest -n $(PYTEST_WORKERS) -m "not packaging and not slow"

slow-checks: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS) -m "slow or budget"

package-check: $(STAMP)
	$(BIN)/pytest -n 2 -m packaging tests/test_packaging.py

# Each supported interpreter except .venv's, one nox process each, side by side:
# other-pythons-smoke (in `make test`) runs OTHER_PYTHONS_SMOKE, other-pythons (in `make
# check`) the reduced profile.
other-pythons-smoke: $(STAMP)
	@$(MAKE) --no-print-directory other-pythons OTHER_PYTHONS_ARGS="$(OTHER_PYTHONS_SMOKE)" \
		OTHER_PYTHONS_WHAT="core smoke"

OTHER_PYTHONS_ARGS ?= $(OTHER_PYTHONS_REDUCED)
OTHER_PYTHONS_WHAT ?= reduced profile
other-pythons: $(STAMP)
	@$(BIN)/nox -l > .nox-sessions 2>&1 || { cat .nox-sessions; exit 1; }
	@grep '^noxfile:' .nox-sessions
	@mine=$$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	present=$$(sed -n 's/^[*-] tests-\([0-9.]*\).*/\1/p' .nox-sessions); \
	pids=; for v in $$present; do \
		[ "$$v" = "$$mine" ] && continue; \
		echo "other-pythons: the suite on Python $$v ($(OTHER_PYTHONS_WHAT))"; \
		$(BIN)/nox --no-color -s tests -p $$v -- -p no:cacheprovider \
			$(OTHER_PYTHONS_ARGS) > .nox-$$v.log 2>&1 & \
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
	$(BIN)/python benchmarks/bench_versions.py

# The instruction-count gate (benchmarks/README.md); `make test` runs it as
# tests/test_instruction_budget.py.
.PHONY: instructions
instructions: $(STAMP)
	$(BIN)/python benchmarks/instructions.py

clean:
	rm -rf $(VENV) .nox .nox-*.log .nox-sessions site dist .pytest_cache .mypy_cache .ruff_cache

# Model-based tests of the key cache and the verified-token cache (tests/test_model_*.py)
# in their long profile: random seeds, batches of examples for MODEL_MINUTES in all.
# `make test` runs them in the quick profile (about 8 s), `make check` in the bounded CI
# profile too (about 25 s).
#   make model                    # 20 minutes
#   make model MODEL_MINUTES=2    # a smoke run
.PHONY: model
MODEL_MINUTES ?= 20

model: $(STAMP)
	MODEL_PROFILE=long MODEL_MINUTES=$(MODEL_MINUTES) $(BIN)/pytest -s -p no:cacheprovider \
		tests/test_model_keycache.py tests/test_model_keycache_findings.py tests/test_model_tokencache.py
