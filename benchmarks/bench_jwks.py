"""Key-cache behaviour under load, against MockPara (a real Para API host on 127.0.0.1).

* cold herd: 1,000 concurrent verifies on an empty cache; JWKS requests made and
  the latency each verify saw (the fetch answers after ``--latency`` seconds, a
  stand-in for the network to Para).
* junk-kid floods: tokens naming kids Para never published (random kids, and one
  kid repeated), spread over a span of (injected) time; JWKS requests made
  against the documented bound, ``refetch_budget`` per ``cooldown`` window, and
  the CPU cost of refusing one such token.
* rotation: Para starts signing with a new key. Under steady load with the
  refetch budget available, the wall time and requests until a new-key token
  verifies; and right after a flood spent the budget, the (injected) time until
  it verifies, which the cooldown bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import secrets
import statistics
import sys
import time
from typing import Any

from _common import Progress, arguments, fmt, machine, machine_line, markdown_table, write_results

from para_jwt import InvalidTokenError, JWKSError, ParaVerifier
from para_jwt.testing import MockPara

COOLDOWN = 30.0
REFETCH_BUDGET = 2


class Clock:
    """Seconds since the epoch that move only when told (shared by mock and verifier)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def monotonic(self) -> float:
        # The key cache measures its durations on this one; here both clocks move together.
        return self.now


def with_kid(token: str, kid: str) -> str:
    """The token with its header's kid replaced (the signature no longer matches)."""
    header_b64, payload_b64, signature_b64 = token.split(".")
    header = json.loads(base64.urlsafe_b64decode(header_b64 + "=" * (-len(header_b64) % 4)))
    header["kid"] = kid
    raw = json.dumps(header, separators=(",", ":")).encode()
    new_header = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return f"{new_header}.{payload_b64}.{signature_b64}"


def verifier(para: MockPara, **options: Any) -> ParaVerifier:
    return para.verifier(cooldown=COOLDOWN, refetch_budget=REFETCH_BUDGET, **options)  # type: ignore[no-any-return]


# --- cold herd ---------------------------------------------------------------------------


async def cold_herd(size: int, latency: float, repeats: int, progress: Progress) -> dict[str, Any]:
    runs = []
    async with MockPara() as para:
        para.set_latency(latency)
        tokens = [para.issue_jwt() for _ in range(min(size, 50))]
        for repeat in range(repeats):
            progress(f"cold herd {repeat + 1}/{repeats}: {size} concurrent verifies, empty cache")
            para.reset_counters()
            latencies: list[float] = []
            async with verifier(para) as v:
                start = time.perf_counter()

                async def one(
                    token: str, start: float = start, latencies: list[float] = latencies
                ) -> None:
                    await v.verify(token)
                    latencies.append(time.perf_counter() - start)

                await asyncio.gather(*(one(tokens[i % len(tokens)]) for i in range(size)))
            runs.append(
                {
                    "jwks_requests": para.jwks_requests,
                    "p50_ms": statistics.median(latencies) * 1000,
                    "p99_ms": sorted(latencies)[math.ceil(0.99 * len(latencies)) - 1] * 1000,
                    "max_ms": max(latencies) * 1000,
                    "verified": len(latencies),
                }
            )
    return {
        "concurrent_verifies": size,
        "fetch_latency_ms": latency * 1000,
        "runs": runs,
        "jwks_requests": max(r["jwks_requests"] for r in runs),
        "p50_ms": statistics.median(r["p50_ms"] for r in runs),
        "p99_ms": statistics.median(r["p99_ms"] for r in runs),
    }


# --- junk-kid floods -------------------------------------------------------------------


async def flood(
    count: int, span: float, random_kids: bool, progress: Progress
) -> dict[str, Any]:
    clock = Clock()
    async with MockPara(clock=clock) as para:
        template = para.issue_jwt(expires_in=span + 3600)
        junk_kid = secrets.token_urlsafe(32)
        tokens = [
            with_kid(template, secrets.token_urlsafe(32) if random_kids else junk_kid)
            for _ in range(count)
        ]
        async with verifier(para, clock=clock) as v:
            await v.verify(template)  # warm: the key set is cached
            para.reset_counters()
            refused = 0
            cpu = 0.0
            step = span / count
            for index, token in enumerate(tokens):
                if index % 500 == 0:
                    kind = "random kids" if random_kids else "one kid"
                    progress(f"flood ({kind}): {index}/{count}")
                clock.now += step
                started = time.thread_time()
                try:
                    await v.verify(token)
                except InvalidTokenError:
                    refused += 1
                cpu += time.thread_time() - started
            # Para's real key still verifies after the flood, with no extra request.
            requests = para.jwks_requests
            await v.verify(template)
            assert para.jwks_requests == requests
    windows = math.ceil(span / COOLDOWN)
    return {
        "tokens": count,
        "kids": "random, all distinct" if random_kids else "one kid, repeated",
        "span_seconds": span,
        "refused": refused,
        "jwks_requests": requests,
        # The budget restarts with every window the span touches.
        "bound": REFETCH_BUDGET * windows,
        "cpu_us_per_refused_token": cpu / count * 1e6,
    }


# --- rotation ----------------------------------------------------------------------------


async def rotation_under_load(
    latency: float, workers: int, repeats: int, progress: Progress
) -> dict[str, Any]:
    runs = []
    async with MockPara() as para:
        para.set_latency(latency)
        for repeat in range(repeats):
            progress(f"rotation under load {repeat + 1}/{repeats}: {workers} busy clients")
            old_tokens = [para.issue_jwt() for _ in range(workers)]
            async with verifier(para) as v:
                await v.refresh()
                stop = asyncio.Event()
                served = 0

                async def client(token: str, stop: asyncio.Event = stop) -> None:
                    nonlocal served
                    while not stop.is_set():
                        await v.verify(token)
                        served += 1
                        await asyncio.sleep(0)

                load = [asyncio.create_task(client(t)) for t in old_tokens]
                await asyncio.sleep(0.05)
                para.reset_counters()
                para.rotate()
                new_token = para.issue_jwt()
                started = time.perf_counter()
                attempts = 0
                while True:
                    attempts += 1
                    try:
                        await v.verify(new_token)
                        break
                    except (InvalidTokenError, JWKSError):
                        await asyncio.sleep(0.001)
                elapsed = time.perf_counter() - started
                stop.set()
                await asyncio.gather(*load)
                runs.append(
                    {
                        "ms_until_new_key_verifies": elapsed * 1000,
                        "jwks_requests": para.jwks_requests,
                        "attempts": attempts,
                        "old_token_verifies_meanwhile": served,
                    }
                )
    return {
        "fetch_latency_ms": latency * 1000,
        "busy_clients": workers,
        "runs": runs,
        "ms_until_new_key_verifies": statistics.median(
            r["ms_until_new_key_verifies"] for r in runs
        ),
        "jwks_requests": max(r["jwks_requests"] for r in runs),
    }


async def rotation_after_flood(progress: Progress) -> dict[str, Any]:
    progress("rotation right after a junk-kid flood spent the refetch budget")
    clock = Clock()
    async with MockPara(clock=clock) as para:
        template = para.issue_jwt(expires_in=3600)
        async with verifier(para, clock=clock) as v:
            await v.verify(template)
            for _ in range(REFETCH_BUDGET * 5):
                with contextlib.suppress(InvalidTokenError):
                    await v.verify(with_kid(template, secrets.token_urlsafe(32)))
            para.reset_counters()
            para.rotate()
            new_token = para.issue_jwt(expires_in=3600)
            waited = 0.0
            attempts = 0
            while True:
                attempts += 1
                try:
                    await v.verify(new_token)
                    break
                except InvalidTokenError:
                    clock.now += 1.0
                    waited += 1.0
    return {
        "seconds_until_new_key_verifies": waited,
        "bound_seconds": COOLDOWN,
        "attempts": attempts,
        "jwks_requests": para.jwks_requests,
    }


# --- the run -----------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    progress = Progress("jwks")
    info = machine()
    herd = await cold_herd(args.herd, args.latency, args.repeats, progress)
    floods = [
        await flood(args.flood, args.span, True, progress),
        await flood(args.flood, args.span, False, progress),
    ]
    rotation = await rotation_under_load(args.latency, args.workers, args.repeats, progress)
    after_flood = await rotation_after_flood(progress)
    progress.done("done")
    markdown = "\n".join(
        [
            "# bench_jwks: the key cache under load (MockPara on 127.0.0.1)",
            "",
            f"Machine: {machine_line(info)}.",
            f"Verifier: cooldown {COOLDOWN:g} s, refetch_budget {REFETCH_BUDGET}; JWKS answers "
            f"after {args.latency * 1000:g} ms (a stand-in for the network to Para).",
            "",
            "## Cold herd (empty cache)",
            "",
            markdown_table(
                ["concurrent verifies", "JWKS requests", "p50 ms", "p99 ms", "repeats"],
                [
                    [
                        herd["concurrent_verifies"],
                        herd["jwks_requests"],
                        fmt(herd["p50_ms"]),
                        fmt(herd["p99_ms"]),
                        len(herd["runs"]),
                    ]
                ],
                "rrrrr",
            ),
            "",
            "## Junk-kid floods (warm cache)",
            "",
            markdown_table(
                [
                    "tokens",
                    "kids",
                    "over (s)",
                    "JWKS requests",
                    "bound",
                    "µs CPU per refused token",
                ],
                [
                    [
                        f["tokens"],
                        f["kids"],
                        fmt(f["span_seconds"]),
                        f["jwks_requests"],
                        f["bound"],
                        fmt(f["cpu_us_per_refused_token"]),
                    ]
                    for f in floods
                ],
                "rlrrrr",
            ),
            "",
            f"Bound: refetch_budget × windows of `cooldown` the span touches "
            f"({REFETCH_BUDGET} × ⌈span / {COOLDOWN:g}⌉).",
            "",
            "## Rotation (Para signs with a new key)",
            "",
            markdown_table(
                ["scenario", "until a new-key token verifies", "JWKS requests"],
                [
                    [
                        f"{rotation['busy_clients']} busy clients, refetch budget available",
                        f"{fmt(rotation['ms_until_new_key_verifies'])} ms (wall)",
                        rotation["jwks_requests"],
                    ],
                    [
                        "right after a junk-kid flood spent the budget",
                        f"{fmt(after_flood['seconds_until_new_key_verifies'])} s "
                        f"(clock; bound: cooldown {COOLDOWN:g} s)",
                        after_flood["jwks_requests"],
                    ],
                ],
                "lrr",
            ),
        ]
    )
    return {
        "machine": info,
        "method": {
            "quick": args.quick,
            "cooldown": COOLDOWN,
            "refetch_budget": REFETCH_BUDGET,
            "fetch_latency_seconds": args.latency,
            "repeats": args.repeats,
        },
        "cold_herd": herd,
        "floods": floods,
        "rotation_under_load": rotation,
        "rotation_after_flood": after_flood,
        "markdown": markdown,
    }


def main() -> int:
    args = arguments(__doc__.split("\n", 1)[0])
    args.herd = 100 if args.quick else 1000
    args.flood = 500 if args.quick else 10_000
    args.span = 300.0  # ten cooldown windows
    args.latency = 0.005 if args.quick else 0.02
    args.repeats = 1 if args.quick else 5
    args.workers = 4 if args.quick else 50
    data = asyncio.run(run(args))
    written = write_results(args.out, "jwks", data, data["markdown"])
    print(data["markdown"])
    print("\nwritten:", ", ".join(str(p) for p in written))
    within = all(f["jwks_requests"] <= f["bound"] for f in data["floods"])
    single_flight = data["cold_herd"]["jwks_requests"] == 1
    return 0 if within and single_flight else 2


if __name__ == "__main__":
    sys.exit(main())
