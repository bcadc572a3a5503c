"""A fork server that runs documentation examples, each in a process of its own.

tests/test_docs_examples.py starts this script once per pytest worker, as
``python -X dev -W error::ResourceWarning _example_server.py`` without
``PYTHONPATH``: the flags and the environment a reader's ``python example.py`` has
(the server takes its own directory, tests/, off ``sys.path`` before it imports).
It imports what the examples import (para_jwt and the web frameworks: most of the
second a fresh interpreter takes to run an example), then reads one request a line
on stdin, as JSON::

    {"script": "example.py", "cwd": "...", "stdout": "<file>", "stderr": "<file>",
     "timeout": 60}

and forks a child for it. The child changes to ``cwd``, sends its stdout and stderr
to the two files, runs the script as ``__main__`` and leaves through the
interpreter's normal shutdown (atexit, threads joined, garbage collected), where
aiohttp reports an unclosed session, as in a fresh interpreter. The server answers
``{"returncode": n}`` on stdout, with ``n`` negative for a signal (a child past its
timeout is killed), as ``subprocess`` does.

The server starts no thread and no event loop before forking: a child gets a
process with no other thread, like a fresh interpreter.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import signal
import sys
import threading
import time
import types
import warnings
from typing import Any, NoReturn

# What the examples import that a fresh interpreter would spend its start-up on.
# Importing them changes no state the examples depend on (nothing here configures
# Django or starts a loop). Not pytest or its plugins: ``pytest`` rewrites the asserts
# of a plugin's package as it imports it, and could not in a child of this server.
PRELOAD = (
    "asyncio",
    "para_jwt",
    "para_jwt.testing",
    "para_jwt.aiohttp",
    "para_jwt.starlette",
    "para_jwt.fastapi",
    "para_jwt.flask",
    "para_jwt.django",
    "para_jwt.django.rest_framework",
    "para_jwt.cli",
    "aiohttp.test_utils",
    "httpx",
    "fastapi",
    "starlette.applications",
    "flask",
    "django.conf",
    "django.urls",
    "django.http",
    "django.test",
)


def preload() -> None:
    # A module may add a warnings filter as it is imported (aiohttp.web ignores its
    # NotAppKeyWarning): each child starts with a fresh interpreter's filters, so an
    # example that imports such a module runs with one filter fewer, never more.
    with warnings.catch_warnings():
        for name in PRELOAD:
            importlib.import_module(name)
    if threading.active_count() != 1:
        raise RuntimeError("a preloaded module started a thread: forking would not be safe")


def run_child(request: dict[str, Any]) -> NoReturn:
    """Become the example's process: its directory, its output files, its ``__main__``."""
    os.chdir(request["cwd"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, key in ((1, "stdout"), (2, "stderr")):
        out = os.open(request[key], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, fd)
        os.close(out)
    os.close(null)
    # ``python example.py`` puts the script's directory first on sys.path.
    path = os.path.abspath(request["script"])
    sys.path.insert(0, os.path.dirname(path))
    sys.argv = [request["script"]]
    main = types.ModuleType("__main__")
    main.__file__ = path
    sys.modules["__main__"] = main
    with open(path, encoding="utf-8") as source:
        # dont_inherit: not this module's ``from __future__ import annotations``.
        code = compile(source.read(), path, "exec", dont_inherit=True)
    try:
        exec(code, main.__dict__)  # noqa: S102 (the documentation's own examples)
    except SystemExit:
        raise
    except BaseException as error:
        # As the interpreter reports an uncaught exception, without this frame.
        error.__traceback__ = error.__traceback__ and error.__traceback__.tb_next
        sys.excepthook(type(error), error, error.__traceback__)
        sys.exit(1)
    sys.exit(0)


def wait(pid: int, timeout: float) -> int:
    """The child's exit status as ``subprocess`` reports it; killed past ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        time.sleep(0.005)


def serve() -> None:
    # A fresh ``python example.py`` cannot import tests/'s modules: neither can this.
    sys.path.remove(os.path.dirname(os.path.abspath(__file__)))
    preload()
    # The preloaded objects are no child's garbage: left out of the collections, they
    # cost a child's shutdown about 0.1 s instead of 0.6 s.
    gc.freeze()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            run_child(request)
        returncode = wait(pid, request["timeout"])
        print(json.dumps({"returncode": returncode}), flush=True)


if __name__ == "__main__":
    serve()
