"""What the key-cache machine found, kept as tests, and proof that it can fail.

Counterexamples it shrank are regression tests; each mutation breaks one
documented rule of ``JWKSCache`` and the machine (``tests/test_model_keycache.py``)
must fail within the CI profile.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis.stateful import run_state_machine_as_test

from para_jwt import JWKSCache, JWKSError
from para_jwt.testing import FakeClock, MockPara
from tests._cache_model import mutation_settings
from tests.test_model_keycache import KeyCacheMachine

# --- counterexamples the machine found, kept as regression tests ---------------------------


def test_regression_a_wall_clock_step_back_leaves_health_age_alone() -> None:
    # Shrunk on 0.1.0 (main): the cache measured age on the wall clock, so after
    # a step of two days back health() said age -172800 s.
    machine = KeyCacheMachine()
    try:
        machine.refresh()
        machine.step_wall_clock(-2 * 86_400.0)
        machine.agrees_with_the_model()
    finally:
        machine.teardown()


def test_regression_a_withdrawn_key_stops_verifying_after_a_wall_step_back() -> None:
    # Issue 11 item 2, as the machine found it on 0.1.0: the set's lifetime (120 s)
    # passed on the monotonic clock, but a step of two days back made the cache
    # believe it fresh, and a key Para had withdrawn kept verifying.
    machine = KeyCacheMachine()
    try:
        machine.issue(kind="valid", key=0, age=2.5 * 86_400, life=10 * 86_400.0)
        machine.verify(i=5)
        machine.publish_next()
        machine.withdraw(i=0)
        machine.step_wall_clock(-2 * 86_400.0)
        machine.advance(170.77)
        machine.verify(i=5)  # must refetch and refuse the withdrawn key
        machine.agrees_with_the_model()
    finally:
        machine.teardown()


async def test_regression_a_closed_cache_makes_no_request(clock: FakeClock) -> None:
    async with MockPara(clock=clock) as para:
        verifier = para.verifier()
        token = para.issue_jwt(expires_in=86_400)
        await verifier.refresh()
        para.fail_next(503)
        with pytest.raises(JWKSError):
            await verifier.refresh()
        clock.advance(601)  # past the 600 s lifetime, within max_stale
        await verifier.close()
        before = para.jwks_requests
        await verifier.verify(token)  # stale-if-error: may answer, must not fetch
        await asyncio.sleep(0.05)
        requests_after_close = para.jwks_requests - before
        await verifier.close()  # the session a retry opened, if any
        assert requests_after_close == 0


async def test_regression_a_warm_start_after_a_wall_step_keeps_the_remaining_lifetime(
    clock: FakeClock,
) -> None:
    async with MockPara(clock=clock) as para:
        async with para.verifier() as verifier:
            await verifier.refresh()  # lifetime 600 s (max-age=600)
            clock.advance(590)
            clock.step(-3600)  # NTP steps the wall clock back an hour
            state = verifier.jwks.export_state()
        async with para.verifier(initial_state=state) as warm:
            health = warm.health()
            assert health.age == pytest.approx(590)  # it is 590 s old, 10 s left
            clock.advance(11)
            assert warm.health().status != "fresh"


# --- mutations: break one documented rule, the machine must notice ------------------------


def _mutated_cache(monkeypatch: pytest.MonkeyPatch, mutate: Callable[[JWKSCache], None]) -> None:
    original = JWKSCache.__init__

    def init(self: JWKSCache, *args: Any, **options: Any) -> None:
        original(self, *args, **options)
        mutate(self)

    monkeypatch.setattr(JWKSCache, "__init__", init)


def _machine_fails() -> str:
    # Always the CI profile (derandomized): the claim is "found within CI's budget".
    with pytest.raises(AssertionError) as failure:
        run_state_machine_as_test(KeyCacheMachine, settings=mutation_settings(60))
    return str(failure.value)


MUTATIONS: dict[str, Callable[[JWKSCache], None]] = {
    # Durations on the wall clock again (the 0.1.0 bug).
    "monotonic_is_the_wall_clock": lambda cache: setattr(cache, "_monotonic", cache._clock),
    # No refetch budget.
    "unlimited_refetches": lambda cache: setattr(cache._budget, "_refetch_budget", 10**9),
    # Stale keys served for ever, never failing closed.
    "no_max_stale": lambda cache: setattr(cache, "_max_stale", math.inf),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_breaking_a_documented_rule_makes_the_machine_fail(
    monkeypatch: pytest.MonkeyPatch, mutation: str
) -> None:
    _mutated_cache(monkeypatch, MUTATIONS[mutation])
    print(f"\n{mutation}: {_machine_fails().splitlines()[0]}")
