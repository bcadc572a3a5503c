"""The pieces of the verify path, each against the plainer way or the reference beside it.

Every choice the verify path makes is measured here on one Para-shaped RS256
token, each group's variants against the group's first (the plain way). The plain
ways are written out below as they would be without the trick; they are
references, not para_jwt code.

Two ways to measure:

* time (the default): each group's variants run round-robin in one process,
  several repeats, medians of thread CPU time. Noisy on a shared machine;
* ``--instructions``: instructions per call, counted by callgrind through
  ``instructions.py``'s machinery (one child under valgrind, a dump per variant),
  with the cost of calling an empty function taken out. Repeatable to ~1 %
  (new keys and tokens each run), so a part's saving can be judged on a noisy
  machine; writes ``results/parts_instructions.{json,md}``.
"""

from __future__ import annotations

import argparse
import asyncio
import binascii
import dataclasses
import functools
import gc
import json
import re
import shutil
import statistics
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

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
from cachetools import LRUCache
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc.jws import JWSRegistry

from para_jwt import _jws
from para_jwt.claims import AuthType, OAuthMethod, ParaClaims, Wallet, WalletType, _frozen, _member
from para_jwt.jwks import JWKSCache, KeySet
from para_jwt.testing import MockPara
from para_jwt.verifier import _cache_key

Group = tuple[str, dict[str, Callable[[], Any]]]


# --- the plain ways ------------------------------------------------------------------------

_NOT_BASE64URL = re.compile(rb"[^A-Za-z0-9_-]")
_PLAIN_TABLE = bytes.maketrans(b"-_", b"+/")
_PLAIN_STR_TABLE = str.maketrans("-_+/=", "+/!!!")
_PAD = (b"", b"", b"==", b"=")


def b64_regex(segment: bytes) -> bytes:
    if _NOT_BASE64URL.search(segment) is not None:
        raise ValueError("not base64url")
    return binascii.a2b_base64(
        segment.translate(_PLAIN_TABLE) + _PAD[len(segment) & 3], strict_mode=True
    )


def b64_str(segment: str) -> bytes:
    padding = ("", "", "==", "=")[len(segment) & 3]
    return binascii.a2b_base64(segment.translate(_PLAIN_STR_TABLE) + padding, strict_mode=True)


class NotStrict(ValueError):
    pass


def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise NotStrict("duplicate")
    return obj


def no_constant(name: str) -> NoReturn:
    raise NotStrict(name)


def json_loads_with_hook(raw: bytes) -> Any:
    return json.loads(raw.decode(), object_pairs_hook=unique, parse_constant=no_constant)


_HOOKED = json.JSONDecoder(object_pairs_hook=unique, parse_constant=no_constant)
_PLAIN = json.JSONDecoder()


def plain_claims(payload: dict[str, Any]) -> ParaClaims:
    """ParaClaims.from_payload written inline: the enums called, the frozen
    dataclass's generated __init__, fewer checks (a floor for the helpers' cost)."""

    def optional_str(name: str) -> str | None:
        value = data.get(name)
        if value is None or type(value) is str:
            return value
        raise ValueError(name)

    def wallets(name: str) -> tuple[Wallet, ...]:
        result = []
        for item in data.get(name) or ():
            if not (type(item["id"]) is str and type(item["address"]) is str):
                raise ValueError(name)
            result.append(
                Wallet(item["id"], WalletType(item["type"]), item["address"], item["publicKey"])
            )
        return tuple(result)

    data = payload["data"]
    auth_type = optional_str("authType")
    oauth_method = optional_str("oAuthMethod")
    return ParaClaims(
        user_id=data["userId"],
        wallets=wallets("wallets"),
        connected_wallets=wallets("connectedWallets"),
        auth_type=None if auth_type is None else AuthType(auth_type),
        identifier=optional_str("identifier"),
        email=optional_str("email"),
        phone=optional_str("phone"),
        oauth_method=None if oauth_method is None else OAuthMethod(oauth_method),
        telegram_user_id=optional_str("telegramUserId"),
        farcaster_username=optional_str("farcasterUsername"),
        external_wallet_address=optional_str("externalWalletAddress"),
        subject=payload.get("sub"),
        audience="a",
        issued_at=None,
        expires_at=None,  # type: ignore[arg-type]
        key_id="k",
        payload=payload,
    )


def der_by_hex(signature: bytes) -> bytes:
    # joserfc's route: each half through hex text.
    r = int(binascii.b2a_hex(signature[:32]), 16)
    s = int(binascii.b2a_hex(signature[32:]), 16)
    return encode_dss_signature(r, s)


def der_by_hand(signature: bytes) -> bytes:
    def integer(x: bytes) -> bytes:
        x = x.lstrip(b"\0")
        if not x or x[0] & 0x80:
            x = b"\0" + x
        return b"\x02" + bytes((len(x),)) + x

    body = integer(signature[:32]) + integer(signature[32:])
    return b"\x30" + bytes((len(body),)) + body


# --- the groups ----------------------------------------------------------------------------


def groups() -> list[Group]:
    rs = MockPara()
    token = rs.issue_jwt()
    raw = token.encode()
    header_b64, payload_b64, signature_b64 = raw.split(b".")
    payload_raw = _jws.base64url_decode(payload_b64)
    payload_text = payload_raw.decode()
    payload = json.loads(payload_raw)
    algorithms = frozenset({"RS256"})
    known = {header_b64: json.loads(_jws.base64url_decode(header_b64))}
    fresh_parser = _jws.TokenParser(max_size=16384, algorithms=algorithms)
    warm_parser = _jws.TokenParser(max_size=16384, algorithms=algorithms)
    warm_parser.remember_header(warm_parser.parse(raw))

    key = KeySet.from_jwks(rs.jwks()).key(rs.current_kid)
    joserfc_rs256 = JWSRegistry.algorithms["RS256"]
    signing_input, _, _ = raw.rpartition(b".")
    signature = _jws.base64url_decode(signature_b64)
    bound = key.checks["RS256"]

    es = MockPara(alg="ES256")
    es_token = es.issue_jwt().encode()
    es_input, _, es_sig_b64 = es_token.rpartition(b".")
    es_signature = _jws.base64url_decode(es_sig_b64)
    es_key = KeySet.from_jwks(es.jwks()).key(es.current_kid)
    joserfc_es256 = JWSRegistry.algorithms["ES256"]

    claims = ParaClaims.from_payload(payload, audience="a", key_id="k")
    fields = {f.name: getattr(claims, f.name) for f in dataclasses.fields(ParaClaims)}

    tokens = [rs.issue_jwt() for _ in range(64)]
    lru: LRUCache[str, Any] = LRUCache(maxsize=32)
    ordered: OrderedDict[str | bytes, Any] = OrderedDict()
    counter = iter(range(10**12))

    def lru_miss() -> None:
        t = tokens[next(counter) % 64].encode().decode()
        if lru.get(t) is None:
            lru[t] = (claims, key, 0.0, 0.0)

    def ordered_miss() -> None:
        t = tokens[next(counter) % 64].encode().decode()
        slot = _cache_key(t)
        entry = ordered.get(slot)
        if entry is None or entry[0] != t:
            ordered[slot] = (t, claims, key, 0.0, 0.0)
            if len(ordered) > 32:
                ordered.popitem(last=False)

    def fresh_copy() -> None:
        tokens[next(counter) % 64].encode().decode()

    # A hit's lookup: a new str per request (so its hash is not cached yet).
    by_token = {t: (claims, key, 0.0, 0.0) for t in tokens}
    by_tail = {_cache_key(t): (t, claims, key, 0.0, 0.0) for t in tokens}

    def hit_by_token() -> None:
        t = tokens[next(counter) % 64].encode().decode()
        by_token[t]

    def hit_by_tail() -> None:
        t = tokens[next(counter) % 64].encode().decode()
        if by_tail[_cache_key(t)][0] != t:
            raise AssertionError("the tail found another token")

    # SyncParaVerifier's key check on a hit, with a key cache warm and fresh.
    state = {
        "version": 1,
        "url": "http://127.0.0.1:9/jwks",
        "jwks": rs.jwks(),
        "fetched_at": time.time(),
        "expires_at": time.time() + 3600,
    }
    key_cache = JWKSCache("http://127.0.0.1:9/jwks", initial_state=state)
    kid = rs.current_kid

    def refresh() -> None:
        raise AssertionError("the set is fresh: no refresh is due")

    assert b64_regex(payload_b64) == _jws.base64url_decode(payload_b64)
    assert _jws.decode_json_object(payload_raw, "payload") == payload
    assert warm_parser.parse(raw).payload == fresh_parser.parse(raw).payload == payload
    assert b64_str(payload_b64.decode()) == payload_raw
    assert der_by_hex(es_signature) == der_by_hand(es_signature)
    assert plain_claims(payload).user_id == claims.user_id
    assert _frozen(ParaClaims, fields) == ParaClaims(**fields) == claims
    assert _member(WalletType, "EVM") is WalletType("EVM")
    assert key_cache.peek(kid, refresh) is key_cache.peek(kid) is not None
    return [
        (
            "strict base64url, payload segment",
            {
                "regex pre-scan, then a2b_base64": lambda: b64_regex(payload_b64),
                "on str: translate, a2b_base64": lambda: b64_str(payload_b64.decode()),
                "para_jwt: bytes.translate onto '!', a2b_base64 strict": lambda: (
                    _jws.base64url_decode(payload_b64)
                ),
            },
        ),
        (
            "strict JSON, the payload (unique names, no NaN, depth)",
            {
                "json.loads(..., object_pairs_hook=...)": lambda: json_loads_with_hook(payload_raw),
                "a prebuilt decoder with the hook": lambda: _HOOKED.decode(payload_raw.decode()),
                "(part of para_jwt's) the same, raw_decode on text": lambda: _HOOKED.raw_decode(
                    payload_text
                ),
                "para_jwt: decode_json_object (prebuilt hooked decoder, depth bound)": lambda: (
                    _jws.decode_json_object(payload_raw, "payload")
                ),
                "(reference, no rules) json.loads": lambda: json.loads(payload_raw),
                "(reference, no rules) a prebuilt decoder, on text": lambda: _PLAIN.decode(
                    payload_text
                ),
                "(part of para_jwt's) the depth bound's bracket count": lambda: (
                    payload_text.count("{") + payload_text.count("[")
                ),
            },
        ),
        (
            "the header",
            {
                "decode and check": lambda: _jws._check_header(
                    _jws.decode_json_object(_jws.base64url_decode(header_b64), "header"),
                    algorithms,
                ),
                "para_jwt: a verified header segment, remembered": lambda: known.get(header_b64),
            },
        ),
        (
            "the whole parse (TokenParser.parse -> ParsedToken)",
            {
                "a header never seen (decoded and checked)": lambda: fresh_parser.parse(raw),
                "para_jwt: a verified header, remembered": lambda: warm_parser.parse(raw),
            },
        ),
        (
            "typed claims",
            {
                "field helpers, enum calls, frozen __init__": lambda: plain_claims(payload),
                "para_jwt: ParaClaims.from_payload (field helpers, _frozen)": lambda: (
                    ParaClaims.from_payload(payload, audience="a", key_id="k")
                ),
            },
        ),
        (
            "building the frozen ParaClaims from its 17 fields",
            {
                "ParaClaims(**fields): the generated frozen __init__": lambda: ParaClaims(**fields),
                "para_jwt: _frozen(ParaClaims, fields), one __dict__.update": lambda: _frozen(
                    ParaClaims, fields
                ),
            },
        ),
        (
            "an open enum's value, as Para spells it",
            {
                "WalletType('EVM'): EnumType.__call__": lambda: WalletType("EVM"),
                "para_jwt: _member(WalletType, 'EVM'), the {value: member} table": lambda: (
                    _member(WalletType, "EVM")
                ),
            },
        ),
        (
            "RS256 signature",
            {
                "joserfc algorithm.verify(msg, sig, key)": lambda: joserfc_rs256.verify(
                    signing_input, signature, key.key
                ),
                "para_jwt: check bound to the key": lambda: bound(signing_input, signature),
            },
        ),
        (
            "ES256 signature",
            {
                "joserfc algorithm.verify(msg, sig, key)": lambda: joserfc_es256.verify(
                    es_input, es_signature, es_key.key
                ),
                "para_jwt: check bound to the key": lambda: es_key.checks["ES256"](
                    es_input, es_signature
                ),
            },
        ),
        (
            "ES256 raw signature (R, S) to DER",
            {
                "through hex (joserfc)": lambda: der_by_hex(es_signature),
                "para_jwt: int.from_bytes + encode_dss_signature": lambda: encode_dss_signature(
                    int.from_bytes(es_signature[:32], "big"),
                    int.from_bytes(es_signature[32:], "big"),
                ),
                "DER by hand": lambda: der_by_hand(es_signature),
            },
        ),
        (
            "a new token meets a full LRU (fresh token str, lookup, insert, evict)",
            {
                "cachetools.LRUCache, keyed by the token": lru_miss,
                "para_jwt: OrderedDict, keyed by _cache_key (the token's tail)": ordered_miss,
                "(part of either) a fresh token str": fresh_copy,
            },
        ),
        (
            "a token-cache hit's lookup (fresh token str)",
            {
                "keyed by the whole token (hashes 1.4 KB)": hit_by_token,
                "para_jwt: keyed by _cache_key, then the whole token compared": hit_by_tail,
                "(part of either) a fresh token str": fresh_copy,
            },
        ),
        (
            "a sync hit's key check (SyncParaVerifier, key cache fresh)",
            {
                "peek(kid), then refresh_due()": lambda: (
                    key_cache.peek(kid),
                    key_cache.refresh_due(),
                ),
                "para_jwt: peek(kid, refresh), refresh_due() only past the refresh point": (
                    lambda: key_cache.peek(kid, refresh)
                ),
                "(reference) peek(kid), as an async hit": lambda: key_cache.peek(kid),
            },
        ),
    ]


def run_groups(
    measured: list[Group], args: argparse.Namespace, progress: Progress
) -> list[dict[str, Any]]:
    timer = TIMERS["cpu"]
    cases = [(title, name, call) for title, variants in measured for name, call in variants.items()]
    counts: dict[tuple[str, str], int] = {}
    for title, name, call in cases:  # calibrate: ~batch seconds per batch
        start = timer()
        for _ in range(200):
            call()
        per_call = (timer() - start) / 200
        counts[title, name] = max(50, int(args.batch * 1e9 / max(per_call, 50)))
    runs: dict[tuple[str, str], list[float]] = {(t, n): [] for t, n, _ in cases}
    for repeat in range(args.repeats):
        progress(f"repeat {repeat + 1}/{args.repeats}")
        for title, name, call in cases:
            n = counts[title, name]
            gc.collect()
            gc.disable()
            start = timer()
            for _ in range(n):
                call()
            elapsed = timer() - start
            gc.enable()
            runs[title, name].append(elapsed / n / 1000)
    results = []
    for title, variants in measured:
        base = statistics.median(runs[title, next(iter(variants))])
        for name in variants:
            median = statistics.median(runs[title, name])
            results.append(
                {
                    "group": title,
                    "variant": name,
                    "us_per_op": median,
                    "over_first": median / base,
                    "runs_us": runs[title, name],
                }
            )
    return results


async def run(args: argparse.Namespace) -> dict[str, Any]:
    progress = Progress("parts")
    info = machine()
    results = run_groups(groups(), args, progress)
    progress.done("done")
    rows = [
        [r["group"], r["variant"], fmt(r["us_per_op"]), f"{r['over_first']:.2f}"] for r in results
    ]
    markdown = "\n".join(
        [
            "# bench_parts: the fast path's pieces against the plain ways",
            "",
            f"Machine: {machine_line(info)}.",
            f"Thread CPU time; {args.repeats} repeats round-robin, ~{args.batch} s a batch; "
            "medians; ratios to each group's first row.",
            "",
            markdown_table(["group", "variant", "µs", "× first"], rows, "llrr"),
        ]
    )
    return {
        "machine": info,
        "method": {"quick": args.quick, "repeats": args.repeats, "batch_seconds": args.batch},
        "results": results,
        "markdown": markdown,
    }


#: Calls per counted variant, after as many again to warm up (the specialising
#: interpreter and every cache then in their steady state). Counts are exact, so a
#: few dozen calls suffice; quick runs count fewer.
COUNTED_CALLS = 64


def _repeat(call: Callable[[], Any], times: int) -> None:
    for _ in range(times):
        call()


def _empty() -> None:
    return None


async def instructions_child(calls: int) -> None:
    """Under callgrind: count every variant of every group (phase names ``g.v``)."""
    from instructions import count_phases

    phases: list[tuple[str, Callable[[], Any]]] = []
    variants = [("call", _empty)]
    for g, (_, group) in enumerate(groups()):
        variants += [(f"{g}.{v}", call) for v, call in enumerate(group.values())]
    for name, call in variants:
        phases.append((f"warm-up {name}", functools.partial(_repeat, call, calls)))
        phases.append((name, functools.partial(_repeat, call, calls)))
    await count_phases(phases)


def count_instructions(args: argparse.Namespace) -> dict[str, Any]:
    """Instructions per call of each variant, from one child under callgrind."""
    from instructions import cannot_run, compile_sources, run_counted

    why = cannot_run()
    if why is not None:
        raise SystemExit(f"cannot count instructions: {why}")
    valgrind = shutil.which("valgrind")
    assert valgrind is not None
    calls = 4 if args.quick else COUNTED_CALLS
    compile_sources()
    info = machine()
    counts = run_counted(
        valgrind, sys.executable, Path(__file__), "--instructions-child", str(calls)
    )
    measured = groups()

    def per_call(name: str) -> float:
        return (counts[name] - counts["empty"]) / calls

    overhead = per_call("call")  # the loop and the call of a function doing nothing
    results = []
    for g, (title, variants) in enumerate(measured):
        base = per_call(f"{g}.0") - overhead
        for v, name in enumerate(variants):
            value = per_call(f"{g}.{v}") - overhead
            results.append(
                {
                    "group": title,
                    "variant": name,
                    "instructions_per_op": value,
                    "over_first": value / base,
                }
            )
    rows = [
        [r["group"], r["variant"], f"{r['instructions_per_op']:,.0f}", f"{r['over_first']:.2f}"]
        for r in results
    ]
    markdown = "\n".join(
        [
            "# bench_parts --instructions: the verify path's pieces, in instructions",
            "",
            f"Machine: {machine_line(info)}.",
            f"Instructions per call counted by callgrind (benchmarks/instructions.py's "
            f"machinery), {calls} calls after {calls} to warm up, the cost of calling an "
            f"empty function ({overhead:,.0f}) taken out; ratios to each group's first row. "
            "Reruns agree to within ~1 % (each run makes new keys and tokens, whose "
            "lengths differ a little); timings here move by 10 % and more.",
            "",
            markdown_table(["group", "variant", "instructions", "× first"], rows, "llrr"),
        ]
    )
    return {
        "machine": info,
        "method": {"quick": args.quick, "measure": "instructions", "calls": calls},
        "call_overhead": overhead,
        "results": results,
        "markdown": markdown,
    }


def main() -> int:
    if sys.argv[1:2] == ["--instructions-child"]:
        asyncio.run(instructions_child(int(sys.argv[2])))
        return 0
    args = arguments(
        __doc__.split("\n", 1)[0],
        extra=lambda parser: parser.add_argument(
            "--instructions",
            action="store_true",
            help="count instructions per call under callgrind instead of timing",
        ),
    )
    if args.instructions:
        data = count_instructions(args)
        name = "parts_instructions"
    else:
        args.repeats = 1 if args.quick else 9
        args.batch = 0.002 if args.quick else 0.05
        data = asyncio.run(run(args))
        name = "parts"
    written = write_results(args.out, name, data, data["markdown"])
    print(data["markdown"])
    print("\nwritten:", ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
