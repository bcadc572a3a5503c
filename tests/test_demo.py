"""``para-jwt demo``: it runs end to end, in seconds, and fails loudly when a step misbehaves."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from para_jwt._demo import run_demo
from para_jwt.cli import main

SCRIPT = Path(sys.executable).with_name("para-jwt")
SUMMARY = re.compile(r"✓ All (\d+) checks passed in \d+\.\d s: para_jwt behaved as narrated\.")
STEPS = [
    "A valid token",
    "No token",
    "An expired token",
    "A token for another app",
    "A tampered token",
    "Para rotates its signing key",
    "Para's key set is down",
    "Still down, past max_stale",
    "Para is back",
    "Sign-in with a verification token",
    "Wallet ownership",
]


def test_the_demo_command_passes_every_check(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.perf_counter()
    assert main(["demo"]) == 0
    assert time.perf_counter() - started < 10
    out, err = capsys.readouterr()
    assert err == ""  # the library's log records are not repeated on stderr
    titles = re.findall(r"^ ?\d+\. (.+)$", out, re.MULTILINE)
    assert titles == STEPS
    summary = SUMMARY.fullmatch(out.splitlines()[-1])
    assert summary is not None, out.splitlines()[-1]
    assert int(summary.group(1)) == out.count("✓") - 1 == 17
    assert "✗" not in out
    assert "GET /me  →  503 Service Unavailable" in out
    assert "(Retry-After: 2)" in out


def test_the_installed_demo_command_exits_0() -> None:
    result = subprocess.run(  # noqa: S603 - our own script, fixed arguments
        [SCRIPT, "demo"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert SUMMARY.fullmatch(result.stdout.splitlines()[-1])
    assert "\033[" not in result.stdout  # a pipe gets no colour codes


async def test_the_demo_exits_1_when_the_library_does_not_behave_as_narrated() -> None:
    # With no stale grace period, the outage step gets a 503 instead of its 200.
    out = io.StringIO()
    assert await run_demo(out, verifier_options={"max_stale": 0}) == 1
    lines = out.getvalue().splitlines()
    assert "    ✗ 200 from the stale key set" in lines
    assert re.fullmatch(
        r"✗ 2 of 17 checks failed in \d+\.\d s: 200 from the stale key set; "
        r"the refetch failed; cache stale",
        lines[-1],
    )
