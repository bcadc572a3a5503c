"""The key cache against a real loopback Para (MockPara), with an injected clock."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import format_datetime

import aiohttp
import pytest

from para_jwt import (
    ConfigurationError,
    InvalidSignatureError,
    InvalidTokenError,
    JWKSCache,
    JWKSEvent,
    JWKSEventKind,
    JWKSUnavailableError,
    ParaVerifier,
    UnknownKeyError,
)
from para_jwt.testing import FakeClock, MockPara


@pytest.fixture
async def para(clock: FakeClock) -> AsyncIterator[MockPara]:
    async with MockPara(clock=clock) as mock:
        yield mock


def verifier(para: MockPara, **options: object) -> ParaVerifier:
    return ParaVerifier(para.api_key_id, jwks_url=para.jwks_url, **options)  # type: ignore[arg-type]


# --- single flight, lifetime ---------------------------------------------------------------


async def test_a_thousand_concurrent_cold_verifies_make_one_request(
    para: MockPara, clock: FakeClock
) -> None:
    tokens = [para.issue_jwt() for _ in range(20)]
    async with verifier(para, clock=clock) as v:
        results = await asyncio.gather(*(v.verify(tokens[i % 20]) for i in range(1000)))
    assert len(results) == 1000
    assert para.jwks_requests == 1


@pytest.mark.parametrize(
    ("cache_control", "lifetime"),
    [
        ("public, max-age=120", 120),
        ("max-age=5", 60),  # floored at min_ttl
        ("max-age=0", 60),  # never a refetch loop
        ("no-cache", 60),
        ("no-store, max-age=900", 60),
        ("max-age=9999999", 86_400),  # capped at max_ttl
        (None, 600),  # the default lifetime
        ('max-age="300"', 300),
        ("max-age=abc", 600),
    ],
)
async def test_lifetime_follows_cache_control_within_bounds(
    para: MockPara, clock: FakeClock, cache_control: str | None, lifetime: float
) -> None:
    para.cache_control = cache_control
    async with JWKSCache(para.jwks_url, clock=clock, refresh_ahead=False) as cache:
        await cache.get_key(para.current_kid)
        clock.advance(lifetime - 1)
        await cache.get_key(para.current_kid)
        assert para.jwks_requests == 1
        clock.advance(1)
        await cache.get_key(para.current_kid)
        assert para.jwks_requests == 2


async def test_age_is_subtracted_and_expires_is_honoured(para: MockPara, clock: FakeClock) -> None:
    para.cache_control = "max-age=300"
    para.age = 200
    async with JWKSCache(para.jwks_url, clock=clock, refresh_ahead=False) as cache:
        await cache.get_key(para.current_kid)
        assert cache.health().expires_at == datetime.fromtimestamp(clock.now + 100, UTC)

    para.cache_control, para.age = None, None
    para.expires = format_datetime(datetime.now(UTC).replace(microsecond=0), usegmt=True)
    # Expires is measured against the response's Date, so "now" means already stale.
    async with JWKSCache(para.jwks_url, clock=clock, refresh_ahead=False) as cache:
        await cache.get_key(para.current_kid)
        assert cache.health().expires_at == datetime.fromtimestamp(clock.now + 60, UTC)


# --- refresh ahead, revalidation -------------------------------------------------------


async def test_refresh_ahead_runs_in_the_background_before_expiry(
    para: MockPara, clock: FakeClock
) -> None:
    para.cache_control = "max-age=1000"
    token = para.issue_jwt(expires_in=5000)
    async with verifier(para, clock=clock, token_cache_size=0) as v:
        await v.verify(token)
        clock.advance(790)  # before the 80-90 % refresh point
        await v.verify(token)
        assert para.jwks_requests == 1
        para.set_latency(0.2)
        clock.advance(110)  # past it (900 s of 1000), still fresh
        await v.verify(token)  # answered from the cache, refresh started behind it
        assert v.health().refreshing  # type: ignore[union-attr]
        await v.refresh()  # joins the refresh in flight rather than starting another
        assert para.jwks_requests == 2
        assert not v.health().refreshing  # type: ignore[union-attr]
        assert v.health().expires_at == datetime.fromtimestamp(clock.now + 1000, UTC)  # type: ignore[union-attr]


async def test_refresh_point_is_jittered_between_80_and_90_percent(
    para: MockPara, clock: FakeClock
) -> None:
    para.cache_control = "max-age=1000"
    points = set()
    for _ in range(20):
        async with JWKSCache(para.jwks_url, clock=clock) as cache:
            await cache.refresh()
            next_refresh = cache.health().next_refresh
            assert next_refresh is not None
            points.add(next_refresh.timestamp() - clock.now)
    assert all(800 <= p <= 900 for p in points)
    assert len(points) > 1


async def test_304_revalidation_extends_lifetime_without_reimporting(
    para: MockPara, clock: FakeClock
) -> None:
    events: list[JWKSEvent] = []
    async with JWKSCache(
        para.jwks_url, clock=clock, refresh_ahead=False, on_event=events.append
    ) as cache:
        first = await cache.get_key(para.current_kid)
        clock.advance(600)
        second = await cache.get_key(para.current_kid)
        assert second is first  # the same imported key object
        assert para.jwks_requests == 2
        assert para.requests[-1].headers.get("If-None-Match")
        assert [e.kind for e in events].count(JWKSEventKind.REVALIDATED) == 1
        assert cache.health().status == "fresh"


async def test_unchanged_keys_are_reused_across_a_full_refetch(
    para: MockPara, clock: FakeClock
) -> None:
    async with JWKSCache(para.jwks_url, clock=clock, refresh_ahead=False) as cache:
        first = await cache.get_key(para.current_kid)
        para.publish_next()  # the document changes, our key does not
        clock.advance(600)
        assert await cache.get_key(para.current_kid) is first


# --- rotation, unknown kids, floods ------------------------------------------------------


async def test_a_rotated_key_is_found_without_restart(para: MockPara, clock: FakeClock) -> None:
    async with verifier(para, clock=clock) as v:
        await v.verify(para.issue_jwt())
        para.rotate()
        claims = await v.verify(para.issue_jwt())
        assert claims.key_id == para.current_kid
        assert para.jwks_requests == 2


@pytest.mark.slow  # 10,000 tokens, 15 s; make test: the refetch-budget tests below and in
# tests/test_properties.py
async def test_a_random_kid_flood_is_bounded_and_a_real_rotation_still_gets_through(
    para: MockPara, clock: FakeClock
) -> None:
    events: list[JWKSEvent] = []
    async with verifier(para, clock=clock, on_event=events.append) as v:
        await v.verify(para.issue_jwt())
        for _ in range(10_000):
            forged = para.issue_jwt(header={"kid": secrets.token_urlsafe(32)})
            with pytest.raises(UnknownKeyError):
                await v.verify(forged)
        # One cooldown window: the budget (2) of refetches, no more.
        assert para.jwks_requests == 1 + 2
        para.rotate()
        rotated = para.issue_jwt()
        with pytest.raises(UnknownKeyError):
            await v.verify(rotated)  # the window is spent...
        clock.advance(30)
        assert (await v.verify(rotated)).key_id == para.current_kid  # ...for one cooldown only
        assert para.jwks_requests == 4
    refused = [e for e in events if e.kind is JWKSEventKind.REFETCH_REFUSED]
    assert refused and {e.reason for e in refused} == {"cooldown"}


async def test_a_kid_looked_up_in_vain_costs_nothing_until_its_negative_ttl_ends(
    para: MockPara, clock: FakeClock
) -> None:
    events: list[JWKSEvent] = []
    async with verifier(para, clock=clock, on_event=events.append) as v:
        await v.verify(para.issue_jwt())
        forged = para.issue_jwt(header={"kid": "junk-kid"})
        for _ in range(5):
            with pytest.raises(UnknownKeyError):
                await v.verify(forged)
        assert para.jwks_requests == 2
        assert any(e.reason == "negative cache" for e in events)
        clock.advance(31)
        with pytest.raises(UnknownKeyError):
            await v.verify(forged)
        assert para.jwks_requests == 3


async def test_tokens_failing_cheap_checks_never_cause_a_refetch(
    para: MockPara, clock: FakeClock
) -> None:
    async with verifier(para, clock=clock) as v:
        await v.verify(para.issue_jwt())
        bad = [
            para.issue_jwt(header={"kid": "k1"}, audience="00000000-0000-4000-8000-000000000000"),
            para.issue_jwt(header={"kid": "k2"}, expires_in=-10),
            para.issue_jwt(header={"kid": "k3", "alg": "RS512"}),
            para.issue_jwt(header={"kid": "k\u00e9\u00e9"}),
            para.issue_jwt(header={"kid": "x" * 500}),
        ]
        for token in bad:
            with pytest.raises(InvalidTokenError):
                await v.verify(token)
        assert para.jwks_requests == 1


async def test_a_kid_published_twice_is_unusable_and_costs_no_refetch(
    para: MockPara, clock: FakeClock
) -> None:
    para.publish_jwk(para.public_jwk())  # the same kid again
    async with verifier(para, clock=clock) as v:
        with pytest.raises(UnknownKeyError, match="more than once"):
            await v.verify(para.issue_jwt())
        with pytest.raises(UnknownKeyError, match="more than once"):
            await v.verify(para.issue_jwt())
        assert para.jwks_requests == 1


async def test_one_bad_key_does_not_break_the_set(para: MockPara, clock: FakeClock) -> None:
    para.publish_jwk({"kty": "RSA", "kid": "broken", "n": "AQAB", "e": "AQAB"})
    para.publish_jwk({"kty": "oct", "kid": "secret", "k": "c2VjcmV0"})
    para.publish_jwk({"kty": "AKP", "kid": "post-quantum", "alg": "ML-DSA-65", "pub": "AAAA"})
    events: list[JWKSEvent] = []
    async with verifier(para, clock=clock, on_event=events.append) as v:
        await v.verify(para.issue_jwt())
        health = v.health()
        assert health is not None
        assert health.kids == (para.current_kid,)
        assert {s.kid for s in health.skipped} == {"broken", "secret", "post-quantum"}
    skipped = {e.kid for e in events if e.kind is JWKSEventKind.KEY_SKIPPED}
    assert skipped == {"broken", "secret", "post-quantum"}


# --- revocation ----------------------------------------------------------------------------


async def test_a_retired_key_stops_verifying_once_the_new_set_is_cached(
    para: MockPara, clock: FakeClock
) -> None:
    old_token = para.issue_jwt()
    old_kid = para.current_kid
    async with verifier(para, clock=clock, refresh_ahead=False) as v:
        await v.verify(old_token)
        await v.verify(old_token)  # now in the verified-token cache
        para.rotate()
        para.retire(old_kid)
        clock.advance(600)  # the cached set expires; the next verify refetches
        with pytest.raises(UnknownKeyError):
            await v.verify(old_token)
        await v.verify(para.issue_jwt())


async def test_a_key_replaced_under_the_same_kid_is_not_trusted_from_the_token_cache(
    para: MockPara, clock: FakeClock
) -> None:
    token = para.issue_jwt()
    kid = para.current_kid
    async with verifier(para, clock=clock, refresh_ahead=False) as v:
        await v.verify(token)
        other = MockPara(clock=clock)
        impostor = other.public_jwk()
        para.set_jwks({"keys": [{**impostor, "kid": kid}]})
        clock.advance(600)
        with pytest.raises(InvalidSignatureError):
            await v.verify(token)


# --- fetch hardening -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (lambda p: p.fail_next(500), "HTTP 500"),
        (lambda p: p.fail_next(404), "HTTP 404"),
        (lambda p: p.malformed_next(), "JSON"),
        (lambda p: p.oversized_next(2 * 1024 * 1024), "larger than"),
        (lambda p: p.redirect_next("http://127.0.0.1:9/elsewhere"), "HTTP 302"),
        (lambda p: p.drop_next(2), "Disconnected|Error"),  # aiohttp retries a GET once
        (lambda p: p.set_jwks({"kes": []}), "'keys' list"),
        (lambda p: p.set_jwks(b"[1, 2]"), "not a JSON object"),
        (lambda p: p.set_jwks(b'{"keys": [], "keys": []}'), "duplicate"),
    ],
)
async def test_a_bad_response_is_a_jwks_error_never_an_empty_cache(
    para: MockPara, clock: FakeClock, fault: object, reason: str
) -> None:
    fault(para)  # type: ignore[operator]
    events: list[JWKSEvent] = []
    async with verifier(para, clock=clock, on_event=events.append) as v:
        with pytest.raises(JWKSUnavailableError, match=reason) as info:
            await v.verify(para.issue_jwt())
        assert info.value.retry_after is not None and info.value.retry_after > 0
    assert [e.kind for e in events][-1] is JWKSEventKind.FETCH_FAILED


async def test_the_fetch_times_out(para: MockPara, clock: FakeClock) -> None:
    para.set_latency(0.5)
    async with verifier(para, clock=clock, timeout=0.05) as v:
        with pytest.raises(JWKSUnavailableError, match="timed out"):
            await v.verify(para.issue_jwt())


async def test_redirects_are_not_followed(para: MockPara, clock: FakeClock) -> None:
    async with MockPara(clock=clock) as elsewhere:
        para.redirect_next(elsewhere.jwks_url)
        async with verifier(para, clock=clock) as v:
            with pytest.raises(JWKSUnavailableError):
                await v.verify(para.issue_jwt())
        assert elsewhere.jwks_requests == 0


async def test_failures_back_off_instead_of_hammering_para(
    para: MockPara, clock: FakeClock
) -> None:
    para.down()
    token = para.issue_jwt()
    async with verifier(para, clock=clock) as v:
        for _ in range(50):
            with pytest.raises(JWKSUnavailableError):
                await v.verify(token)
        assert para.jwks_requests == 1
        clock.advance(1)
        with pytest.raises(JWKSUnavailableError):
            await v.verify(token)
        assert para.jwks_requests == 2
        para.up()
        clock.advance(2)
        await v.verify(token)
        assert para.jwks_requests == 3


# --- outages: stale-if-error, then fail closed -------------------------------------------------


async def test_an_outage_is_served_from_the_stale_set_then_fails_closed(
    para: MockPara, clock: FakeClock
) -> None:
    events: list[JWKSEvent] = []
    token = para.issue_jwt(expires_in=10_000)
    async with verifier(
        para, clock=clock, token_cache_size=0, on_event=events.append
    ) as v:
        await v.verify(token)
        para.down()
        clock.advance(600)  # expired: the refresh fails, the last good set serves
        await v.verify(token)
        assert v.health().status == "stale"  # type: ignore[union-attr]
        clock.advance(3000)  # an hour of outage, minus a little
        await v.verify(token)
        clock.advance(601)  # past max_stale: fail closed
        with pytest.raises(JWKSUnavailableError):
            await v.verify(token)
        assert v.health().status == "unavailable"  # type: ignore[union-attr]
        para.up()
        clock.advance(30)
        await v.verify(token)
        assert v.health().status == "fresh"  # type: ignore[union-attr]
    kinds = [e.kind for e in events]
    assert kinds.count(JWKSEventKind.STALE_STARTED) == 1
    assert kinds.count(JWKSEventKind.STALE_ENDED) == 1
    ended = next(e for e in events if e.kind is JWKSEventKind.STALE_ENDED)
    assert ended.reason is not None and "max_stale" in ended.reason


async def test_while_stale_requests_do_not_wait_on_a_hanging_para(
    para: MockPara, clock: FakeClock
) -> None:
    token = para.issue_jwt(expires_in=10_000)
    async with verifier(para, clock=clock, token_cache_size=0, timeout=0.05) as v:
        await v.verify(token)
        para.set_latency(0.5)
        clock.advance(600)
        await v.verify(token)  # waits once (the timeout), then serves stale
        assert not v.health().refreshing  # type: ignore[union-attr]
        clock.advance(5)  # past the first back-off: a retry starts in the background
        await v.verify(token)  # and this request is answered without waiting for it
        health = v.health()
        assert health is not None
        assert health.status == "stale" and health.refreshing


# --- health, events, warm start, lifecycle ---------------------------------------------------


async def test_health_reports_a_readiness_snapshot(para: MockPara, clock: FakeClock) -> None:
    async with JWKSCache(para.jwks_url, clock=clock) as cache:
        empty = cache.health()
        assert (empty.status, empty.ready, empty.kids) == ("empty", False, ())
        await cache.refresh()
        health = cache.health()
        assert health.status == "fresh" and health.ready
        assert health.kids == (para.current_kid,)
        assert health.age == 0
        assert health.last_success == datetime.fromtimestamp(clock.now, UTC)
        document = health.as_dict()
        assert document["status"] == "fresh" and document["kids"] == [para.current_kid]


async def test_fetch_events_carry_status_duration_and_key_changes(
    para: MockPara, clock: FakeClock
) -> None:
    events: list[JWKSEvent] = []
    async with JWKSCache(para.jwks_url, clock=clock, on_event=events.append) as cache:
        first_kid = para.current_kid
        await cache.refresh()
        para.rotate()
        para.retire(first_kid)
        await cache.refresh()
    succeeded = [e for e in events if e.kind is JWKSEventKind.FETCH_SUCCEEDED]
    assert [e.status for e in succeeded] == [200, 200]
    assert succeeded[0].added == (first_kid,)
    assert succeeded[1].added == (para.current_kid,) and succeeded[1].removed == (first_kid,)
    assert all(e.duration is not None and e.duration >= 0 for e in succeeded)
    assert [e.kind for e in events].count(JWKSEventKind.FETCH_STARTED) == 2


async def test_a_raising_event_callback_does_not_break_the_cache(
    para: MockPara, clock: FakeClock
) -> None:
    def explode(event: JWKSEvent) -> None:
        raise RuntimeError("metrics backend down")

    async with JWKSCache(para.jwks_url, clock=clock, on_event=explode) as cache:
        assert (await cache.get_key(para.current_kid)).kid == para.current_kid


async def test_warm_start_from_exported_state_skips_the_first_fetch(
    para: MockPara, clock: FakeClock
) -> None:
    async with JWKSCache(para.jwks_url, clock=clock) as cache:
        await cache.refresh()
        state = cache.export_state()
    assert state is not None
    async with JWKSCache(para.jwks_url, clock=clock, initial_state=state) as warm:
        await warm.get_key(para.current_kid)
        assert para.jwks_requests == 1
        clock.advance(600)  # the state's own expiry still applies
        await warm.get_key(para.current_kid)
        assert para.jwks_requests == 2


async def test_warm_state_is_checked(para: MockPara, clock: FakeClock) -> None:
    async with JWKSCache(para.jwks_url, clock=clock) as cache:
        await cache.refresh()
        state = cache.export_state()
    assert state is not None
    with pytest.raises(ConfigurationError, match=r"^JWKSCache: .*another JWKS URL"):
        JWKSCache("https://api.getpara.com/.well-known/jwks.json", initial_state=state)
    with pytest.raises(ConfigurationError, match="not usable"):
        JWKSCache(para.jwks_url, initial_state={**state, "jwks": "nope"})
    hostile = {**state, "jwks": {"keys": [{**para.private_jwk(), "kid": "private"}]}}
    async with JWKSCache(para.jwks_url, clock=clock, initial_state=hostile) as cache:
        assert cache.health().kids == ()
        assert [s.reason for s in cache.health().skipped] == ["carries private key material"]


async def test_a_borrowed_session_is_not_closed(para: MockPara, clock: FakeClock) -> None:
    async with aiohttp.ClientSession() as session:
        async with verifier(para, clock=clock, session=session) as v:
            await v.verify(para.issue_jwt())
        assert not session.closed


async def test_close_cancels_a_fetch_in_flight(para: MockPara, clock: FakeClock) -> None:
    para.set_latency(1.0)
    cache = JWKSCache(para.jwks_url, clock=clock)
    pending = asyncio.ensure_future(cache.refresh())
    await asyncio.sleep(0.05)
    await cache.close()
    with pytest.raises((asyncio.CancelledError, JWKSUnavailableError)):
        await pending
    with pytest.raises(JWKSUnavailableError, match="closed"):
        await cache.refresh()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": 0}, "timeout"),
        ({"min_ttl": -1}, "min_ttl"),
        ({"max_ttl": 10, "min_ttl": 60}, "max_ttl"),
        ({"refetch_budget": 0}, "refetch_budget"),
        ({"max_body_size": 10}, "max_body_size"),
        ({"max_stale": float("nan")}, "max_stale"),
    ],
)
def test_cache_options_are_validated(options: dict[str, float], message: str) -> None:
    # The message names the class the user called, then the option.
    with pytest.raises(ConfigurationError, match=f"^JWKSCache: {message}"):
        JWKSCache("https://api.getpara.com/.well-known/jwks.json", **options)  # type: ignore[arg-type]


async def test_an_unknown_kid_during_an_outage_is_unavailable_not_the_users_fault(
    para: MockPara, clock: FakeClock
) -> None:
    async with verifier(para, clock=clock) as v:
        await v.verify(para.issue_jwt())
        para.rotate()
        para.down()
        clock.advance(600)
        await v.verify(para.issue_jwt(kid=v.jwks.health().kids[0]))  # type: ignore[union-attr]
        with pytest.raises(JWKSUnavailableError) as info:
            await v.verify(para.issue_jwt())  # the new key: maybe real, we cannot tell
        assert info.value.retry_after is not None and info.value.retry_after >= 1
        para.up()
        clock.advance(30)
        assert (await v.verify(para.issue_jwt())).key_id == para.current_kid


async def test_rotation_drill_publish_then_sign_then_retire(
    para: MockPara, clock: FakeClock
) -> None:
    """Para's safe rotation: publish the next key a cache lifetime ahead, switch
    signing to it, retire the old one. No request ever needs an unknown-kid refetch."""
    events: list[JWKSEvent] = []
    old_kid = para.current_kid
    async with verifier(
        para, clock=clock, refresh_ahead=False, token_cache_size=0, on_event=events.append
    ) as v:
        old_token = para.issue_jwt(expires_in=7200)
        await v.verify(old_token)
        next_kid = para.publish_next()
        clock.advance(600)  # one lifetime: every cache now holds both keys
        await v.verify(old_token)
        assert set(v.health().kids) == {old_kid, next_kid}  # type: ignore[union-attr]
        para.rotate()
        assert para.current_kid == next_kid
        assert (await v.verify(para.issue_jwt())).key_id == next_kid
        assert para.jwks_requests == 2  # the switch to the new key cost no refetch
        para.retire(old_kid)
        clock.advance(600)
        with pytest.raises(UnknownKeyError):
            await v.verify(old_token)
        assert (await v.verify(para.issue_jwt())).key_id == next_kid
    assert not [e for e in events if e.kind is JWKSEventKind.REFETCH_REFUSED]
    # The refresh after retirement, plus one refetch for the retired kid (it might
    # have been a new key), after which it sits in the negative cache.
    assert para.jwks_requests == 4


async def test_cache_options_are_passed_through_and_refused_with_pinned_keys(
    para: MockPara, clock: FakeClock
) -> None:
    async with verifier(para, clock=clock, cooldown=5, refetch_budget=1) as v:
        await v.verify(para.issue_jwt())
        for _ in range(3):
            with pytest.raises(UnknownKeyError):
                await v.verify(para.issue_jwt(header={"kid": secrets.token_urlsafe(8)}))
        assert para.jwks_requests == 2  # budget 1 per 5 s window
        clock.advance(5)
        with pytest.raises(UnknownKeyError):
            await v.verify(para.issue_jwt(header={"kid": secrets.token_urlsafe(8)}))
        assert para.jwks_requests == 3
    with pytest.raises(ConfigurationError, match="cooldown: key-cache options have no effect"):
        ParaVerifier(para.api_key_id, jwks=para.jwks(), cooldown=5)


async def test_hostile_kids_cannot_forge_log_lines(
    para: MockPara, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    para.publish_jwk({"kty": "oct", "kid": "x\n2027-01-01 CRITICAL forged\x1b[31m" + "k" * 500})
    caplog.set_level("DEBUG", logger="para_jwt")
    async with JWKSCache(para.jwks_url, clock=clock) as cache:
        await cache.refresh()
    skipped = [r.getMessage() for r in caplog.records if "key_skipped" in r.getMessage()]
    assert len(skipped) == 1
    assert "\n" not in skipped[0] and "\x1b" not in skipped[0]
    assert "\\n2027-01-01 CRITICAL forged\\x1b" in skipped[0]
    assert len(skipped[0]) < 400
