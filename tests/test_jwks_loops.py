"""One key cache for every event loop and thread, and fetch failures that stay ParaJWTErrors.

MockPara runs on its own loop in a background thread here, so the code under
test can open and close as many loops as it likes, as a Flask-style wrapper
(``asyncio.run`` per request) or a thread pool with a loop per thread does.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import aiohttp
import pytest

from para_jwt import (
    ConfigurationError,
    JWKSCache,
    JWKSEvent,
    JWKSEventKind,
    JWKSUnavailableError,
    ParaJWTError,
    ParaVerifier,
)
from para_jwt._per_loop import PerLoopFlight
from para_jwt.testing import FakeClock, MockPara

T = TypeVar("T")


class ParaThread:
    """A MockPara serving from its own loop on a background thread."""

    def __init__(self, clock: FakeClock) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.para = MockPara(clock=clock)
        self.call(lambda: None)
        asyncio.run_coroutine_threadsafe(self.para.__aenter__(), self.loop).result(10)

    def call(self, action: Callable[[], T]) -> T:
        """Run ``action`` on the server's loop (no request is half-served meanwhile)."""

        async def run() -> T:
            return action()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def close(self) -> None:
        leaving = self.para.__aexit__(None, None, None)
        asyncio.run_coroutine_threadsafe(leaving, self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def server(clock: FakeClock) -> Iterator[ParaThread]:
    running = ParaThread(clock)
    yield running
    running.close()


def make_verifier(server: ParaThread, clock: FakeClock, **options: Any) -> ParaVerifier:
    para = server.para
    return ParaVerifier(para.api_key_id, jwks_url=para.jwks_url, clock=clock, **options)


# --- asyncio.run per call ----------------------------------------------------------------


def test_asyncio_run_per_call_over_hours_of_refreshes_a_rotation_and_an_outage(
    server: ParaThread, clock: FakeClock
) -> None:
    para = server.para
    verifier = make_verifier(server, clock, token_cache_size=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        for hour in range(6):
            for _ in range(6):  # every ten minutes: past each lifetime, a refetch
                token = server.call(lambda: para.issue_jwt(expires_in=7200))
                claims = asyncio.run(verifier.verify(token))
                assert claims.key_id == server.call(lambda: para.current_kid)
                clock.advance(600)
            if hour == 2:
                server.call(para.rotate)  # found by an unknown-kid refetch
            if hour == 4:
                server.call(para.down)
                token = server.call(lambda: para.issue_jwt(expires_in=7200))
                for _ in range(3):  # stale-if-error, loop after loop
                    assert asyncio.run(verifier.verify(token)).user_id
                    clock.advance(600)
                clock.advance(3600)
                with pytest.raises(JWKSUnavailableError):
                    asyncio.run(verifier.verify(token))
                server.call(para.up)
                clock.advance(30)
        asyncio.run(verifier.close())
    assert server.para.jwks_requests > 30


def test_a_loop_closed_during_a_refresh_does_not_poison_the_next(
    server: ParaThread, clock: FakeClock
) -> None:
    para = server.para
    para.cache_control = "max-age=1000"
    verifier = make_verifier(server, clock, token_cache_size=0)
    token = server.call(lambda: para.issue_jwt(expires_in=9000))
    asyncio.run(verifier.verify(token))
    clock.advance(950)  # past the refresh point: the verify starts a background refresh
    server.call(lambda: para.set_latency(0.3))
    asyncio.run(verifier.verify(token))  # its loop closes with that refresh in flight
    server.call(lambda: para.set_latency(0))
    clock.advance(100)  # expired: this call must fetch on its own loop
    assert asyncio.run(verifier.verify(token)).key_id == para.current_kid
    asyncio.run(verifier.close())


# --- many threads, each with its own loop --------------------------------------------------


def test_eight_threads_with_their_own_loops_through_a_rotation(
    server: ParaThread, clock: FakeClock
) -> None:
    para = server.para
    fetches: Counter[tuple[int, int]] = Counter()  # (thread, phase) -> fetches started
    phase = [0]

    def count(event: JWKSEvent) -> None:
        if event.kind is JWKSEventKind.FETCH_STARTED:
            fetches[threading.get_ident(), phase[0]] += 1

    verifier = make_verifier(server, clock, token_cache_size=0, on_event=count)
    threads = 8
    barrier = threading.Barrier(threads + 1)
    tokens: list[str] = []
    kids: list[str] = []
    results: list[list[Any]] = [[] for _ in range(threads)]

    async def verify_all(batch: list[str]) -> list[Any]:
        return await asyncio.gather(*(verifier.verify(t) for t in batch), return_exceptions=True)

    def worker(index: int) -> None:
        loop = asyncio.new_event_loop()
        try:
            for _ in range(3):
                barrier.wait(30)  # the main thread has set the phase's tokens
                results[index].extend(loop.run_until_complete(verify_all(tokens * 10)))
                barrier.wait(30)
            loop.run_until_complete(verifier.close())
        finally:
            loop.close()

    with ThreadPoolExecutor(threads) as pool:
        running = [pool.submit(worker, i) for i in range(threads)]
        for step in range(3):
            phase[0] = step
            if step == 1:
                server.call(para.rotate)  # an unknown kid, for every thread at once
            if step == 2:
                clock.advance(600)  # the set expires: a refresh
            kid = server.call(lambda: para.current_kid)
            kids.append(kid)
            tokens[:] = [server.call(partial(para.issue_jwt, kid=kid)) for _ in range(5)]
            barrier.wait(30)
            barrier.wait(30)
        for future in running:
            future.result(30)

    for outcome in results:
        assert len(outcome) == 150
        failures = [r for r in outcome if isinstance(r, BaseException)]
        assert failures == []
        # No wrong result: each phase's tokens verified under that phase's key.
        assert [claims.key_id for claims in outcome] == [k for k in kids for _ in range(50)]
    assert fetches and max(fetches.values()) == 1  # one fetch per refresh per loop at most


# --- a borrowed session stays on its loop ----------------------------------------------------


def test_a_borrowed_session_used_from_another_loop_is_a_configuration_error(
    server: ParaThread, clock: FakeClock
) -> None:
    para = server.para
    token = server.call(para.issue_jwt)

    async def make_session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    home = asyncio.new_event_loop()
    try:
        session = home.run_until_complete(make_session())
        verifier = make_verifier(server, clock, session=session)
        assert home.run_until_complete(verifier.verify(token)).key_id == para.current_kid
        clock.advance(600)
        with pytest.raises(ConfigurationError, match=r"JWKSCache .*ParaVerifier.*session="):
            asyncio.run(verifier.verify(token))
        home.run_until_complete(verifier.close())
        assert not session.closed  # borrowed: never closed by us
        home.run_until_complete(session.close())
    finally:
        home.close()


async def test_a_borrowed_session_the_app_closed_is_a_jwks_failure(
    server: ParaThread, clock: FakeClock
) -> None:
    para = server.para
    events: list[JWKSEvent] = []
    session = aiohttp.ClientSession()
    await session.close()
    async with make_verifier(server, clock, session=session, on_event=events.append) as v:
        with pytest.raises(JWKSUnavailableError, match="RuntimeError") as info:
            await v.verify(server.call(para.issue_jwt))
        assert info.value.retry_after == 1.0  # the back-off applies
        health = v.health()
        assert health is not None
        assert health.consecutive_failures == 1 and health.last_error is not None
        assert "Session is closed" in health.last_error
    assert [e.kind for e in events] == [JWKSEventKind.FETCH_STARTED, JWKSEventKind.FETCH_FAILED]


async def test_a_stale_set_serves_when_an_unexpected_error_breaks_the_refresh(
    server: ParaThread, clock: FakeClock
) -> None:
    para = server.para
    session = aiohttp.ClientSession()
    async with make_verifier(server, clock, session=session, token_cache_size=0) as v:
        token = server.call(lambda: para.issue_jwt(expires_in=9000))
        await v.verify(token)
        await session.close()
        clock.advance(600)
        assert (await v.verify(token)).key_id == para.current_kid  # stale-if-error
        health = v.health()
        assert health is not None and health.status == "stale"


async def test_close_while_callers_wait_on_a_fetch_gives_them_a_para_jwt_error(
    server: ParaThread, clock: FakeClock
) -> None:
    para = server.para
    server.call(lambda: para.set_latency(1.0))
    verifier = make_verifier(server, clock)
    tokens = [server.call(para.issue_jwt) for _ in range(3)]
    waiting = [asyncio.ensure_future(verifier.verify(t)) for t in tokens]
    await asyncio.sleep(0.1)
    await verifier.close()
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(o, ParaJWTError) for o in outcomes), outcomes
    assert all(isinstance(o, JWKSUnavailableError) for o in outcomes)


def test_close_cancels_a_fetch_in_flight_on_another_running_loop(
    server: ParaThread, clock: FakeClock
) -> None:
    para = server.para
    server.call(lambda: para.set_latency(2.0))
    cache = JWKSCache(para.jwks_url, clock=clock)
    started = threading.Event()
    outcome: list[BaseException | None] = []

    async def fetch() -> None:
        task = asyncio.ensure_future(cache.refresh())
        await asyncio.sleep(0)
        started.set()
        try:
            await task
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    other = threading.Thread(target=lambda: asyncio.run(fetch()))
    other.start()
    assert started.wait(10)
    asyncio.run(cache.close())
    other.join(1.5)  # well before the 2 s answer: the fetch was cancelled
    assert not other.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], JWKSUnavailableError)


def test_waiting_on_a_loop_that_closes_before_answering_leaves_nothing_behind() -> None:
    # A fetch in flight on another loop, which stops running and then closes without
    # running what the waiting caller scheduled there. The caller gives up after its
    # patience; nothing it scheduled may outlive that loop as a coroutine never
    # awaited (a RuntimeWarning, an error under -W error: it failed a CI run).
    flights: PerLoopFlight[None] = PerLoopFlight(lambda: JWKSUnavailableError("stopped"))
    other = asyncio.new_event_loop()
    other.set_exception_handler(lambda loop, context: None)  # the abandoned fetch's task

    async def start_a_fetch() -> None:
        flights.start(asyncio.Event().wait())

    other.run_until_complete(start_a_fetch())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert asyncio.run(flights.wait_elsewhere(0.01)) is True  # gave up waiting
        other.close()
        del other
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]
