"""What the three benchmark scripts share: options, the machine, progress, results.

Numbers from this machine are only comparable within one run: it is shared, so
every script reports ratios measured side by side, and the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
RESULTS = BENCHMARKS / "results"

#: Distributions whose versions every result file records (absent ones are skipped).
_VERSIONS = (
    "para-jwt",
    "joserfc",
    "cryptography",
    "aiohttp",
    "cachetools",
    "pyjwt",
    "authlib",
    "python-jose",
    "jwcrypto",
    "orjson",
    "matplotlib",
    "ryjwt",
)

#: Thread CPU time by default: on a shared machine, wall time also counts the
#: time this process waits for a core, which is other people's work.
TIMERS: dict[str, Callable[[], int]] = {"cpu": time.thread_time_ns, "wall": time.perf_counter_ns}


def arguments(
    description: str, *, extra: Callable[[argparse.ArgumentParser], None] | None = None
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run in seconds that proves the script works (not for numbers)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where results go (default: benchmarks/results, or benchmarks/results/quick "
        "with --quick, so a smoke run never overwrites real results)",
    )
    if extra is not None:
        extra(parser)
    args = parser.parse_args()
    if args.out is None:
        args.out = RESULTS / "quick" if args.quick else RESULTS
    return args


def machine() -> dict[str, Any]:
    """The machine and software a result came from."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in _VERSIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    try:
        from cryptography.hazmat.backends.openssl.backend import backend

        versions["openssl"] = backend.openssl_version_text()
    except ImportError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "load_average_at_start": list(os.getloadavg()),
        "versions": versions,
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }


def machine_line(info: dict[str, Any]) -> str:
    versions = ", ".join(f"{name} {version}" for name, version in info["versions"].items())
    return (
        f"{info['nproc']} CPUs ({info['cpu_model']}), {info['implementation']} {info['python']}, "
        f"{info['platform']}, load average at start "
        f"{' / '.join(f'{x:.2f}' for x in info['load_average_at_start'])}; {versions}"
    )


class Progress:
    """One line on stderr that keeps saying where a long run is."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._tty = sys.stderr.isatty()
        self._last = 0.0

    def __call__(self, message: str) -> None:
        now = time.monotonic()
        if self._tty:
            sys.stderr.write(f"\r[{self._name}] {message}"[:150].ljust(150))
            sys.stderr.flush()
        elif now - self._last >= 5:  # a log, not a terminal: a line every few seconds
            self._last = now
            print(f"[{self._name}] {message}", file=sys.stderr, flush=True)

    def done(self, message: str) -> None:
        if self._tty:
            sys.stderr.write("\r" + " " * 150 + "\r")
        print(f"[{self._name}] {message}", file=sys.stderr, flush=True)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str) -> str:
    """A GitHub table; ``align`` has one letter per column: l(eft) or r(ight)."""
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---:" if a == "r" else "---" for a in align) + "|")
    lines.extend("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)
    return "\n".join(lines)


def write_results(out: Path, name: str, data: dict[str, Any], markdown: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"{name}.json"
    md_path = out / f"{name}.md"
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    md_path.write_text(markdown.rstrip() + "\n")
    return [json_path, md_path]


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (p99 of 1,000 values is the 990th smallest)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def fmt(value: float | None, digits: int = 3) -> str:
    """Round to ``digits`` significant digits, for tables."""
    if value is None:
        return ""
    if value >= 10 ** (digits - 1):
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"
