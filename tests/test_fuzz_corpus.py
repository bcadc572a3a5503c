"""The fuzz targets in the normal suite: seed replay always, a short libFuzzer run if possible.

Replaying the committed corpus through ``fuzz/targets.py`` keeps the targets'
invariants true between fuzzing campaigns and takes milliseconds. The smoke
run needs atheris (the ``fuzz`` extra, also in ``test`` where a wheel exists:
CPython 3.11-3.13 on Linux x86_64) and is skipped, saying why, elsewhere.
``FUZZ_SMOKE_SECONDS`` sets its length per target (default 12, both targets
in parallel; 0 skips it).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from fuzz.common import CORPUS
from fuzz.targets import SEED_TOKENS, check_jwks, check_token

# Slow (whole scripts in subprocesses): `make slow-checks`, which `make check` and CI run.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
TOKEN_SEEDS = sorted((CORPUS / "verify").iterdir())
JWKS_SEEDS = sorted((CORPUS / "jwks").iterdir())


def test_the_corpus_has_valid_tokens_and_key_sets() -> None:
    # The malleability oracle needs tokens that verify; the targets need seeds.
    assert len(SEED_TOKENS) >= 3
    assert len(TOKEN_SEEDS) >= 10
    assert len(JWKS_SEEDS) >= 3


@pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning")  # as when fuzzing
@pytest.mark.parametrize("seed", TOKEN_SEEDS, ids=[p.name for p in TOKEN_SEEDS])
def test_token_seed_keeps_the_invariants(seed: Path) -> None:
    check_token(seed.read_bytes())


@pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning")
@pytest.mark.parametrize("seed", JWKS_SEEDS, ids=[p.name for p in JWKS_SEEDS])
def test_key_set_seed_keeps_the_invariants(seed: Path) -> None:
    check_jwks(seed.read_bytes())


SMOKE_SECONDS = int(os.environ.get("FUZZ_SMOKE_SECONDS", "12"))


@pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None,
    reason="atheris is not installed (no wheel for this platform): pip install -e '.[fuzz]'",
)
@pytest.mark.skipif(SMOKE_SECONDS <= 0, reason="FUZZ_SMOKE_SECONDS=0")
def test_fuzz_smoke() -> None:
    """Both targets under libFuzzer for a few seconds each, in parallel; no crash."""
    with tempfile.TemporaryDirectory() as work:
        runs = {}
        for target, max_len in (("verify", 17_000), ("jwks", 65_536)):
            scratch = Path(work, target)
            scratch.mkdir()
            command = [
                sys.executable,
                str(ROOT / "fuzz" / f"fuzz_{target}.py"),
                str(scratch),
                str(CORPUS / target),
                f"-dict={ROOT / 'fuzz' / 'para.dict'}",
                f"-max_total_time={SMOKE_SECONDS}",
                f"-max_len={max_len}",
                "-timeout=5",
                "-rss_limit_mb=2048",
                f"-artifact_prefix={scratch}/",
            ]
            runs[target] = subprocess.Popen(  # noqa: S603 (our own scripts)
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT
            )
        for target, run in runs.items():
            output, _ = run.communicate(timeout=SMOKE_SECONDS + 120)
            log = output.decode(errors="replace")
            assert run.returncode == 0, f"fuzz_{target} failed:\n{log[-4000:]}"
            assert "Done" in log, log[-2000:]
