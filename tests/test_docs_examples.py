"""Every Python example in README.md and docs/ runs, as a reader would run it.

Each ```python block is a standalone script: it runs in a process of its own from an
empty directory, in Python's development mode (``-X dev``: asyncio's debug checks,
such as a loop touched from another thread, raise), with ``-W error::ResourceWarning``
and no ``PYTHONPATH`` (the installed package is what it imports), and must exit 0
within 60 s without aiohttp reporting an unclosed session or connector. A block that
defines ``test_`` functions is a test module: pytest runs it, and every test in it
must pass. A line ``--8<-- "path"`` inside a block (pymdownx.snippets) is replaced
by that file, read from the repository's root, as MkDocs does.

A script's process is a fork of tests/_example_server.py, started once per pytest
worker with those flags and that environment, which has already imported what the
examples import: a fresh interpreter would spend most of an example's second on
imports.
``test_the_fork_server_runs_a_script_as_a_fresh_interpreter_does`` holds it to a
fresh interpreter.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

FENCE = re.compile(r"^```python[^\n]*\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
SNIPPET = re.compile(r'^[ \t]*--8<--[ \t]+"(?P<path>[^"]+)"[ \t]*$', re.M)
TEST_FUNCTION = re.compile(r"^(?:async )?def (test_\w+)\(", re.M)
UNCLOSED = ("Unclosed client session", "Unclosed connector")


@dataclass(frozen=True)
class Example:
    page: Path
    line: int
    code: str

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def include_snippets(text: str) -> str:
    """``text`` with each ``--8<-- "path"`` line replaced by the file it names."""

    def read(match: re.Match[str]) -> str:
        path = ROOT / match["path"]
        if not path.is_file():
            raise FileNotFoundError(f"snippet {match['path']!r} does not exist")
        return path.read_text()

    return SNIPPET.sub(read, text)


def pages() -> list[Path]:
    """README.md, the docs pages, and the Markdown files those pages include."""
    found = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    for page in list(found):
        for match in SNIPPET.finditer(page.read_text()):
            included = ROOT / match["path"]
            if included.suffix == ".md" and included not in found:
                found.append(included)
    return found


def examples_in(page: Path) -> list[Example]:
    text = page.read_text()
    return [
        Example(page, text.count("\n", 0, match.start()) + 1, include_snippets(match["body"]))
        for match in FENCE.finditer(text)
    ]


EXAMPLES = [example for page in pages() for example in examples_in(page)]


SERVER = Path(__file__).resolve().parent / "_example_server.py"
FLAGS = ("-X", "dev", "-W", "error::ResourceWarning")
TIMEOUT = 60


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


class ExampleServer:
    """tests/_example_server.py: runs each example in a fork of a preloaded interpreter."""

    def __init__(self, log: Path) -> None:
        self.log = log
        with log.open("w") as stderr:
            self.process = subprocess.Popen(  # noqa: S603 (our own interpreter and file)
                [sys.executable, *FLAGS, str(SERVER)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=environment(),
                text=True,
            )
        self.answer()  # {"ready": true} once its imports are done

    def answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the example server stopped:\n{self.log.read_text()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def run(self, argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
        """``python -X dev -W error::ResourceWarning script.py`` in ``cwd``, output captured."""
        assert self.process.stdin is not None
        [script] = argv
        out, err = cwd.parent / "stdout.txt", cwd.parent / "stderr.txt"
        request = {
            "script": script,
            "cwd": str(cwd),
            "stdout": str(out),
            "stderr": str(err),
            "timeout": TIMEOUT,
        }
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        returncode = self.answer()["returncode"]
        return subprocess.CompletedProcess(argv, returncode, out.read_text(), err.read_text())

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(TIMEOUT)
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture(scope="session")
def example_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExampleServer]:
    server = ExampleServer(tmp_path_factory.mktemp("example-server") / "stderr.txt")
    yield server
    server.close()


def run_fresh(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The plain way the server stands in for: a new interpreter."""
    return subprocess.run(  # noqa: S603 (our own interpreter and files)
        [sys.executable, *FLAGS, *argv],
        cwd=cwd,
        env=environment(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


Runner = Callable[[list[str], Path], subprocess.CompletedProcess[str]]


def run_example(code: str, tmp_path: Path, run_script: Runner) -> subprocess.CompletedProcess[str]:
    """Run ``code`` as a script with ``run_script``, or with pytest in a fresh
    interpreter if it is a test module, from an empty directory in ``tmp_path``.

    A test module does not use the fork server: ``pytest`` rewrites the asserts of
    each plugin's package (para_jwt's among them) as it imports it, which it could
    not do for the modules a server had imported.
    """
    cwd = tmp_path / "example"
    cwd.mkdir(parents=True)
    if TEST_FUNCTION.search(code):
        (cwd / "test_example.py").write_text(code)
        (cwd / "pytest.ini").write_text(
            "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        )
        return run_fresh(["-m", "pytest", "-q", "-p", "no:cacheprovider", "test_example.py"], cwd)
    (cwd / "example.py").write_text(code)
    return run_script(["example.py"], cwd)


def problems(code: str, result: subprocess.CompletedProcess[str]) -> list[str]:
    """What is wrong with a run of ``code``; empty when it did what it should."""
    found = []
    if result.returncode != 0:
        found.append(f"exit status {result.returncode}")
    found += [f"{leak!r} on stderr" for leak in UNCLOSED if leak in result.stderr]
    tests = TEST_FUNCTION.findall(code)
    if tests and f"{len(tests)} passed" not in result.stdout:
        found.append(f"expected {len(tests)} passed tests")
    return found


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: example.name)
def test_the_example_runs(example: Example, tmp_path: Path, example_server: ExampleServer) -> None:
    result = run_example(example.code, tmp_path, example_server.run)
    found = problems(example.code, result)
    assert not found, (
        f"{example.name}: {', '.join(found)}\n"
        f"--- stdout ---\n{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-3000:]}"
    )


def test_every_python_block_is_found() -> None:
    # The fence pattern must not skip a block: count the openings another way.
    for page in pages():
        openings = sum(line.startswith("```python") for line in page.read_text().splitlines())
        assert len(examples_in(page)) == openings, page
    assert len(examples_in(ROOT / "README.md")) >= 3
    # Each integration's page shows it running.
    for name in ("aiohttp", "fastapi", "flask", "django", "sync", "para-endpoints", "cli"):
        assert examples_in(ROOT / "docs" / f"{name}.md"), f"docs/{name}.md has no Python example"


LEAKY = (
    "import asyncio\nimport aiohttp\n\n"
    "async def main():\n    aiohttp.ClientSession()\n\nasyncio.run(main())\n"
)
FAILING_TEST_MODULE = "def test_one():\n    pass\n\n\ndef test_two():\n    assert 1 == 2\n"


def test_an_unclosed_session_is_caught(tmp_path: Path, example_server: ExampleServer) -> None:
    result = run_example(LEAKY, tmp_path, example_server.run)
    assert "'Unclosed client session' on stderr" in problems(LEAKY, result)


def test_a_failing_test_module_is_caught(tmp_path: Path, example_server: ExampleServer) -> None:
    result = run_example(FAILING_TEST_MODULE, tmp_path, example_server.run)
    assert problems(FAILING_TEST_MODULE, result) == ["exit status 1", "expected 2 passed tests"]


# What a script can see of how it was started; the modules the server preloaded
# are the one intended difference.
PROBE = """\
import json, os, sys, threading, warnings

def annotated(x: int) -> None: ...

print(json.dumps({
    "name": __name__, "file": os.path.relpath(__file__), "argv": sys.argv,
    "path0_is_here": sys.path[0] == os.getcwd(), "here": sorted(os.listdir()),
    "flags": repr(sys.flags), "warnings": repr(warnings.filters),
    "threads": threading.active_count(), "stdin": sys.stdin.read(),
    "pythonpath": os.environ.get("PYTHONPATH"), "annotations": repr(annotated.__annotations__),
}))
print("to stderr", file=sys.stderr)
raise SystemExit(3)
"""


RAISES = "def fail():\n    raise ValueError('as a reader would see it')\n\n\nfail()\n"


@pytest.mark.parametrize("code", [PROBE, LEAKY, RAISES], ids=["probe", "leak", "raises"])
def test_the_fork_server_runs_a_script_as_a_fresh_interpreter_does(
    code: str, tmp_path: Path, example_server: ExampleServer
) -> None:
    served = run_example(code, tmp_path / "served", example_server.run)
    fresh = run_example(code, tmp_path / "fresh", run_fresh)
    assert served.returncode == fresh.returncode
    assert problems(code, served) == problems(code, fresh) != []
    if code is PROBE:
        assert json.loads(served.stdout) == json.loads(fresh.stdout)
        assert served.stderr == fresh.stderr == "to stderr\n"
    if code is RAISES:
        where = str(tmp_path / "served"), str(tmp_path / "fresh")
        assert served.stderr.replace(*where) == fresh.stderr


def test_a_snippet_is_read_from_the_repository_and_a_missing_one_fails() -> None:
    assert include_snippets('x = 1\n--8<-- "LICENSE"\n').startswith("x = 1\nMIT License")
    with pytest.raises(FileNotFoundError, match=r"no-such-file\.py"):
        include_snippets('--8<-- "no-such-file.py"\n')


LINK = re.compile(r"\]\((?P<target>[^)\s]+)[^)]*\)|<img [^>]*src=\"(?P<src>[^\"]+)\"")


def test_readme_links_stay_inside_the_repository() -> None:
    # README is read on the repository's page and in the sdist: a link that leaves the
    # repository (../shared/...) is broken for every reader.
    for match in LINK.finditer((ROOT / "README.md").read_text()):
        target = (match["target"] or match["src"]).split("#", 1)[0]
        if not target or re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue  # an anchor, https:, mailto:
        path = (ROOT / target).resolve()
        assert path.is_relative_to(ROOT), f"README links outside the repository: {target}"
        assert path.exists(), f"README links to a missing file: {target}"


# The modules a user imports: each has a section of its own in the API reference.
PUBLIC_MODULES = (
    "para_jwt.errors",
    "para_jwt.aiohttp",
    "para_jwt.starlette",
    "para_jwt.fastapi",
    "para_jwt.flask",
    "para_jwt.django",
    "para_jwt.django.rest_framework",
    "para_jwt.cli",
    "para_jwt.testing",
    "para_jwt.testing.plugin",
)
DIRECTIVE = re.compile(r"^::: (?P<path>[\w.]+)[ \t]*$", re.M)


def test_the_api_reference_covers_every_public_name_and_module() -> None:
    import para_jwt
    import para_jwt.errors

    documented = set(DIRECTIVE.findall((ROOT / "docs" / "reference.md").read_text()))
    errors = set(para_jwt.errors.__all__)
    missing = [
        name
        for name in para_jwt.__all__
        if name != "__version__" and f"para_jwt.{name}" not in documented and name not in errors
    ]
    missing += [module for module in PUBLIC_MODULES if module not in documented]
    assert not missing, f"docs/reference.md has no '::: ...' for {missing}"
