"""Protected endpoints against the same endpoints open, per web framework, loaded over HTTP.

Each framework row serves one trivial JSON handler, open or protected by
para_jwt's integration for that framework (aiohttp: the ``@para_required``
decorator with the verified-token cache on, or off, and app-wide by
``para_middleware``; Starlette: ``ParaMiddleware``; FastAPI: ``Depends(auth)``
on a ``ParaAuth``), token cache on unless a row says otherwise. aiohttp serves
its own apps; Starlette and FastAPI are served by uvicorn (the ``bench`` extra;
without it their rows are skipped and the report says so). Every request, on
the open endpoint too, carries the same ``Authorization: Bearer`` header with a
valid Para token, so the ratio protected/open charges verification, not the
transfer of a 1.4 KB header. Keys come from MockPara on 127.0.0.1.

Process layout, for a 2-core machine: this process runs the server under test
(on its one event loop, so on one core) and an idle MockPara; the load comes
from one other process on the other core: ``wrk`` when it is installed (``make
bench`` installs it), else this script with ``--load-child``, a Python
generator (keep-alive connections, a few requests pipelined on each, each
connection with its own token), one thread either way. Either is a closed
loop: the next request goes when the answer arrives. Endpoints run
round-robin, several repeats; reported: medians of requests/s, p50/p99 latency
and the server's CPU time per request, and each endpoint's throughput over its
framework's open endpoint within each repeat.

Adding a framework is one function returning its rows (see ``aiohttp_rows``)
added to ``FRAMEWORKS``: an ``open`` row first, then the protected ones, each a
``serve(verifiers)`` async context manager that yields the port it listens on.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from _common import (
    Progress,
    arguments,
    fmt,
    machine,
    machine_line,
    markdown_table,
    percentile,
    write_results,
)
from aiohttp import web
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from para_jwt import ParaClaims, ParaVerifier
from para_jwt.aiohttp import para_middleware, para_required, setup
from para_jwt.fastapi import ParaAuth
from para_jwt.starlette import ParaMiddleware
from para_jwt.testing import MockPara

OPEN = "open"


@dataclass(frozen=True)
class Verifiers:
    """What the protected endpoints verify with, shared by every row."""

    cached: ParaVerifier
    uncached: ParaVerifier  # token_cache_size=0


@dataclass(frozen=True)
class Row:
    framework: str
    endpoint: str  # OPEN, or how it is protected
    serve: Callable[[Verifiers], AbstractAsyncContextManager[int]]
    #: False for the open row and for a reference row that measures what the
    #: framework's own machinery costs without para_jwt (it answers 200 without a token).
    protected: bool = True


# --- the frameworks ------------------------------------------------------------------------


async def hello(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


@asynccontextmanager
async def serve_aiohttp(app: web.Application) -> AsyncIterator[int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def aiohttp_rows() -> list[Row]:
    """The endpoint as a user of para_jwt.aiohttp would protect it."""

    def app(
        middlewares: list[Any], verifier: ParaVerifier | None, protect: bool
    ) -> web.Application:
        application = web.Application(middlewares=middlewares)
        if verifier is not None:
            setup(application, verifier)
        application.router.add_get("/hello", para_required(hello) if protect else hello)
        return application

    return [
        Row("aiohttp", OPEN, lambda v: serve_aiohttp(app([], None, False)), protected=False),
        Row(
            "aiohttp",
            "@para_required, token cache on",
            lambda v: serve_aiohttp(app([], v.cached, True)),
        ),
        Row(
            "aiohttp",
            "@para_required, token cache off",
            lambda v: serve_aiohttp(app([], v.uncached, True)),
        ),
        Row(
            "aiohttp",
            "para_middleware, token cache on",
            lambda v: serve_aiohttp(app([para_middleware()], v.cached, False)),
        ),
    ]


def uvicorn_missing() -> bool:
    """The Starlette and FastAPI rows need uvicorn (the ``bench`` extra)."""
    return importlib.util.find_spec("uvicorn") is None


@asynccontextmanager
async def serve_uvicorn(app: Any) -> AsyncIterator[int]:
    """Serve an ASGI app with uvicorn on this event loop, as ``serve_aiohttp`` does.

    No lifespan: the verifiers are shared by every row and closed by ``run``.
    """
    import uvicorn

    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                await task  # raises what stopped it
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await task


async def starlette_hello(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


def starlette_rows() -> list[Row]:
    """The app as a user of para_jwt.starlette would protect it: the middleware."""
    if uvicorn_missing():
        return []

    def app(verifier: ParaVerifier | None) -> Starlette:
        middleware = [] if verifier is None else [Middleware(ParaMiddleware, verifier=verifier)]
        return Starlette(routes=[Route("/hello", starlette_hello)], middleware=middleware)

    return [
        Row("Starlette", OPEN, lambda v: serve_uvicorn(app(None)), protected=False),
        Row("Starlette", "ParaMiddleware, token cache on", lambda v: serve_uvicorn(app(v.cached))),
    ]


async def no_op(request: Request) -> None:
    """A dependency that does nothing: what FastAPI's ``Depends`` costs by itself."""


def fastapi_rows() -> list[Row]:
    """The route as a user of para_jwt.fastapi would protect it: ``Depends(auth)``.

    A reference row has the route depend on a no-op dependency instead: FastAPI
    resolves each dependency per request, and that cost is FastAPI's, paid by any
    ``Depends``, not para_jwt's.
    """
    if uvicorn_missing():
        return []

    def open_app(dependency: bool) -> FastAPI:
        application = FastAPI()
        if not dependency:

            @application.get("/hello")
            async def hello() -> dict[str, bool]:
                return {"ok": True}
        else:

            @application.get("/hello")
            async def hello_with(nothing: None = Depends(no_op)) -> dict[str, bool]:
                return {"ok": True}

        return application

    def protected_app(verifier: ParaVerifier) -> FastAPI:
        auth = ParaAuth(verifier)  # no lifespan=auth.lifespan: run() closes the verifiers
        application = FastAPI()
        auth.install(application)

        # A default rather than Annotated: annotations are strings in this module, and
        # FastAPI resolves them in the module's globals, where ``auth`` is not.
        @application.get("/hello")
        async def hello(claims: ParaClaims = Depends(auth)) -> dict[str, bool]:  # noqa: B008
            return {"ok": True}

        return application

    return [
        Row("FastAPI", OPEN, lambda v: serve_uvicorn(open_app(False)), protected=False),
        Row(
            "FastAPI",
            "reference: Depends(a no-op async dependency), no para_jwt",
            lambda v: serve_uvicorn(open_app(True)),
            protected=False,
        ),
        Row(
            "FastAPI",
            "Depends(auth), token cache on",
            lambda v: serve_uvicorn(protected_app(v.cached)),
        ),
    ]


#: One function per framework; each returns its open row first (or no rows, when
#: its server is not installed).
FRAMEWORKS: list[Callable[[], list[Row]]] = [aiohttp_rows, starlette_rows, fastapi_rows]


# --- the load generator (child process) ----------------------------------------------------


async def load(
    port: int, tokens: list[str], connections: int, depth: int, warmup: float, duration: float
) -> dict[str, Any]:
    """Keep-alive load, ``depth`` requests in flight per connection (HTTP/1.1
    pipelining), the next batch sent when the last answer of one arrives. Counts
    only answers that arrive in the window.

    Pipelining lets one client process keep the server busy: one request at a time
    per connection left this load generator, not the server, the bottleneck.
    """
    started = time.perf_counter()
    window_start, window_end = started + warmup, started + warmup + duration
    latencies: list[float] = []
    errors = 0
    answered = 0  # warm-up included, for the server's CPU per request

    async def connection(token: str) -> None:
        nonlocal errors, answered
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        batch = (
            f"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
        ).encode() * depth
        try:
            while True:
                sent = time.perf_counter()
                if sent >= window_end:
                    return
                writer.write(batch)
                for _ in range(depth):
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line[:15].lower() == b"content-length:":
                            length = int(line[15:])
                    await reader.readexactly(length)
                    received = time.perf_counter()
                    answered += 1
                    if window_start <= sent and received <= window_end:
                        if head.startswith(b"HTTP/1.1 200"):
                            latencies.append(received - sent)
                        else:
                            errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection(tokens[i % len(tokens)]) for i in range(connections)))
    return {
        "requests": len(latencies),
        "all_requests": answered,
        "errors": errors,
        "requests_per_second": len(latencies) / duration,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else None,
        "p99_ms": percentile(latencies, 0.99) * 1000 if latencies else None,
    }


# --- wrk -----------------------------------------------------------------------------------

# wrk's summary as one JSON line on stderr (its own report goes to stdout).
_WRK_SCRIPT = """
wrk.headers["Authorization"] = "Bearer " .. %s
done = function(summary, latency, requests)
  local e = summary.errors
  io.stderr:write(string.format(
    '{"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, "errors": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout + e.status))
end
"""


async def wrk(port: int, script: Path, connections: int, seconds: int) -> dict[str, Any]:
    """One wrk run (one thread: the server needs the other core)."""
    child = await asyncio.create_subprocess_exec(
        "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
        "-s", str(script), f"http://127.0.0.1:{port}/hello",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"wrk failed ({child.returncode}): {err.decode()[-500:]}")
    summary: dict[str, Any] = json.loads(err.decode().strip().splitlines()[-1])
    return summary


# --- the run -----------------------------------------------------------------------------


async def measure(port: int, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Load one endpoint; requests/s, latency, errors and the server's CPU per request."""
    if args.generator == "wrk":
        script = folder / "wrk.lua"
        if args.warmup:
            await wrk(port, script, args.connections, args.warmup)
        cpu_before = time.process_time()
        summary = await wrk(port, script, args.connections, args.duration)
        cpu = time.process_time() - cpu_before
        seconds = summary["duration_us"] / 1e6
        result = {
            "requests": summary["requests"],
            "errors": summary["errors"],
            "requests_per_second": summary["requests"] / seconds,
            "p50_ms": summary["p50_us"] / 1000,
            "p99_ms": summary["p99_us"] / 1000,
        }
        answered = summary["requests"]
    else:
        cpu_before = time.process_time()
        child = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--load-child", str(port), str(folder / "tokens.json"),
            str(args.connections), str(args.depth), str(args.warmup), str(args.duration),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"the load generator failed ({child.returncode})")
        cpu = time.process_time() - cpu_before
        result = json.loads(out)
        answered = result["all_requests"]  # warm-up included, as in the CPU time
    # The server's CPU (this process: the server and an idle MockPara) per request.
    result["server_cpu_us_per_request"] = cpu / answered * 1e6 if answered else None
    return result


async def check_protection(port: int, row: Row) -> None:
    """A request without a token gets 200 from the open row, 401 from the others.

    Without this, a protected row wired by mistake without its protection would
    measure an open endpoint and report a perfect ratio.
    """
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/hello") as response,
    ):
        expected = 401 if row.protected else 200
        if response.status != expected:
            raise RuntimeError(
                f"{row.framework} {row.endpoint}: {response.status} without a token, not {expected}"
            )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    progress = Progress("http")
    info = machine()
    rows = [row for framework in FRAMEWORKS for row in framework()]
    async with MockPara(cache_control="public, max-age=86400") as para:
        verifiers = Verifiers(para.verifier(), para.verifier(token_cache_size=0))
        try:
            await verifiers.cached.refresh()
            await verifiers.uncached.refresh()
            with tempfile.TemporaryDirectory() as name:
                folder = Path(name)
                tokens = [para.issue_jwt() for _ in range(args.connections)]
                (folder / "tokens.json").write_text(json.dumps(tokens))
                (folder / "wrk.lua").write_text(_WRK_SCRIPT % json.dumps(tokens[0]))
                runs: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(rows))}
                for repeat in range(args.repeats):
                    shift = repeat % len(rows)
                    for index in [*range(shift, len(rows)), *range(shift)]:
                        row = rows[index]
                        progress(f"repeat {repeat + 1}/{args.repeats}: {row.framework} "
                                 f"{row.endpoint}")  # fmt: skip
                        async with row.serve(verifiers) as port:
                            await check_protection(port, row)
                            runs[index].append(await measure(port, folder, args))
        finally:
            await verifiers.cached.close()
            await verifiers.uncached.close()
    progress.done("done")
    return report(rows, runs, info, args)


def report(
    rows: list[Row],
    runs: dict[int, list[dict[str, Any]]],
    info: dict[str, Any],
    args: argparse.Namespace,
) -> dict[str, Any]:
    open_row = {row.framework: i for i, row in enumerate(rows) if row.endpoint == OPEN}

    def median(index: int, name: str) -> float | None:
        values = [r[name] for r in runs[index] if r[name] is not None]
        return statistics.median(values) if values else None

    def ratio(index: int) -> float | None:
        # Per repeat, against the same framework's open endpoint in the same repeat.
        opened = runs[open_row[rows[index].framework]]
        pairs = [
            (r["requests_per_second"], o["requests_per_second"])
            for r, o in zip(runs[index], opened, strict=True)
            if o["requests_per_second"]
        ]
        return statistics.median(p / o for p, o in pairs) if pairs else None

    summary = [
        {
            "framework": row.framework,
            "endpoint": row.endpoint,
            "requests_per_second": median(i, "requests_per_second"),
            "p50_ms": median(i, "p50_ms"),
            "p99_ms": median(i, "p99_ms"),
            "server_cpu_us_per_request": median(i, "server_cpu_us_per_request"),
            "throughput_over_open": ratio(i),
            "errors": sum(r["errors"] for r in runs[i]),
        }
        for i, row in enumerate(rows)
    ]
    table = [
        [
            s["framework"],
            s["endpoint"],
            fmt(s["requests_per_second"]),
            fmt(s["throughput_over_open"]),
            fmt(s["p50_ms"]),
            fmt(s["p99_ms"]),
            fmt(s["server_cpu_us_per_request"]),
            s["errors"],
        ]
        for s in summary
    ]
    if args.generator == "wrk":
        load = (
            f"wrk in a separate process, 1 thread, {args.connections} keep-alive connections "
            "on 127.0.0.1, one request in flight on each"
        )
    else:
        load = (
            f"the Python generator (wrk not installed) in a separate process, "
            f"{args.connections} keep-alive connections on 127.0.0.1, {args.depth} requests "
            "pipelined on each, each connection with its own Para token"
        )
    skipped = ["Starlette", "FastAPI"] if uvicorn_missing() else []
    notes = [f"Skipped (uvicorn not installed: `pip install -e '.[bench]'`): "
             f"{', '.join(skipped)}.", ""] if skipped else []  # fmt: skip
    markdown = "\n".join(
        [
            "# bench_http: protected endpoints against the same ones open, per framework",
            "",
            f"Machine: {machine_line(info)}.",
            f"Load: {load}; closed loop; every request, open ones included, carries the same "
            f"Authorization header; {args.repeats} repeats of {args.duration:g} s (after "
            f"{args.warmup:g} s of warm-up), round-robin; medians.",
            "",
            *notes,
            markdown_table(
                [
                    "framework",
                    "endpoint",
                    "requests/s",
                    "× open (per repeat)",
                    "p50 ms",
                    "p99 ms",
                    "server CPU µs/request",
                    "errors",
                ],
                table,
                "llrrrrrr",
            ),
        ]
    )
    return {
        "machine": info,
        "method": {
            "quick": args.quick,
            "generator": args.generator,
            "connections": args.connections,
            "pipelined": args.depth if args.generator == "python" else 1,
            "duration_seconds": args.duration,
            "warmup_seconds": args.warmup,
            "repeats": args.repeats,
        },
        "runs": {f"{row.framework}: {row.endpoint}": runs[i] for i, row in enumerate(rows)},
        "summary": summary,
        "skipped": skipped,
        "markdown": markdown,
    }


def main() -> int:
    if len(sys.argv) == 8 and sys.argv[1] == "--load-child":
        port, token_file, connections, depth, warmup, duration = sys.argv[2:]
        tokens = json.loads(Path(token_file).read_text())
        result = asyncio.run(
            load(int(port), tokens, int(connections), int(depth), float(warmup), float(duration))
        )
        print(json.dumps(result))
        return 0

    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--generator",
            choices=("wrk", "python"),
            default=None,
            help="the load generator (default: wrk when installed, else python)",
        )

    args = arguments(__doc__.split("\n", 1)[0], extra=extra)
    args.generator = args.generator or ("wrk" if shutil.which("wrk") else "python")
    args.connections = 8 if args.quick else 32
    args.depth = 4
    # Many short windows: a burst of other work on this shared machine then spoils
    # one window of one endpoint, and the per-repeat median drops it. wrk counts
    # whole seconds.
    args.duration = (1 if args.generator == "wrk" else 0.3) if args.quick else 2
    # (A quick run with wrk has none: wrk runs whole seconds.)
    args.warmup = (0 if args.generator == "wrk" else 0.1) if args.quick else 1
    args.repeats = 1 if args.quick else 9
    data = asyncio.run(run(args))
    written = write_results(args.out, "http", data, data["markdown"])
    print(data["markdown"])
    print("\nwritten:", ", ".join(str(p) for p in written))
    errors = sum(s["errors"] for s in data["summary"])
    return 0 if errors == 0 else 2


if __name__ == "__main__":
    sys.exit(main())
