"""Each benchmark script runs in --quick mode and writes its results. No timing is asserted.

The test environment has only the ``test`` extra: bench_verify then skips the
peers it cannot import and the chart (matplotlib), and still runs every row
para_jwt and the floors need, which is what this smoke test is for. bench_http
serves Starlette and FastAPI with uvicorn (the ``bench`` extra): where it is
installed their rows must run, where it is not the report must say they were
skipped.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Slow (whole scripts in subprocesses): `make slow-checks`, which `make check` and CI run.
pytestmark = pytest.mark.slow

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("verify", []),
        ("jwks", []),
        ("http", []),  # wrk where it is installed
        ("http", ["--generator", "python"]),  # the fallback
        ("parts", []),
        ("versions", ["HEAD"]),  # git archive of HEAD: present in any clone
    ],
)
def test_a_quick_run_writes_its_results(tmp_path: Path, name: str, options: list[str]) -> None:
    script = BENCHMARKS / f"bench_{name}.py"
    done = subprocess.run(  # noqa: S603 (this interpreter, on a script of this repository)
        [sys.executable, str(script), "--quick", "--out", str(tmp_path), *options],
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
    if name == "versions":
        # Both sources were timed (each verified the stored tokens first) against the floor.
        assert set(data["results"]) == {"this checkout", "HEAD"}
        assert all(r["uncached_over_floor"] > 1 for r in data["results"].values())
    if name == "http":
        default = "wrk" if shutil.which("wrk") else "python"
        assert data["method"]["generator"] == (options[1] if options else default)
        asgi = {"Starlette", "FastAPI"}
        served = {row["framework"] for row in data["summary"]}
        if importlib.util.find_spec("uvicorn") is None:
            assert served == {"aiohttp"}
            assert set(data["skipped"]) == asgi
        else:
            assert served == {"aiohttp"} | asgi
            assert data["skipped"] == []
        # Each framework's open row and at least one protected row.
        for framework in served:
            endpoints = [r["endpoint"] for r in data["summary"] if r["framework"] == framework]
            assert endpoints[0] == "open"
            assert len(endpoints) >= 2
        # Every endpoint answered, and answered 200 (errors count anything else).
        assert all(row["requests_per_second"] > 0 for row in data["summary"])
        assert all(row["errors"] == 0 for row in data["summary"])
