"""libFuzzer target: the key-set importer (``fuzz.targets.check_jwks``).

    make fuzz FUZZ_SECONDS=600          # both targets, bounded
    .venv/bin/python fuzz/fuzz_jwks.py fuzz/corpus-work/jwks fuzz/corpus/jwks \
        -max_total_time=600 -max_len=65536 -timeout=5

Anything but a ``ValueError`` escaping ``KeySet.from_jwks``, or a broken invariant
(see ``fuzz/targets.py``), is a crash: libFuzzer saves the input and stops.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

# Run as a script, the checkout is not on sys.path; the targets import "fuzz.".
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with atheris.instrument_imports(include=["para_jwt", "fuzz", "joserfc"]):
    from fuzz.targets import check_jwks


def main() -> None:
    atheris.Setup(sys.argv, check_jwks)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
