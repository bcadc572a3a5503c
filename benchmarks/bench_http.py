"""A protected aiohttp endpoint against the same endpoint unprotected, loaded over HTTP.

The server (this process) serves one trivial JSON handler four ways: open, and
protected by ``para_jwt.aiohttp`` (the ``@para_required`` decorator with the
verified-token cache on, or off; and app-wide by ``para_middleware``). Keys come from
MockPara on 127.0.0.1. The load comes from a separate process (this script
with ``--load-child``): a fixed number of keep-alive connections on 127.0.0.1,
a few requests pipelined on each, each connection sending its own client's Para
token over and over (closed loop: the next requests go as soon as the answers
arrive), the way a logged-in user's requests arrive. Scenarios run round-robin,
several repeats; reported: medians of requests/s, p99 latency and the server's
CPU time per request, and throughput ratios to the open endpoint within each
repeat.

Two processes share this machine's cores with whatever else runs on it; the
server's CPU time per request does not depend on who else is busy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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

from para_jwt import ParaVerifier
from para_jwt.aiohttp import para_middleware, para_required, setup
from para_jwt.testing import MockPara

SCENARIOS = (
    "open",
    "@para_required, token cache on",
    "@para_required, token cache off",
    "para_middleware, token cache on",
)

# --- the server --------------------------------------------------------------------------


async def hello(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def app_for(scenario: str, cached: ParaVerifier, uncached: ParaVerifier) -> web.Application:
    """The endpoint as a user of para_jwt.aiohttp would protect it."""
    if scenario == "open":
        app = web.Application()
        app.router.add_get("/hello", hello)
        return app
    if scenario.startswith("para_middleware"):
        app = web.Application(middlewares=[para_middleware()])
        setup(app, cached)
        app.router.add_get("/hello", hello)
        return app
    app = web.Application()
    setup(app, cached if "cache on" in scenario else uncached)
    app.router.add_get("/hello", para_required(hello))
    return app


async def serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


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


# --- the run -----------------------------------------------------------------------------


async def measure(
    port: int, token_file: Path, args: argparse.Namespace
) -> dict[str, Any]:
    cpu_before = time.process_time()
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--load-child",
        str(port),
        str(token_file),
        str(args.connections),
        str(args.depth),
        str(args.warmup),
        str(args.duration),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"the load generator failed ({child.returncode})")
    result: dict[str, Any] = json.loads(out)
    # The server's CPU (this process: the server and an idle MockPara) per request
    # answered, warm-up included on both sides of the division.
    cpu = time.process_time() - cpu_before
    result["server_cpu_us_per_request"] = (
        cpu / result["all_requests"] * 1e6 if result["all_requests"] else None
    )
    return result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    progress = Progress("http")
    info = machine()
    runners: list[web.AppRunner] = []
    async with MockPara(cache_control="public, max-age=86400") as para:
        cached = para.verifier()
        uncached = para.verifier(token_cache_size=0)
        ports = {}
        try:
            for verifier in (cached, uncached):
                await verifier.refresh()
            for scenario in SCENARIOS:
                runner, ports[scenario] = await serve(app_for(scenario, cached, uncached))
                runners.append(runner)
            with tempfile.TemporaryDirectory() as folder:
                token_file = Path(folder) / "tokens.json"
                tokens = [para.issue_jwt() for _ in range(args.connections)]
                token_file.write_text(json.dumps(tokens))
                runs: dict[str, list[dict[str, Any]]] = {s: [] for s in SCENARIOS}
                for repeat in range(args.repeats):
                    shift = repeat % len(SCENARIOS)
                    order = SCENARIOS[shift:] + SCENARIOS[:shift]
                    for scenario in order:
                        progress(f"repeat {repeat + 1}/{args.repeats}: {scenario}")
                        runs[scenario].append(await measure(ports[scenario], token_file, args))
        finally:
            for runner in runners:
                await runner.cleanup()
            await cached.close()
            await uncached.close()
    progress.done("done")
    return report(runs, info, args)


def report(
    runs: dict[str, list[dict[str, Any]]], info: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    def median(scenario: str, name: str) -> float | None:
        values = [r[name] for r in runs[scenario] if r[name] is not None]
        return statistics.median(values) if values else None

    def ratio(scenario: str) -> float | None:
        # Per repeat, against the open endpoint measured in the same repeat.
        pairs = [
            (r["requests_per_second"], o["requests_per_second"])
            for r, o in zip(runs[scenario], runs["open"], strict=True)
            if o["requests_per_second"]
        ]
        return statistics.median(p / o for p, o in pairs) if pairs else None

    summary = {
        scenario: {
            "requests_per_second": median(scenario, "requests_per_second"),
            "p50_ms": median(scenario, "p50_ms"),
            "p99_ms": median(scenario, "p99_ms"),
            "server_cpu_us_per_request": median(scenario, "server_cpu_us_per_request"),
            "throughput_over_open": ratio(scenario),
            "errors": sum(r["errors"] for r in runs[scenario]),
        }
        for scenario in SCENARIOS
    }
    rows = [
        [
            scenario,
            fmt(s["requests_per_second"]),
            fmt(s["throughput_over_open"]),
            fmt(s["p50_ms"]),
            fmt(s["p99_ms"]),
            fmt(s["server_cpu_us_per_request"]),
            s["errors"],
        ]
        for scenario, s in summary.items()
    ]
    markdown = "\n".join(
        [
            "# bench_http: a protected aiohttp endpoint against the same one unprotected",
            "",
            f"Machine: {machine_line(info)}.",
            f"Load: a separate process, {args.connections} keep-alive connections on 127.0.0.1, "
            f"{args.depth} requests pipelined on each, closed loop, each connection with its own "
            f"Para token; {args.repeats} repeats of "
            f"{args.duration:g} s (after {args.warmup:g} s of warm-up), round-robin; medians.",
            "",
            markdown_table(
                [
                    "endpoint",
                    "requests/s",
                    "× open (per repeat)",
                    "p50 ms",
                    "p99 ms",
                    "server CPU µs/request",
                    "errors",
                ],
                rows,
                "lrrrrrr",
            ),
        ]
    )
    return {
        "machine": info,
        "method": {
            "quick": args.quick,
            "connections": args.connections,
            "pipelined": args.depth,
            "duration_seconds": args.duration,
            "warmup_seconds": args.warmup,
            "repeats": args.repeats,
        },
        "runs": runs,
        "summary": summary,
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
    args = arguments(__doc__.split("\n", 1)[0])
    args.connections = 8 if args.quick else 32
    args.depth = 4
    # Many short windows: a burst of other work on this shared machine then
    # spoils one window of one scenario, and the per-repeat median drops it.
    args.duration = 0.3 if args.quick else 2.0
    args.warmup = 0.1 if args.quick else 0.3
    args.repeats = 1 if args.quick else 9
    data = asyncio.run(run(args))
    written = write_results(args.out, "http", data, data["markdown"])
    print(data["markdown"])
    print("\nwritten:", ", ".join(str(p) for p in written))
    errors = sum(s["errors"] for s in data["summary"].values())
    return 0 if errors == 0 else 2


if __name__ == "__main__":
    sys.exit(main())
