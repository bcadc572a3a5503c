"""µs per verify: para_jwt against the floor and the Python JWT libraries, one process.

The method of shared/research/perf-baseline.md: Para-shaped tokens (MockPara's
``issue_jwt``), keys generated per run (RSA-2048, P-256, Ed25519), every case
first checked to accept the good token and to reject a tampered signature, an
expired and a wrong-``aud`` token (validly signed) and ``alg: none`` (a case
failing that is refused: printed, never timed). Then round-robin: each repeat
walks every case (the start rotated per repeat) running a batch of N calls, N
calibrated to ~0.1 s a batch, gc disabled inside a batch; median of the
repeats; ratios to the floors (a) and (b) measured in the same run.

Floors (a) and (b): see ``_floors.py``.

Also measured in a child process: bytes per verified-token cache entry and the
peak RSS of a process whose cache is full at the default size.
"""

from __future__ import annotations

import argparse
import asyncio
import binascii
import gc
import inspect
import json
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from itertools import cycle, islice
from pathlib import Path
from typing import Any

from _common import (
    TIMERS,
    Progress,
    arguments,
    fmt,
    machine,
    machine_line,
    markdown_table,
    write_results,
)
from _floors import floor_a, floor_b
from joserfc.jwk import ECKey, OKPKey, RSAKey

import para_jwt
from para_jwt import ParaVerifier
from para_jwt.testing import MockPara

ALGS = ("RS256", "ES256", "EdDSA")
AUD = "8c67b747-1f0e-4e7a-9c43-2a1d5b0e9f11"
OTHER_AUD = "0b7e2c1a-5d4f-4e3b-8a29-6c1f0e9d8b7a"
B_ROW = "(b) cryptography + hand-written parse/checks (json)"
A_ROW = "(a) cryptography verify only (physical floor)"
UNCACHED_ROW = "para_jwt verify, uncached (token_cache_size=0)"
MISSES_ROW = "para_jwt verify, cache on, every lookup a miss"
KEEPS_ROW = "para_jwt verify, uncached, the caller keeps its last results"
HIT_ROW = "para_jwt verify, verified-token cache hit"
#: Threads calling the sync verifier's cache while the contended row is timed.
CONTENDERS = 3
SYNC_HIT_ROW = "para_jwt SyncParaVerifier, cache hit"
SYNC_UNCACHED_ROW = "para_jwt SyncParaVerifier, uncached (token_cache_size=0)"
SYNC_CONTENDED_ROW = f"para_jwt SyncParaVerifier, cache hit, {CONTENDERS} other threads hitting"
SYNC_ROWS = (SYNC_HIT_ROW, SYNC_UNCACHED_ROW, SYNC_CONTENDED_ROW)
SYNC_SKIPPED = "skipped: SyncParaVerifier not available"
MAX_CALLS = 40_000


class Unsupported(Exception):
    """The library cannot do this algorithm: the row reads n/a."""


# --- tokens ------------------------------------------------------------------------------


@dataclass
class Tokens:
    good: list[str]
    user_ids: dict[str, str]
    tampered: str
    expired: str
    wrong_aud: str
    alg_none: str


def tamper(token: str) -> str:
    """Change one base64url character in the middle of the signature."""
    head, _, signature = token.rpartition(".")
    middle = len(signature) // 2
    swapped = "B" if signature[middle] == "A" else "A"
    return f"{head}.{signature[:middle]}{swapped}{signature[middle + 1 :]}"


def make_tokens(mock: MockPara, count: int) -> Tokens:
    good = [mock.issue_jwt() for _ in range(count)]
    user_ids = {token: _payload(token)["data"]["userId"] for token in good}
    return Tokens(
        good=good,
        user_ids=user_ids,
        tampered=tamper(good[0]),
        expired=mock.issue_jwt(expires_in=-60),
        wrong_aud=mock.issue_jwt(audience=OTHER_AUD),
        alg_none=mock.issue_jwt(alg="none"),
    )


def _payload(token: str) -> dict[str, Any]:
    segment = token.split(".")[1]
    return json.loads(binascii.a2b_base64(segment.translate(str.maketrans("-_", "+/")) + "=="))


# --- the peers -------------------------------------------------------------------------
# Each returns the verify callable (key imported once, outside the timing). ``exp`` is
# required wherever the library can require it, as in perf-baseline.md.


def peer_pyjwt(alg: str, jwk: dict[str, Any], public_key: Any) -> Callable[[str], Any]:
    import jwt

    options = {"require": ["exp"]}
    return lambda token: jwt.decode(
        token, public_key, algorithms=[alg], audience=AUD, options=options
    )


def peer_pyjwkclient(alg: str, jwk: dict[str, Any], public_key: Any) -> Callable[[str], Any]:
    import jwt

    # Pre-filled JWK-set cache for an hour: it never fetches (the URL is unused).
    client = jwt.PyJWKClient("http://127.0.0.1:9/.well-known/jwks.json", lifespan=3600)
    assert client.jwk_set_cache is not None
    client.jwk_set_cache.put({"keys": [jwk]})
    options = {"require": ["exp"]}

    def call(token: str) -> Any:
        key = client.get_signing_key_from_jwt(token)
        return jwt.decode(token, key.key, algorithms=[alg], audience=AUD, options=options)

    return call


def peer_joserfc(alg: str, jwk: dict[str, Any], public_key: Any) -> Callable[[str], Any]:
    from joserfc import jwt
    from joserfc.jwk import import_key

    key = import_key(jwk)
    registry = jwt.JWTClaimsRegistry(exp={"essential": True}, aud={"essential": True, "value": AUD})
    algorithms = [alg]

    def call(token: str) -> Any:
        decoded = jwt.decode(token, key, algorithms=algorithms)
        registry.validate(decoded.claims)
        return decoded.claims

    return call


def peer_authlib(alg: str, jwk: dict[str, Any], public_key: Any) -> Callable[[str], Any]:
    # authlib turns its own deprecation warning back on ('always') when imported;
    # ignoring it must come after that and before authlib.jose warns.
    from authlib.deprecate import AuthlibDeprecationWarning

    warnings.filterwarnings("ignore", category=AuthlibDeprecationWarning)
    from authlib.jose import JsonWebKey, JsonWebToken

    key = JsonWebKey.import_key(jwk)
    decoder = JsonWebToken([alg])
    options = {"exp": {"essential": True}, "aud": {"essential": True, "value": AUD}}

    def call(token: str) -> Any:
        claims = decoder.decode(token, key, claims_options=options)
        claims.validate()
        return claims

    return call


def peer_jwcrypto(alg: str, jwk: dict[str, Any], public_key: Any) -> Callable[[str], Any]:
    from jwcrypto import jwk as jwcrypto_jwk
    from jwcrypto import jwt

    key = jwcrypto_jwk.JWK(**jwk)
    checks = {"exp": None, "aud": AUD}
    algs = [alg]
    return lambda token: json.loads(
        jwt.JWT(jwt=token, key=key, algs=algs, check_claims=checks).claims
    )


def peer_python_jose(alg: str, jwk: dict[str, Any], public_key: Any) -> Callable[[str], Any]:
    if alg == "EdDSA":
        raise Unsupported("python-jose has no EdDSA")
    from jose import jwk as jose_jwk
    from jose import jwt

    key = jose_jwk.construct(jwk, alg)
    options = {"require_exp": True}
    return lambda token: jwt.decode(token, key, algorithms=[alg], audience=AUD, options=options)


PEERS: list[tuple[str, Callable[[str, dict[str, Any], Any], Callable[[str], Any]]]] = [
    ("(c) PyJWT jwt.decode(key object)", peer_pyjwt),
    ("(d) PyJWT PyJWKClient (cached set) + decode", peer_pyjwkclient),
    ("(e) joserfc jwt.decode + JWTClaimsRegistry, imported key", peer_joserfc),
    ("(f) authlib.jose decode + validate", peer_authlib),
    ("(g) jwcrypto JWT(jwt=, key=, check_claims=)", peer_jwcrypto),
    ("(h) python-jose jwt.decode(key object)", peer_python_jose),
]


# --- cases, sanity, timing ---------------------------------------------------------------


@dataclass
class Case:
    row: str
    alg: str
    call: Callable[[Any], Any] | None = None
    is_async: bool = False
    #: What the calls get, cycled; (a) gets pre-split tuples instead of tokens.
    inputs: list[Any] = field(default_factory=list)
    status: str = "ok"  # ok | refused | n/a | not installed
    note: str = ""
    n: int = 0
    runs: list[float] = field(default_factory=list)
    #: One endless cycle over ``inputs``, so each batch continues where the last one
    #: stopped: a batch restarting at the first input would find the start of the
    #: "misses" pool still in the cache.
    feed: Iterator[Any] | None = None
    #: Blocking calls (SyncParaVerifier) run in a worker thread, timed there: the
    #: event loop thread must stay free to serve MockPara's key fetches.
    in_thread: bool = False
    #: Entered around each timed batch (other threads calling, for the contended row).
    around: Callable[[], AbstractContextManager[Any]] = nullcontext
    #: With the cpu timer, time the whole process: a call that hands work to another
    #: thread (a key fetch on SyncParaVerifier's loop thread) is then charged for it.
    process_cpu: bool = False

    @property
    def median(self) -> float | None:
        return statistics.median(self.runs) if self.runs else None


async def _result(case: Case, item: Any) -> Any:
    assert case.call is not None
    if case.in_thread:
        return await asyncio.to_thread(case.call, item)
    result = case.call(item)
    return await result if case.is_async else result


def _user_id(result: Any) -> Any:
    if hasattr(result, "user_id"):
        return result.user_id
    return result["data"]["userId"]


async def sanity(case: Case, tokens: Tokens, prepare: Callable[[str], Any] | None) -> str | None:
    """None if the case accepts the good token and rejects the bad ones, else why not."""
    convert = prepare or (lambda token: token)
    token = tokens.good[0]
    try:
        result = await _result(case, convert(token))
        if prepare is None and _user_id(result) != tokens.user_ids[token]:
            return "accepted the good token with the wrong userId"
        hit_rows = (HIT_ROW, SYNC_HIT_ROW, SYNC_CONTENDED_ROW)
        if case.row in hit_rows and await _result(case, token) is not result:
            return "a repeated token was not a cache hit"
    except Exception as exc:
        return f"refused the good token: {type(exc).__name__}: {exc}"
    bad = {"tampered": tokens.tampered}
    if prepare is None:  # (a) checks nothing but the signature, by definition
        bad.update(expired=tokens.expired, wrong_aud=tokens.wrong_aud, alg_none=tokens.alg_none)
    for name, token in bad.items():
        try:
            await _result(case, convert(token))
        except Exception:  # noqa: S112 (any rejection is a rejection)
            continue
        return f"accepted the {name} token"
    return None


async def run_batch(case: Case, timer: Callable[[], int]) -> float:
    """µs per call over one batch of ``case.n`` calls."""
    if case.feed is None:
        case.feed = cycle(case.inputs)
    # A fresh str per call, as a server gets from each request: a str caches its
    # hash, and reusing one would hide the hashing of the whole token that every
    # cache lookup does (~0.2 µs for a Para token).
    inputs = [x.encode().decode() if type(x) is str else x for x in islice(case.feed, case.n)]
    call = case.call
    assert call is not None

    if case.process_cpu and timer is time.thread_time_ns:
        timer = time.process_time_ns

    def timed_loop() -> int:
        start = timer()
        for item in inputs:
            call(item)
        return timer() - start

    gc.collect()
    gc.disable()
    try:
        with case.around():
            if case.is_async:
                start = timer()
                for item in inputs:
                    await call(item)
                elapsed = timer() - start
            elif case.in_thread:
                elapsed = await asyncio.to_thread(timed_loop)
            else:
                elapsed = timed_loop()
    finally:
        gc.enable()
    return elapsed / len(inputs) / 1000


@contextmanager
def others_calling(call: Callable[[str], Any], token: str, count: int) -> Iterator[None]:
    """``count`` threads calling ``call(token)`` in a loop until the block ends."""
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            call(token)

    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join()


async def sync_cases(alg: str, mock: MockPara, tokens: Tokens, stack: list[Any]) -> list[Case]:
    """The SyncParaVerifier rows, when para_jwt has it (the same key source as the async rows)."""
    sync_class = getattr(para_jwt, "SyncParaVerifier", None)
    if sync_class is None:
        return [Case(row, alg, status="skipped", note="not available") for row in SYNC_ROWS]
    options = {"jwks_url": mock.jwks_url, "algorithms": (alg,)}
    uncached = sync_class(AUD, token_cache_size=0, **options)
    stack.append(uncached)
    hits = sync_class(AUD, **options)
    stack.append(hits)
    for verifier in (uncached, hits):
        await asyncio.to_thread(verifier.refresh)
    for token in tokens.good:
        await asyncio.to_thread(hits.verify, token)
    contended = Case(SYNC_CONTENDED_ROW, alg, hits.verify, inputs=tokens.good, in_thread=True)
    contended.around = lambda: others_calling(hits.verify, tokens.good[-1], CONTENDERS)
    return [
        Case(
            SYNC_UNCACHED_ROW,
            alg,
            uncached.verify,
            inputs=tokens.good,
            in_thread=True,
            process_cpu=True,
        ),
        Case(SYNC_HIT_ROW, alg, hits.verify, inputs=tokens.good, in_thread=True, process_cpu=True),
        contended,
    ]


async def calibrate(case: Case, timer: Callable[[], int], batch_seconds: float) -> None:
    case.n = 20
    per_call = await run_batch(case, timer)
    # Capped: the fresh copies of a batch live in memory at once (a hit row's
    # batch would otherwise hold ~200,000 of them).
    case.n = min(MAX_CALLS, max(20, int(batch_seconds * 1e6 / max(per_call, 0.05))))


# --- the run -----------------------------------------------------------------------------


async def build_cases(
    alg: str, args: argparse.Namespace, progress: Progress, stack: list[Any]
) -> list[Case]:
    progress(f"{alg}: keys, tokens and verifiers")
    mock = MockPara(alg=alg, api_key_id=AUD, cache_control="public, max-age=86400")
    await mock.start()
    stack.append(mock)
    jwk = mock.public_jwk()
    joserfc_key = {"RS256": RSAKey, "ES256": ECKey, "EdDSA": OKPKey}[alg].import_key(jwk)
    public_key = joserfc_key.get_op_key("verify")
    tokens = make_tokens(mock, args.pool)
    args.token_bytes[alg] = len(tokens.good[0])
    options = {"algorithms": (alg,)}
    cases: list[Case] = []

    call_a, prepare_a = floor_a(alg, public_key)
    cases.append(Case(A_ROW, alg, call_a, inputs=[prepare_a(t) for t in tokens.good]))
    case_a = cases[-1]
    b = floor_b(alg, public_key, mock.current_kid, AUD)
    cases.append(Case(B_ROW, alg, b, inputs=tokens.good))
    try:
        import orjson

        b_orjson = floor_b(alg, public_key, mock.current_kid, AUD, loads=orjson.loads)
        cases.append(Case("(b) ... with orjson.loads", alg, b_orjson, inputs=tokens.good))
    except ImportError:
        cases.append(Case("(b) ... with orjson.loads", alg, status="not installed"))

    async def b_awaited(token: str) -> Any:
        return b(token)

    cases.append(Case("(b) inside `async def`, awaited", alg, b_awaited, True, tokens.good))

    uncached = mock.verifier(token_cache_size=0, **options)
    hits = mock.verifier(**options)
    misses = mock.verifier(token_cache_size=args.miss_cache, **options)
    for verifier in (uncached, hits, misses):
        stack.append(verifier)
        await verifier.refresh()
    # Twice the cache's size, cycled: a least-recently-used cache then never hits.
    miss_tokens = tokens.good + [mock.issue_jwt() for _ in range(2 * args.miss_cache - args.pool)]
    for token in tokens.good:  # every pool token in the cache: the hit row only hits
        await hits.verify(token)
    cases.append(Case(UNCACHED_ROW, alg, uncached.verify, True, tokens.good))
    cases.append(Case(MISSES_ROW, alg, misses.verify, True, miss_tokens))
    # The memory a full cache keeps alive, without the cache: as many results as it
    # holds stay referenced, so their objects are not recycled while new ones are made.
    kept: deque[Any] = deque(maxlen=args.miss_cache)

    async def keeps(token: str) -> Any:
        kept.append(await uncached.verify(token))
        return kept[-1]

    cases.append(Case(KEEPS_ROW, alg, keeps, True, miss_tokens))
    cases.append(Case(HIT_ROW, alg, hits.verify, True, tokens.good))
    cases.extend(await sync_cases(alg, mock, tokens, stack))

    for row, make in PEERS:
        case = Case(row, alg, inputs=tokens.good)
        try:
            case.call = make(alg, jwk, public_key)
        except ImportError:
            case.status = "not installed"
        except Unsupported as why:
            case.status, case.note = "n/a", str(why)
        cases.append(case)

    for case in cases:
        if case.status != "ok":
            continue
        why = await sanity(case, tokens, prepare_a if case is case_a else None)
        if why is not None:
            case.status, case.note = "refused", why
    return cases


async def run(args: argparse.Namespace) -> dict[str, Any]:
    progress = Progress("verify")
    timer = TIMERS[args.timer]
    info = machine()
    stack: list[Any] = []
    try:
        cases = [c for alg in ALGS for c in await build_cases(alg, args, progress, stack)]
        timed = [c for c in cases if c.status == "ok"]
        for index, case in enumerate(timed):
            progress(f"calibrating {index + 1}/{len(timed)}: {case.alg} {case.row}")
            await calibrate(case, timer, args.batch)
        for repeat in range(args.repeats):
            start = repeat * len(timed) // args.repeats
            for step, case in enumerate(timed[start:] + timed[:start]):
                progress(
                    f"repeat {repeat + 1}/{args.repeats}, case {step + 1}/{len(timed)}: "
                    f"{case.alg} {case.row}"
                )
                case.runs.append(await run_batch(case, timer))
    finally:
        for item in reversed(stack):
            if inspect.iscoroutinefunction(item.close):
                await item.close()
            else:  # SyncParaVerifier's blocks
                await asyncio.to_thread(item.close)
    memory = measure_memory(args, progress)
    progress.done("done")
    return report(cases, info, args, memory)


# --- memory of the verified-token cache (child processes) --------------------------------


def _status_kib(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise LookupError(field_name)


async def memory_child(count: int, mode: str) -> dict[str, Any]:
    """Fill a verifier's cache with ``count`` distinct RS256 Para tokens; measure."""
    mock = MockPara(api_key_id=AUD)
    verifier = ParaVerifier(AUD, jwks=mock.jwks(), token_cache_size=count)
    tokens = [mock.issue_jwt() for _ in range(count)]
    token_bytes = sum(sys.getsizeof(token) for token in tokens)
    gc.collect()
    if mode == "trace":
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for token in tokens:
            await verifier.verify(token)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return {
            "entries": count,
            "token_bytes_per_entry": token_bytes / count,
            "claims_bytes_per_entry": (after - before) / count,
            "bytes_per_entry": (after - before + token_bytes) / count,
        }
    rss_before = _status_kib("VmRSS")
    for token in tokens:
        await verifier.verify(token)
    gc.collect()
    return {
        "entries": count,
        "rss_before_fill_kib": rss_before,
        "rss_after_fill_kib": _status_kib("VmRSS"),
        "peak_rss_kib": _status_kib("VmHWM"),
    }


def measure_memory(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    progress(f"memory: filling a cache of {args.memory_entries} tokens (two child processes)")
    results: dict[str, Any] = {}
    for mode in ("trace", "rss"):
        child = subprocess.run(
            [sys.executable, __file__, "--memory-child", str(args.memory_entries), mode],
            check=True,
            capture_output=True,
            text=True,
        )
        results.update(json.loads(child.stdout))
    return results


# --- the report --------------------------------------------------------------------------


def report(
    cases: list[Case], info: dict[str, Any], args: argparse.Namespace, memory: dict[str, Any]
) -> dict[str, Any]:
    by_key = {(c.alg, c.row): c for c in cases}
    rows = list(dict.fromkeys(c.row for c in cases))

    def ratio(alg: str, row: str, floor: str) -> float | None:
        case, base = by_key.get((alg, row)), by_key.get((alg, floor))
        if case is None or base is None or case.median is None or base.median is None:
            return None
        return case.median / base.median

    def paired(alg: str, row: str, floor: str) -> float | None:
        # Median of per-repeat ratios: each pair ran close together in time.
        case, base = by_key[(alg, row)], by_key[(alg, floor)]
        if not case.runs or not base.runs:
            return None
        return statistics.median(x / y for x, y in zip(case.runs, base.runs, strict=True))

    table_rows = []
    for row in rows:
        cells: list[str] = [row]
        for alg in ALGS:
            case = by_key.get((alg, row))
            if case is None or case.median is None:
                status = "" if case is None else case.status
                cells += [status, "", ""]
                continue
            cells += [
                fmt(case.median),
                f"{ratio(alg, row, B_ROW):.2f}",
                f"{ratio(alg, row, A_ROW):.2f}",
            ]
        table_rows.append(cells)
    header = ["case"] + [f"{alg} {h}" for alg in ALGS for h in ("µs", "×(b)", "×(a)")]
    spreads = [
        (max(c.runs) - min(c.runs)) / statistics.median(c.runs) for c in cases if len(c.runs) > 1
    ]
    rs_uncached, rs_hit = by_key[("RS256", UNCACHED_ROW)], by_key[("RS256", HIT_ROW)]
    summary = {
        alg: {
            "uncached_over_b": ratio(alg, UNCACHED_ROW, B_ROW),
            "uncached_over_b_paired": paired(alg, UNCACHED_ROW, B_ROW),
            "misses_over_b": ratio(alg, MISSES_ROW, B_ROW),
            "hit_us": by_key[(alg, HIT_ROW)].median,
        }
        for alg in ALGS
    }
    summary["RS256"]["hit_speedup_over_uncached"] = (
        rs_uncached.median / rs_hit.median if rs_uncached.median and rs_hit.median else None
    )
    sync_lines = []
    for alg in ALGS:
        hit, contended = by_key[(alg, SYNC_HIT_ROW)], by_key[(alg, SYNC_CONTENDED_ROW)]
        summary[alg]["sync_hit_us"] = hit.median
        summary[alg]["sync_uncached_over_async_uncached"] = ratio(
            alg, SYNC_UNCACHED_ROW, UNCACHED_ROW
        )
        summary[alg]["sync_contended_hit_us"] = contended.median
        if hit.status == "skipped":
            continue
        # A loaded machine slows every row alike: the async hit of the same run
        # tells whether a sync hit over 1.5 µs is the machine or the facade.
        async_hit = by_key[(alg, HIT_ROW)].median
        summary[alg]["sync_hit_over_async_hit"] = (
            hit.median / async_hit if hit.median is not None and async_hit else None
        )
        sync_lines.append(
            f"- {alg} SyncParaVerifier: cache hit {fmt(hit.median)} µs (goal ≤ 1.5; "
            f"{fmt(summary[alg]['sync_hit_over_async_hit'])}× the async hit); uncached "
            f"{fmt(summary[alg]['sync_uncached_over_async_uncached'])}× the async uncached "
            f"(goal ≤ 1.10); cache hit with {CONTENDERS} other threads hitting the same "
            f"verifier {fmt(contended.median)} µs ({args.timer} time of the timed thread; "
            "the other two rows count the whole process's CPU time)"
        )
    if not sync_lines:
        sync_lines = [f"- SyncParaVerifier rows: {SYNC_SKIPPED}"]
    notes = [
        f"- {c.alg} {c.row}: {c.status}{': ' + c.note if c.note else ''}"
        for c in cases
        if c.status != "ok"
    ]
    memory_lines = []
    if "bytes_per_entry" in memory:
        memory_lines = [
            f"- bytes per cached token ({memory['entries']} RS256 Para tokens, tracemalloc): "
            f"{memory['bytes_per_entry']:,.0f} (token string {memory['token_bytes_per_entry']:,.0f}"
            f" + claims, payload and cache entry {memory['claims_bytes_per_entry']:,.0f})",
            f"- peak RSS with the cache full: {memory['peak_rss_kib'] / 1024:.1f} MiB "
            f"(RSS {memory['rss_before_fill_kib'] / 1024:.1f} MiB before filling, tokens "
            f"already in memory; {memory['rss_after_fill_kib'] / 1024:.1f} MiB after)",
        ]
    markdown = "\n".join(
        [
            "# bench_verify: µs per verify (median of repeats) and ratios to the floors",
            "",
            f"Machine: {machine_line(info)}.",
            "Tokens (MockPara's issue_jwt): "
            + ", ".join(f"{alg} {size:,} bytes" for alg, size in args.token_bytes.items())
            + ".",
            f"Timer: {args.timer} ({'thread CPU time' if args.timer == 'cpu' else 'wall clock'}); "
            f"{args.repeats} repeats of ~{args.batch} s per case, round-robin"
            + (
                f"; spread (max-min)/median: median {statistics.median(spreads):.0%}, "
                f"max {max(spreads):.0%}."
                if spreads
                else "."
            ),
            "",
            markdown_table(header, table_rows, "l" + "rrr" * len(ALGS)),
            "",
            f"- RS256 uncached / (b): {fmt(summary['RS256']['uncached_over_b'])} "
            f"(paired per repeat: {fmt(summary['RS256']['uncached_over_b_paired'])}); "
            f"ES256: {fmt(summary['ES256']['uncached_over_b'])} "
            f"({fmt(summary['ES256']['uncached_over_b_paired'])}); "
            f"EdDSA: {fmt(summary['EdDSA']['uncached_over_b'])} "
            f"({fmt(summary['EdDSA']['uncached_over_b_paired'])})",
            f"- RS256 cache hit: {fmt(summary['RS256']['hit_us'])} µs, "
            f"{fmt(summary['RS256']['hit_speedup_over_uncached'])}× faster than uncached",
            f"- '{MISSES_ROW}': an LRU of {args.miss_cache} with {2 * args.miss_cache} "
            "tokens cycling (lookup, insert and eviction on every call); "
            f"'{KEEPS_ROW}': the same tokens, no cache, the last {args.miss_cache} "
            "results kept referenced",
            *memory_lines,
            *sync_lines,
            *(["", "Not timed:", *notes] if notes else []),
        ]
    )
    return {
        "machine": info,
        "method": {
            "timer": args.timer,
            "repeats": args.repeats,
            "batch_seconds": args.batch,
            "token_pool": args.pool,
            "miss_cache": args.miss_cache,
            "token_bytes": args.token_bytes,
            "quick": args.quick,
        },
        "results": [
            {
                "case": c.row,
                "alg": c.alg,
                "status": c.status,
                "note": c.note,
                "us_per_op": c.median,
                "runs_us": c.runs,
                "calls_per_batch": c.n,
                "over_b": ratio(c.alg, c.row, B_ROW),
                "over_a": ratio(c.alg, c.row, A_ROW),
            }
            for c in cases
        ],
        "summary": summary,
        "memory": memory,
        "markdown": markdown,
    }


def chart(data: dict[str, Any], path: Path) -> Path | None:
    """Horizontal bars of µs per verify, one panel per algorithm (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    results = [r for r in data["results"] if r["us_per_op"] is not None]
    rows = list(dict.fromkeys(r["case"] for r in results))
    figure, axes = plt.subplots(1, len(ALGS), figsize=(16, 0.42 * len(rows) + 1.6), sharey=True)
    for axis, alg in zip(axes, ALGS, strict=True):
        values = {r["case"]: r["us_per_op"] for r in results if r["alg"] == alg}
        ys = range(len(rows))
        widths = [values.get(row, 0) for row in rows]
        colors = [
            "#d62728"
            if row.startswith("para_jwt")
            else "#7f7f7f"
            if row.startswith("(a)") or row.startswith("(b)")
            else "#1f77b4"
            for row in rows
        ]
        axis.barh(ys, widths, color=colors)
        if B_ROW in values:
            axis.axvline(values[B_ROW], color="black", linestyle="--", linewidth=1)
        for y, width in zip(ys, widths, strict=True):
            if width:
                axis.text(width, y, f" {width:.1f}", va="center", fontsize=7)
        axis.set_title(f"{alg} (dashed: floor (b))")
        axis.set_xlabel("µs per verify (lower is better)")
        axis.invert_yaxis()
    axes[0].set_yticks(range(len(rows)), rows, fontsize=8)
    info = data["machine"]
    figure.suptitle(
        f"Verify cost, one run: {info['nproc']} CPUs {info['cpu_model']}, Python {info['python']}"
        f"{' (QUICK: not for numbers)' if data['method']['quick'] else ''}",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--memory-child":
        print(json.dumps(asyncio.run(memory_child(int(sys.argv[2]), sys.argv[3]))))
        return 0

    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--repeats", type=int, default=None, help="default 21 (quick: 1)")
        parser.add_argument("--batch", type=float, default=None, help="seconds a batch (0.1)")
        parser.add_argument("--timer", choices=sorted(TIMERS), default="cpu")

    args = arguments(__doc__.split("\n", 1)[0], extra=extra)
    quick = args.quick
    # Many short batches rather than a few long ones: on a shared machine the
    # speed of a core drifts within seconds, and a floor and a para_jwt row paired
    # in one repeat then ran close together in time.
    args.repeats = args.repeats or (1 if quick else 21)
    args.batch = args.batch or (0.005 if quick else 0.1)
    args.pool = 4 if quick else 200
    args.miss_cache = 8 if quick else 1024
    args.memory_entries = 64 if quick else 4096
    args.token_bytes = {}
    # The peers' own warnings (authlib.jose's deprecation, joserfc's on EdDSA) are
    # not this benchmark's business.
    warnings.simplefilter("ignore")
    started = time.monotonic()
    data = asyncio.run(run(args))
    data["method"]["runtime_seconds"] = round(time.monotonic() - started, 1)
    written = write_results(args.out, "verify", data, data["markdown"])
    png = chart(data, args.out / "verify.png")
    print(data["markdown"])
    print("\nwritten:", ", ".join(str(p) for p in [*written, *([png] if png else [])]))
    refused = [r for r in data["results"] if r["status"] == "refused"]
    return 2 if any(r["case"].startswith(("(a)", "(b)", "para_jwt")) for r in refused) else 0


if __name__ == "__main__":
    sys.exit(main())
