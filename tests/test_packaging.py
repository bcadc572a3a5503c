"""The package as a user gets it: the built wheel and sdist, and an editable install.

The wheel is built from the sdist (``python -m build``'s default), so a file left out
of either fails here: it is installed into a fresh virtualenv outside the checkout,
and the demo and the README's quick start must pass from there. A second test runs
``mypy --strict`` on a small app against this checkout's editable install, which
type-checks only if the install is one type checkers can follow (hatchling's .pth).
"""

from __future__ import annotations

import email
import json
import os
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

import para_jwt
from tests.test_quickstart import EXPECTED, run_quick_start

# Slow (a build, a virtualenv, mypy): `make check` (CI) runs them after `make test`
# (see the Makefile), not in the main suite.
pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parent.parent
VERSION = para_jwt.__version__


def run(*command: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(  # noqa: S603 (our own tools and files)
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist, and the wheel built from it, by ``python -m build``."""
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: the build backend (hatchling) comes with the test extra, so no
    # download is needed for each run.
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT, cwd=out)
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


def test_the_distributions_are_named_for_the_one_version(dist: dict[str, Path]) -> None:
    assert dist["wheel"].name == f"para_jwt-{VERSION}-py3-none-any.whl"
    assert dist["sdist"].name == f"para_jwt-{VERSION}.tar.gz"


def test_twine_check_strict_passes(dist: dict[str, Path]) -> None:
    result = run(sys.executable, "-m", "twine", "check", "--strict", *dist.values(), cwd=ROOT)
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_the_wheel_holds_the_package_its_types_and_its_entry_points(
    dist: dict[str, Path],
) -> None:
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        names = set(wheel.namelist())
        info = f"para_jwt-{VERSION}.dist-info"
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
        metadata = email.message_from_bytes(wheel.read(f"{info}/METADATA"))
    sources = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "para_jwt").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert "para_jwt/py.typed" in sources
    assert sources <= names, sorted(sources - names)
    assert not {name for name in names if name.startswith(("tests/", "benchmarks/", "fuzz/"))}
    assert f"{info}/licenses/LICENSE" in names
    assert "para-jwt = para_jwt.cli:main" in entry_points
    assert "para_jwt = para_jwt.testing.plugin" in entry_points
    assert metadata["Version"] == VERSION
    assert metadata["Requires-Python"] == ">=3.11"
    assert metadata["Description-Content-Type"] == "text/markdown"


def test_the_sdist_holds_what_the_tests_and_docs_need(dist: dict[str, Path]) -> None:
    with tarfile.open(dist["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    for needed in ("para_jwt/py.typed", "pyproject.toml", "README.md", "CHANGELOG.md",
                   "SECURITY.md", "LICENSE", "mkdocs.yml", "docs/index.md",
                   "examples/aiohttp_app.py", "tests/test_packaging.py"):
        assert needed in names, needed


def test_the_wheel_works_in_a_fresh_virtualenv(dist: dict[str, Path], tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)  # this pip installs into it: --python below
    python = env_dir / "bin" / "python"
    pip = (sys.executable, "-m", "pip", "--python", python)
    run(*pip, "install", "--quiet", dist["wheel"], cwd=tmp_path)

    # The package comes from the virtualenv, not from this checkout.
    where = run(python, "-c", "import para_jwt; print(para_jwt.__file__)", cwd=tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(env_dir)

    demo = run(env_dir / "bin" / "para-jwt", "demo", cwd=tmp_path, timeout=120)
    assert "checks passed" in demo.stdout

    result = run_quick_start(str(python), tmp_path)
    assert result.returncode == 0, result.stderr
    assert EXPECTED.fullmatch(result.stdout), result.stdout


GOOD_APP = '''\
from para_jwt import ParaClaims, ParaVerifier


async def user_of(verifier: ParaVerifier, token: str) -> str:
    claims: ParaClaims = await verifier.verify(token)
    return claims.user_id
'''

BAD_APP = '''\
from para_jwt import ParaVerifier


async def user_of(verifier: ParaVerifier, token: str) -> int:
    return (await verifier.verify(token)).user_id
'''


def test_mypy_strict_passes_on_an_app_against_the_editable_install(tmp_path: Path) -> None:
    installed = [
        path
        for entry in sys.path
        if entry and Path(entry).is_dir()
        for path in Path(entry).glob("para_jwt-*.dist-info/direct_url.json")
    ]
    assert installed, "para_jwt is not installed in this environment"
    if not json.loads(installed[0].read_text()).get("dir_info", {}).get("editable"):
        pytest.skip("this environment's para_jwt is not an editable install")
    (tmp_path / "good_app.py").write_text(GOOD_APP)
    (tmp_path / "bad_app.py").write_text(BAD_APP)
    # A cache of its own: the options differ from `make lint`'s, and sharing one cache
    # would make each invalidate the other's.
    cache = ROOT / ".mypy_cache" / "editable-app"
    command = [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache)]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MYPYPATH")}
    result = subprocess.run(  # noqa: S603 (our own interpreter)
        [*command, "good_app.py", "bad_app.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # The app that is right passes; the one that returns a str as an int fails, which
    # shows mypy read para_jwt's types rather than treating it as Any.
    lines = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert len(lines) == 1, result.stdout
    assert lines[0].startswith("bad_app.py:5: error: Incompatible return value type"), lines
    assert "Cannot find implementation" not in result.stdout
