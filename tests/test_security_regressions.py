"""Bugs found by the fuzzers and property tests, each pinned by the input that found it.

Each test names the invariant that broke. They go through the public API and,
where the bug was reachable over the network, through a real JWKSCache fetch
from a loopback MockPara.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from para_jwt import ConfigurationError, JWKSCache, KeySet, MalformedTokenError, ParaVerifier
from para_jwt.testing import FakeClock, MockPara


@pytest.fixture
async def para(clock: FakeClock) -> AsyncIterator[MockPara]:
    async with MockPara(clock=clock) as mock:
        yield mock


def _broken_members(para: MockPara) -> list[dict[str, Any]]:
    good = para.public_jwk()
    return [
        # Found by fuzz_jwks: a non-string "alg" reached `alg in frozenset(...)`,
        # and an unhashable one raised TypeError out of KeySet.from_jwks.
        {**good, "kid": "alg-list", "alg": ["RS256"]},
        {**good, "kid": "alg-object", "alg": {"name": "RS256"}},
        # Found by fuzz_jwks (first minute): a non-ASCII character in "n" raised
        # binascii's ValueError, failing the whole set instead of skipping the key.
        {**good, "kid": "non-ascii-n", "n": "\u038f" + good["n"]},
    ]


def test_one_malformed_member_is_skipped_not_fatal(para: MockPara) -> None:
    # "Raises ValueError only if the document itself is not {"keys": [...]}":
    # one bad member must not take the good keys down with it.
    keyset = KeySet.from_jwks({"keys": [*_broken_members(para), para.public_jwk()]})
    assert set(keyset.keys) == {para.current_kid}
    assert {s.kid for s in keyset.skipped} == {"alg-list", "alg-object", "non-ascii-n"}


async def test_a_fetched_set_with_a_malformed_member_still_verifies(
    para: MockPara, clock: FakeClock
) -> None:
    # Before the fix the fetch raised TypeError/ValueError out of verify() (a 500
    # instead of a verified user), and, since the failure skipped the backoff,
    # every request fetched the key set again.
    para.set_jwks({"keys": [*_broken_members(para), para.public_jwk()]})
    async with ParaVerifier(para.api_key_id, jwks_url=para.jwks_url, clock=clock) as verifier:
        for _ in range(3):
            claims = await verifier.verify(para.issue_jwt())
            assert claims.key_id == para.current_kid
    assert para.jwks_requests == 1


async def test_an_absurd_age_header_means_stale_not_a_crash(
    para: MockPara, clock: FakeClock
) -> None:
    # Age: <5000 digits> made int() exceed Python's digit limit (ValueError out of
    # get_key, after the new set was half stored). An Age that large means the
    # response is already stale: the cache keeps it for min_ttl.
    para.age = "9" * 5000  # type: ignore[assignment]
    async with JWKSCache(para.jwks_url, clock=clock, refresh_ahead=False) as cache:
        key = await cache.get_key(para.current_kid)
        assert key.kid == para.current_kid
        clock.advance(59)
        await cache.get_key(para.current_kid)
        assert para.jwks_requests == 1
        clock.advance(1)
        await cache.get_key(para.current_kid)
        assert para.jwks_requests == 2


_STATE_URL = "https://api.getpara.com/.well-known/jwks.json"
_NOW = 1_800_000_000.0


def _state(para: MockPara, fetched_at: object, expires_at: object) -> dict[str, object]:
    return {
        "version": 1,
        "url": _STATE_URL,
        "jwks": para.jwks(),
        "fetched_at": fetched_at,
        "expires_at": expires_at,
    }


@pytest.mark.parametrize(
    ("fetched_at", "expires_at"),
    [
        # Found in review of _load_state: "a state cannot grant itself more lifetime
        # than our own bounds allow", yet NaN slipped past min() (the keys stayed
        # fresh forever and health() raised ValueError) ...
        (float("nan"), 1e308),
        ("NaN", "Infinity"),
        (float("inf"), float("inf")),
        # ... a fetch time in the future moved the max_ttl bound with it ...
        (_NOW + 10**9, _NOW + 10**9 + 3600),
        # ... and (found by the property test) times before 1970 broke health().
        (0.0, -62135596801.0),
        (-1e18, 0.0),
    ],
)
def test_an_exported_state_cannot_outlive_max_ttl(
    para: MockPara, fetched_at: object, expires_at: object
) -> None:
    try:
        cache = JWKSCache(
            _STATE_URL, initial_state=_state(para, fetched_at, expires_at), clock=lambda: _NOW
        )
    except ConfigurationError:
        return  # refusing the state is fine too
    health = cache.health()
    assert health.expires_at is not None
    assert health.expires_at.timestamp() <= _NOW + 86_400


def test_a_sane_exported_state_is_still_used(para: MockPara) -> None:
    cache = JWKSCache(
        _STATE_URL, initial_state=_state(para, _NOW - 60, _NOW + 540), clock=lambda: _NOW
    )
    assert cache.health().status == "fresh"
    assert cache.health().kids == (para.current_kid,)


def _everything_chained(error: BaseException) -> str:
    texts: list[str] = []
    current: BaseException | None = error
    while current is not None:
        texts += [str(current), repr(current), repr(vars(current)), repr(current.args)]
        for name in ("doc", "object"):  # JSONDecodeError.doc, UnicodeDecodeError.object
            texts.append(repr(getattr(current, name, None)))
        current = current.__cause__ or current.__context__
    return "\n".join(texts)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"data": "MARKER-7f3a", ',  # cut short: JSONDecodeError holds the text
        b'{"data": "MARKER-7f3a"} trailing',
        b'{"data": "MARKER-7f3a", "data": 1}',  # duplicate member
        b'\xff{"data": "MARKER-7f3a"}',  # not UTF-8: UnicodeDecodeError holds the bytes
    ],
)
async def test_a_refusal_does_not_chain_the_payload(para: MockPara, payload: bytes) -> None:
    # Found in review: refusals raised inside `except` kept the decoder's error as
    # __context__, and with it the decoded payload, for any tool walking the chain.
    verifier = ParaVerifier(para.api_key_id, jwks=para.jwks())
    with pytest.raises(MalformedTokenError) as info:
        await verifier.verify(para.sign(payload))
    assert "MARKER-7f3a" not in _everything_chained(info.value)
