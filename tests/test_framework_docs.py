"""Every ``python`` block of docs/flask.md and docs/django.md runs as its own script,
resource warnings as errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).parent.parent / "docs"
BLOCKS = [
    pytest.param(code, id=f"{page}-{number}")
    for page in ("flask.md", "django.md")
    for number, code in enumerate(
        re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.S), 1
    )
]


def test_each_page_has_examples() -> None:
    pages = {block.id.split("-")[0] for block in BLOCKS}  # type: ignore[union-attr]
    assert pages == {"flask.md", "django.md"}


@pytest.mark.parametrize("code", BLOCKS)
def test_example_runs(code: str) -> None:
    result = subprocess.run(  # noqa: S603 - this interpreter, the docs' own code
        [sys.executable, "-W", "error::ResourceWarning", "-X", "dev", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Unclosed" not in result.stderr
