"""The instruction-count gate: para_jwt against the floor, in instructions, stays in budget.

benchmarks/instructions.py counts with callgrind: the ratios repeat to within 0.5 %
(benchmarks/README.md) against a 3 % headroom, so this test does not flake the way a
timing would. It skips where valgrind cannot run (not installed, or not x86-64; CI
installs it) and on an interpreter other than the one the budget was set on: counts and
their ratios depend on the interpreter's own work per bytecode (3.13 runs the same
verify in a different number of instructions than 3.11), so a budget is only a budget
for the Python that measured it.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
BUDGET = json.loads((BENCHMARKS / "instruction_budget.json").read_text())
BUDGET_PYTHON = tuple(int(part) for part in BUDGET["python"].split(".")[:2])


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
@pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64"),
    reason="the gate's callgrind client request is written for x86-64",
)
@pytest.mark.skipif(
    sys.version_info[:2] != BUDGET_PYTHON,
    reason=f"the budget was set on Python {BUDGET['python']}",
)
def test_para_jwt_stays_within_its_instruction_budget(tmp_path: Path) -> None:
    results = tmp_path / "instructions.json"
    done = subprocess.run(  # noqa: S603 (this interpreter, on a script of this repository)
        [sys.executable, str(BENCHMARKS / "instructions.py"), "--json", str(results)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads(results.read_text())
    assert data["breaches"] == []
    for name in (
        "uncached_over_floor",
        "uncached_over_floor_beyond_signature",
        "hit_over_floor",
        "sync_hit_over_floor",
    ):
        assert 0 < data["ratios"][name] <= BUDGET[name], name
    # The counts are of real work: an RSA-2048 check is hundreds of thousands of
    # instructions, and a cache hit (async or sync) skips it.
    assert data["per_call"]["signature"] > 100_000
    assert data["per_call"]["signature"] < data["per_call"]["floor"]
    assert data["per_call"]["hit"] < data["per_call"]["signature"] / 10
    assert data["per_call"]["sync_hit"] < data["per_call"]["signature"] / 10


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
@pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64"),
    reason="the callgrind client request is written for x86-64",
)
def test_bench_parts_counts_every_variant_in_instructions(tmp_path: Path) -> None:
    """``bench_parts.py --instructions`` (the same machinery) counts each piece, --quick."""
    done = subprocess.run(  # noqa: S603 (this interpreter, on a script of this repository)
        [
            sys.executable,
            str(BENCHMARKS / "bench_parts.py"),
            *("--instructions", "--quick", "--out", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads((tmp_path / "parts_instructions.json").read_text())
    assert data["method"] == {"quick": True, "measure": "instructions", "calls": 4}
    counts = {(r["group"], r["variant"]): r["instructions_per_op"] for r in data["results"]}
    assert len(counts) == len(data["results"]) > 20
    assert all(value > 0 for value in counts.values())
    # Real work was counted: the bound RS256 check is an RSA-2048 verify; the table
    # lookup for a known enum value is cheaper than calling the enum.
    assert counts["RS256 signature", "para_jwt: check bound to the key"] > 100_000
    enum = "an open enum's value, as Para spells it"
    assert (
        counts[enum, "para_jwt: _member(WalletType, 'EVM'), the {value: member} table"]
        < counts[enum, "WalletType('EVM'): EnumType.__call__"]
    )
    assert (tmp_path / "parts_instructions.md").read_text().startswith("# bench_parts")
