"""The README's quick start does what it says, and its first screen says how to try it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"

# What the quick start prints: a verified user and an address (not a whole Wallet
# repr), then the refusal of an expired token with its reason code.
EXPECTED = re.compile(
    r"[0-9a-f-]{36} signed in by email, EVM address 0x[0-9a-f]{40}\nrefused: expired\n"
)


def quick_start() -> str:
    """The README's first Python block: the quick start."""
    match = re.search(r"^```python\n(.*?)^```", README.read_text(), re.S | re.M)
    assert match is not None, "README.md has no Python example"
    return match.group(1)


def run_quick_start(python: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the quick start as a reader would: a file of its own, in an empty directory."""
    script = cwd / "quick_start.py"
    script.write_text(quick_start())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(  # noqa: S603 (our own interpreter and file)
        [python, "-W", "error::ResourceWarning", str(script)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_quick_start_verifies_and_refuses_and_closes_what_it_opens(tmp_path: Path) -> None:
    result = run_quick_start(sys.executable, tmp_path)
    assert result.returncode == 0, result.stderr
    assert EXPECTED.fullmatch(result.stdout), result.stdout
    assert "Unclosed" not in result.stderr, result.stderr


def test_the_first_screen_shows_the_two_commands_and_the_example() -> None:
    first_screen = "\n".join(README.read_text().splitlines()[:45])
    assert "make demo" in first_screen
    assert "make test" in first_screen
    assert quick_start() in first_screen
