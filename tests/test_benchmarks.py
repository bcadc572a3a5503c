"""Each benchmark script runs in --quick mode and writes its results. No timing is asserted.

The test environment has only the ``test`` extra: bench_verify then skips the
peers it cannot import and the chart (matplotlib), and still runs every row
para_jwt and the floors need, which is what this smoke test is for.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize("name", ["verify", "jwks", "http", "parts"])
def test_a_quick_run_writes_its_results(tmp_path: Path, name: str) -> None:
    script = BENCHMARKS / f"bench_{name}.py"
    done = subprocess.run(  # noqa: S603 (this interpreter, on a script of this repository)
        [sys.executable, str(script), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    data = json.loads((tmp_path / f"{name}.json").read_text())
    assert data["method"]["quick"] is True
    assert data["machine"]["python"]
    assert (tmp_path / f"{name}.md").read_text().startswith(f"# bench_{name}")
