"""This checkout against para_jwt at other commits, in one run: is a ratio the code's or the host's?

bench_verify's ratio to floor (b) moves with the machine as well as with the code:
on a busy or slow host, Python work beside the signature check costs more per
instruction than on a quiet one, so the same code reads 1.05x one day and 1.15x
another. Here each commit's para_jwt is timed against the same floor, in the
same run, on the same tokens, so the difference between two rows is the code's.

Each source (this checkout, then every ``REV``, whose ``para_jwt/`` is taken with
``git archive``) runs in a child process of its own, children alternating, so a
slow spell of the machine falls on every source alike. A child times, round after
round, a batch of floor (b) calls, a batch of uncached verifies and a batch of
cache hits back to back, and the ratio is taken per round: neighbouring batches
share the machine's state. Tokens and keys are the instruction gate's stored
fixture (``instruction_tokens.json``, a fixed clock), and every source must verify
every token to its user, and refuse a tampered one, before it is timed.

    .venv/bin/python benchmarks/bench_versions.py 2259bc1   # the 0.1.0 benchmark run's commit
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    BENCHMARKS,
    Progress,
    arguments,
    fmt,
    machine,
    machine_line,
    markdown_table,
    write_results,
)
from instructions import TOKENS_FILE, fresh

#: The commit whose code the README's "0.1.0" benchmark column describes.
RELEASE_0_1_0 = "2259bc1"
#: Calls per batch: ~20 ms of uncached verifies, as many ms of hits.
BATCH = {"floor": 256, "uncached": 256, "hit": 8192}


def child(source: Path, rounds: int, batch_scale: float) -> dict[str, Any]:
    """Time floor (b), the uncached verify and a cache hit of the para_jwt in ``source``."""
    sys.path.insert(0, str(source))
    from _floors import floor_b
    from joserfc.jwk import RSAKey

    import para_jwt
    from para_jwt import ParaJWTError, ParaVerifier

    if not Path(para_jwt.__file__).resolve().is_relative_to(source.resolve()):
        raise SystemExit(f"imported {para_jwt.__file__}, not the para_jwt in {source}")
    fixture = json.loads(TOKENS_FILE.read_text())
    audience, tokens = fixture["api_key_id"], fixture["tokens"]
    clock = itertools.repeat(float(fixture["now"])).__next__
    public_key = RSAKey.import_key(fixture["jwks"]["keys"][0]).get_op_key("verify")
    floor = floor_b("RS256", public_key, fixture["kid"], audience, clock=clock)
    pinned = {"jwks": fixture["jwks"], "clock": clock}
    uncached = ParaVerifier(audience, token_cache_size=0, **pinned)
    cached = ParaVerifier(audience, **pinned)
    sizes = {name: max(8, int(calls * batch_scale)) for name, calls in BATCH.items()}

    async def timed(call: Any, inputs: list[str], is_async: bool) -> float:
        start = time.thread_time_ns()
        if is_async:
            for token in inputs:
                await call(token)
        else:
            for token in inputs:
                call(token)
        return (time.thread_time_ns() - start) / 1000 / len(inputs)

    async def run() -> dict[str, list[float]]:
        for token, subject in zip(tokens, fixture["subjects"], strict=True):
            got = [floor(token)["sub"], (await uncached.verify(token)).user_id]
            got.append((await cached.verify(token)).user_id)
            if got != [subject] * 3:
                raise SystemExit(f"a workload did not verify a stored token: {got}")
        header, payload, signature = tokens[0].split(".")
        forged = f"{header}.{payload}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"
        try:
            await uncached.verify(forged)
        except ParaJWTError:
            pass
        else:
            raise SystemExit("a token with a changed signature verified")
        workloads = {
            "floor": (floor, False),
            "uncached": (uncached.verify, True),
            "hit": (cached.verify, True),
        }
        times: dict[str, list[float]] = {name: [] for name in workloads}
        for _ in range(rounds):
            for name, (call, is_async) in workloads.items():
                # New str objects each batch: a server gets a new one per request.
                times[name].append(await timed(call, fresh(tokens, sizes[name]), is_async))
        return times

    return {"para_jwt": para_jwt.__file__, "times": asyncio.run(run())}


def extract(rev: str, into: Path) -> Path:
    """``para_jwt/`` as it was at ``rev``, written under ``into``; returns the folder holding it."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev, "para_jwt"],  # noqa: S607
        cwd=BENCHMARKS.parent,
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise SystemExit(f"git archive {rev}: {archive.stderr.decode(errors='replace').strip()}")
    folder = into / rev
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def run_child(source: Path, rounds: int, batch_scale: float) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(source), str(rounds), str(batch_scale)],
        cwd=BENCHMARKS,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the child for {source} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def summary(times: dict[str, list[float]]) -> dict[str, float]:
    """Per-round ratios to the floor of the same round, and the medians."""
    uncached = [u / f for u, f in zip(times["uncached"], times["floor"], strict=True)]
    return {
        "uncached_over_floor": statistics.median(uncached),
        "uncached_over_floor_q1": statistics.quantiles(uncached, n=4)[0],
        "uncached_over_floor_q3": statistics.quantiles(uncached, n=4)[2],
        "floor_us": statistics.median(times["floor"]),
        "uncached_us": statistics.median(times["uncached"]),
        "hit_us": statistics.median(times["hit"]),
        "hit_us_min": min(times["hit"]),
        "rounds": len(uncached),
    }


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        source, rounds, scale = Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
        print(json.dumps(child(source, rounds, scale)))
        return

    def extra(parser: Any) -> None:
        parser.add_argument(
            "revs",
            nargs="*",
            default=[RELEASE_0_1_0],
            help=f"commits to compare with this checkout (default: {RELEASE_0_1_0}, 0.1.0)",
        )
        parser.add_argument("--children", type=int, default=6, help="children per source")
        parser.add_argument("--rounds", type=int, default=15, help="rounds per child")

    args = arguments(__doc__.splitlines()[0], extra=extra)
    children, rounds, scale = (1, 3, 0.05) if args.quick else (args.children, args.rounds, 1.0)
    progress = Progress("versions")
    info = machine()
    with tempfile.TemporaryDirectory(prefix="para-jwt-versions-") as folder:
        sources = {"this checkout": BENCHMARKS.parent}
        sources.update({rev: extract(rev, Path(folder)) for rev in args.revs})
        times: dict[str, dict[str, list[float]]] = {
            name: {"floor": [], "uncached": [], "hit": []} for name in sources
        }
        for repeat in range(children):
            # Alternate the order too, so that no source always runs first.
            order = list(sources.items())
            for name, source in order if repeat % 2 == 0 else reversed(order):
                progress(f"child {repeat + 1}/{children}: {name}")
                for workload, values in run_child(source, rounds, scale)["times"].items():
                    times[name][workload].extend(values)
    results = {name: summary(values) for name, values in times.items()}
    progress.done("done")
    rows = [
        (
            f"`{name}`" if name in args.revs else name,
            fmt(r["uncached_over_floor"]),
            f"{fmt(r['uncached_over_floor_q1'])}-{fmt(r['uncached_over_floor_q3'])}",
            fmt(r["floor_us"]),
            fmt(r["uncached_us"]),
            fmt(r["hit_us"]),
            fmt(r["hit_us_min"]),
        )
        for name, r in results.items()
    ]
    table = markdown_table(
        [
            "para_jwt",
            "uncached / floor (b)",
            "middle half",
            "floor µs",
            "uncached µs",
            "hit µs",
            "hit µs, fastest round",
        ],
        rows,
        "lrrrrrr",
    )
    markdown = (
        "# bench_versions: this checkout against other commits, in one run\n\n"
        f"Machine: {machine_line(info)}.\n"
        f"{children} children per source, alternating, {rounds} rounds each; RS256, the "
        "instruction gate's stored tokens. Ratios are per round (floor (b) and the uncached "
        "verify in neighbouring batches), then the median; µs are medians of rounds.\n\n"
        f"{table}\n"
    )
    data = {
        "machine": info,
        "method": {
            "quick": args.quick,
            "children": children,
            "rounds": rounds,
            "batch": BATCH,
            "batch_scale": scale,
            "revs": args.revs,
        },
        "results": results,
        "times": times,
    }
    for path in write_results(args.out, "versions", data, markdown):
        print(f"written: {path}")
    print(markdown)


if __name__ == "__main__":
    main()
