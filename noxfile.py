"""The test suite on every supported interpreter this machine has.

``nox`` runs the whole suite on each of Python 3.11, 3.12 and 3.13 that it finds, in a
virtualenv of its own (``.nox/``, reused between runs). ``make test`` and ``make check``
run the suite on ``.venv``'s interpreter themselves and ask nox only for the others
(``nox -s tests -p 3.12 -- <pytest args>``): ``make test`` for a smoke run of a few
core test files, ``make check`` for the reduced profile described in the Makefile.

Interpreters are looked up on ``PATH`` and, when pyenv is installed, among pyenv's
versions (``~/.pyenv/versions/3.12.*``), so a machine whose global pyenv version is 3.11
still finds 3.12 and 3.13. The ones missing are named on stderr and skipped: a
machine without 3.13 still runs the others, and says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nox

SUPPORTED = ("3.11", "3.12", "3.13")  # the classifiers in pyproject.toml claim these

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
# Sessions are only defined for interpreters that exist (below), so CI's default of
# failing on a missing interpreter cannot be tripped by one we already reported.
nox.options.error_on_missing_interpreters = False


def _runs(python: str) -> bool:
    """Whether ``python`` starts (a pyenv shim exists for versions that are not active)."""
    try:
        result = subprocess.run(  # noqa: S603 (our own interpreter candidates)
            [python, "-c", "pass"], capture_output=True, timeout=30, check=False
        )
    except OSError:
        return False
    return result.returncode == 0


def _find(version: str) -> str | None:
    """The path of a working ``python<version>``, or None."""
    candidates = [shutil.which(f"python{version}")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(
        str(path) for path in pyenv_root.glob(f"versions/{version}.*/bin/python{version}")
    )
    return next((c for c in candidates if c and _runs(c)), None)


FOUND = {version: _find(version) for version in SUPPORTED}
PRESENT = [version for version, path in FOUND.items() if path]
for _version, _path in FOUND.items():
    if _path:
        # nox finds an interpreter by its name on PATH: put the one that works first.
        os.environ["PATH"] = f"{Path(_path).parent}{os.pathsep}{os.environ['PATH']}"
_absent = [version for version in SUPPORTED if version not in PRESENT]
print(
    "noxfile: Python "
    + ", ".join(PRESENT)
    + " found"
    + (f"; absent, not tested: {', '.join(_absent)}" if _absent else ""),
    file=sys.stderr,
)


@nox.session(python=PRESENT)
def tests(session: nox.Session) -> None:
    """The test suite; arguments after ``--`` go to pytest."""
    # The install is editable, so only a change of pyproject.toml (the dependencies)
    # needs it again; skipping pip's own check saves several seconds a run.
    stamp = Path(session.virtualenv.location) / ".installed-test"
    if not stamp.exists() or stamp.stat().st_mtime < Path("pyproject.toml").stat().st_mtime:
        session.install("-e", ".[test]")
        stamp.touch()
    session.run("pytest", *session.posargs)
