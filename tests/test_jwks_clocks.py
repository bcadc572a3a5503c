"""The key cache measures its durations on the monotonic clock: wall-clock steps change nothing.

Each test replays a scenario in which the cache once followed the wall clock
(the hardening issue, item 2); ``FakeClock.step`` moves the wall clock alone.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from para_jwt import (
    ConfigurationError,
    JWKSCache,
    JWKSUnavailableError,
    ParaVerifier,
    UnknownKeyError,
)
from para_jwt.testing import FakeClock, MockPara

DAY = 86_400.0


@pytest.fixture
async def para(clock: FakeClock) -> AsyncIterator[MockPara]:
    async with MockPara(clock=clock) as mock:
        yield mock


@pytest.fixture
async def cache(para: MockPara, clock: FakeClock) -> AsyncIterator[JWKSCache]:
    """A cache that has just fetched a set Para serves with ``max-age=600``."""
    para.cache_control = "max-age=600"
    async with JWKSCache(para.jwks_url, clock=clock, refresh_ahead=False) as fetched:
        await fetched.refresh()
        yield fetched


def test_fake_clock_advance_moves_both_clocks_and_step_only_the_wall_clock() -> None:
    clock = FakeClock(1_800_000_000.0)
    start = clock.monotonic()
    clock.advance(10)
    assert (clock(), clock.monotonic()) == (1_800_000_010.0, start + 10)
    clock.step(-3600)
    clock.step(+7)
    assert (clock(), clock.monotonic()) == (1_799_996_417.0, start + 10)
    clock.now = 5.0  # assigning keeps working, and moves the wall clock alone
    assert (clock(), clock.now, clock.monotonic()) == (5.0, 5.0, start + 10)
    with pytest.raises(ConfigurationError, match=r"FakeClock\.step takes a finite"):
        clock.step(float("nan"))
    with pytest.raises(ConfigurationError, match=r"FakeClock\.advance takes .*non-negative"):
        clock.advance(-1)


async def test_a_withdrawn_key_stops_within_max_ttl_after_the_wall_clock_steps_back_two_days(
    para: MockPara, clock: FakeClock
) -> None:
    para.cache_control = "max-age=999999"
    # Issued long before and valid long after, so only the key decides.
    token = para.issue_jwt(issued_at=clock.now - 3 * DAY, expires_in=6 * DAY)
    old_kid = para.current_kid
    async with para.verifier(
        max_ttl=3600, token_cache_size=0, refresh_ahead=False
    ) as verifier:
        await verifier.verify(token)
        para.rotate()
        para.retire(old_kid)
        clock.step(-2 * DAY)
        clock.advance(3599)
        await verifier.verify(token)  # within max_ttl: still the cached set
        clock.advance(1)
        with pytest.raises(UnknownKeyError):
            await verifier.verify(token)
        # The refresh at max_ttl, and one refetch for the kid (it might be new).
        assert para.jwks_requests == 3


async def test_one_failed_fetch_then_an_hour_back_gives_no_503_once_para_is_healthy(
    para: MockPara, clock: FakeClock
) -> None:
    para.fail_next(500)
    async with para.verifier() as verifier:
        with pytest.raises(JWKSUnavailableError):
            await verifier.verify(para.issue_jwt())
        clock.step(-3600)
        clock.advance(1)  # the one-second back-off, on the monotonic clock
        claims = await verifier.verify(para.issue_jwt())
        assert claims.key_id == para.current_kid
        assert verifier.health().status == "fresh"


async def test_a_rotated_in_key_is_accepted_after_the_wall_clock_steps_back(
    para: MockPara, clock: FakeClock
) -> None:
    async with para.verifier() as verifier:
        await verifier.verify(para.issue_jwt())
        for _ in range(2):  # junk kids spend this window's refetch budget
            with pytest.raises(UnknownKeyError):
                await verifier.verify(para.issue_jwt(header={"kid": secrets.token_urlsafe(8)}))
        clock.step(-3600)
        clock.advance(30)  # one cooldown later on the monotonic clock
        para.rotate()
        assert (await verifier.verify(para.issue_jwt())).key_id == para.current_kid


async def test_a_forward_step_neither_expires_the_set_nor_ends_the_negative_cache(
    para: MockPara, clock: FakeClock
) -> None:
    async with para.verifier() as verifier:
        await verifier.verify(para.issue_jwt())
        with pytest.raises(UnknownKeyError):
            await verifier.verify(para.issue_jwt(header={"kid": "junk"}))
        assert para.jwks_requests == 2
        clock.step(2 * DAY)
        with pytest.raises(UnknownKeyError):
            await verifier.verify(para.issue_jwt(header={"kid": "junk"}))
        await verifier.verify(para.issue_jwt())
        assert para.jwks_requests == 2
        assert verifier.health().status == "fresh"


async def test_health_dates_follow_the_wall_clock_and_durations_the_monotonic_one(
    cache: JWKSCache, clock: FakeClock
) -> None:
    fetched_wall = clock.now
    clock.advance(100)
    clock.step(-DAY)
    health = cache.health()
    assert health.status == "fresh" and health.age == 100
    assert health.fetched_at == datetime.fromtimestamp(fetched_wall, UTC)
    assert health.last_success == datetime.fromtimestamp(fetched_wall, UTC)
    # Dated from the wall clock at the fetch; the step changes no bound.
    assert health.expires_at == datetime.fromtimestamp(fetched_wall + 600, UTC)
    clock.advance(499)
    assert cache.health().status == "fresh"
    clock.advance(1)
    assert cache.health().status == "stale"


async def test_a_warm_start_keeps_its_age_across_processes_with_other_monotonic_clocks(
    para: MockPara, clock: FakeClock, cache: JWKSCache
) -> None:
    clock.advance(100)
    state = cache.export_state()
    assert state is not None
    assert state["expires_at"] - state["fetched_at"] == 600

    other_process = FakeClock(clock.now + 200)  # 300 s after the fetch, another origin
    other_process.advance(123_456)  # its monotonic clock far from ours
    other_process.step(-123_456)
    async with JWKSCache(
        para.jwks_url, clock=other_process, refresh_ahead=False, initial_state=state
    ) as warm:
        assert warm.health().age == 300
        await warm.get_key(para.current_kid)
        other_process.advance(299)
        await warm.get_key(para.current_kid)
        assert para.jwks_requests == 1
        other_process.advance(1)  # 600 s after the fetch: expired
        await warm.get_key(para.current_kid)
        assert para.jwks_requests == 2


async def test_a_warm_state_from_the_future_counts_as_just_fetched(
    para: MockPara, clock: FakeClock, cache: JWKSCache
) -> None:
    state = cache.export_state()
    assert state is not None
    future = {**state, "fetched_at": clock.now + DAY, "expires_at": clock.now + 2 * DAY}
    async with JWKSCache(
        para.jwks_url, clock=clock, max_ttl=3600, refresh_ahead=False, initial_state=future
    ) as warm:
        assert warm.health().age == 0
        clock.advance(3600)  # bounded by max_ttl from now, whatever the state claims
        await warm.get_key(para.current_kid)
        assert para.jwks_requests == 2


def test_monotonic_is_passed_through_the_verifier() -> None:
    ticks = iter(range(1_000, 10**6))
    verifier = ParaVerifier(
        "8c67b747-1b2c-4d5e-8f90-123456789abc",
        environment="sandbox",
        monotonic=lambda: float(next(ticks)),
    )
    cache = verifier.jwks
    assert cache is not None
    assert cache.health().status == "empty"
    assert cache._monotonic() < cache._monotonic()
