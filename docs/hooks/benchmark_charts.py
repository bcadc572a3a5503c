"""MkDocs hook: publish the benchmark charts, which live in benchmarks/results/.

The charts are written by `make bench` next to the results they plot; copying them
into docs/ would leave a second copy to go stale. This hook adds each PNG to the
site as ``benchmarks/<name>.png`` instead, so docs/performance.md can show them.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for chart in sorted(RESULTS.glob("*.png")):
        files.append(File.generated(config, f"benchmarks/{chart.name}", abs_src_path=str(chart)))
    return files
