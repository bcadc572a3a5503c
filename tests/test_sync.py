"""SyncParaVerifier and SyncParaAPI: blocking calls over real loopback HTTP."""

from __future__ import annotations

import asyncio
import functools
import gc
import subprocess
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hammer import hammer_through_rotation

import para_jwt
from para_jwt import (
    ConfigurationError,
    InvalidSignatureError,
    JWKSUnavailableError,
    ParaJWTError,
    SessionExpiredError,
    SyncParaAPI,
    SyncParaVerifier,
    TokenExpiredError,
    UnknownKeyError,
    _loop_thread,
)
from para_jwt.testing import FakeClock, MockPara


@pytest.fixture
def para(clock: FakeClock) -> Iterator[MockPara]:
    with MockPara(clock=clock) as mock:
        yield mock


def io_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name in ("para_jwt-io", "MockPara")]


@pytest.fixture
def count_hops(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the coroutines sync code sends to the background loop."""
    hops = [0]
    submit = _loop_thread.PORTAL.submit

    def counting(owner: Any, coro: Any) -> Any:
        hops[0] += 1
        return submit(owner, coro)

    monkeypatch.setattr(_loop_thread.PORTAL, "submit", counting)
    return hops


def test_exported() -> None:
    assert "SyncParaVerifier" in para_jwt.__all__
    assert "SyncParaAPI" in para_jwt.__all__


def test_verify_blocks_without_an_event_loop(para: MockPara, count_hops: list[int]) -> None:
    token = para.issue_jwt(user_id="u-1")
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()  # the caller has no loop
    with para.sync_verifier() as verifier:
        assert verifier.verify(token).user_id == "u-1"
        assert count_hops == [1] and para.jwks_requests == 1
        # A hit, then a new token under a known key: no thread hop, no fetch.
        assert verifier.verify(token).user_id == "u-1"
        assert verifier.verify(para.issue_jwt(user_id="u-2")).user_id == "u-2"
        assert count_hops == [1] and para.jwks_requests == 1


def test_same_errors_as_async(para: MockPara, clock: FakeClock) -> None:
    with para.sync_verifier() as verifier:
        token = para.issue_jwt(expires_in=60)
        header, payload, signature = token.split(".")
        forged = f"{header}.{payload}.{signature[:-4]}AAAA"
        with pytest.raises(InvalidSignatureError):
            verifier.verify(forged)
        with pytest.raises(UnknownKeyError):
            verifier.verify(para.issue_jwt(header={"kid": "never-published"}))
        clock.advance(61)
        with pytest.raises(TokenExpiredError):
            verifier.verify(token)


def test_a_failed_fetch_raises_jwks_unavailable(para: MockPara) -> None:
    para.down()
    with para.sync_verifier() as verifier:
        with pytest.raises(JWKSUnavailableError):
            verifier.verify(para.issue_jwt())
        with pytest.raises(JWKSUnavailableError):
            verifier.refresh()
        para.up()
        verifier.refresh()
        health = verifier.health()
        assert health is not None
        assert health.ready
        verifier.verify(para.issue_jwt())


def test_no_token_in_a_sync_error_traceback(para: MockPara) -> None:
    with para.sync_verifier() as verifier:
        verifier.refresh()
        token = para.issue_jwt()
        header, payload, signature = token.split(".")
        forged = f"{header}.{payload}.{signature[:-4]}AAAA"
        para.down()
        cold = para.issue_jwt(kid=para.rotate())
        for bad in (forged, cold, forged.encode()):
            error = raised_by(functools.partial(verifier.verify, bad))
            assert isinstance(error, ParaJWTError)
            assert_no_token(error, bad if isinstance(bad, str) else bad.decode())


def raised_by(call: Callable[[], object]) -> BaseException:
    """What ``call`` raises, with a traceback of the library's frames only."""
    try:
        call()
    except BaseException as exc:  # returned for inspection
        tb = exc.__traceback__
        return exc.with_traceback(None if tb is None else tb.tb_next)  # not this frame
    raise AssertionError("nothing raised")


def assert_no_token(error: BaseException, token: str) -> None:
    pieces = [token, token.encode(), *token.split("."), *(p.encode() for p in token.split("."))]
    rendered = "".join(
        traceback.TracebackException(
            type(error), error, error.__traceback__, capture_locals=True
        ).format()
    )
    assert not any(str(p) in rendered for p in pieces if isinstance(p, str))
    seen: BaseException | None = error
    while seen is not None:
        tb = seen.__traceback__
        while tb is not None:
            for value in tb.tb_frame.f_locals.values():
                assert not any(value is p or value == p for p in pieces)
            tb = tb.tb_next
        seen = seen.__cause__ or seen.__context__


def test_close_stops_the_background_thread(clock: FakeClock) -> None:
    with MockPara(clock=clock) as para:
        verifier = para.sync_verifier()
        api = para.sync_api()
        token = para.issue_jwt()
        verifier.verify(token)
        api.verify_session(para.issue_verification_token())
        assert [t.name for t in io_threads()].count("para_jwt-io") == 1
        verifier.close()
        assert [t.name for t in io_threads()].count("para_jwt-io") == 1  # api uses it
        api.close()
        api.close()  # twice is fine
        assert [t.name for t in io_threads()] == ["MockPara"]
        assert verifier.verify(token)  # a hit needs no loop
        with pytest.raises(JWKSUnavailableError):
            verifier.verify(para.issue_jwt(kid=para.rotate()))
    assert io_threads() == []


def test_closing_an_unused_instance_starts_nothing() -> None:
    verifier = SyncParaVerifier("8c67b747-8f0c-4dd0-9f83-4f8ca5f77d3c", environment="beta")
    verifier.close()
    assert io_threads() == []


def test_cold_cache_and_a_thousand_callers_make_one_fetch(para: MockPara) -> None:
    tokens = [para.issue_jwt(user_id=f"user-{i}") for i in range(50)]
    para.set_latency(0.3)  # keep the one fetch in flight while every caller arrives
    start = threading.Barrier(1000)
    results: list[str | BaseException] = [""] * 1000

    def caller(index: int) -> None:
        start.wait()
        try:
            results[index] = verifier.verify(tokens[index % 50]).user_id
        except BaseException as exc:  # collected and checked below
            results[index] = exc

    with para.sync_verifier() as verifier:
        threads = [threading.Thread(target=caller, args=(i,)) for i in range(1000)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert results == [f"user-{i % 50}" for i in range(1000)]
    assert para.jwks_requests == 1


def test_eight_threads_through_a_rotation(para: MockPara, clock: FakeClock) -> None:
    with para.sync_verifier(token_cache_size=16) as verifier:
        hammer_through_rotation(para, clock, lambda _worker, token: verifier.verify(token).user_id)
    # One fetch at start, one for the rotated kid, one refresh after the clock moved.
    assert para.jwks_requests <= 3
    assert [t.name for t in io_threads()] == ["MockPara"]


def test_many_threads_churn_a_small_token_cache(para: MockPara) -> None:
    tokens = [(f"u-{i}", para.issue_jwt(user_id=f"u-{i}")) for i in range(64)]
    with para.sync_verifier(token_cache_size=8) as verifier:

        def run(offset: int) -> list[str]:
            wrong = []
            for _ in range(6):
                for user_id, token in tokens[offset:] + tokens[:offset]:
                    if verifier.verify(token).user_id != user_id:
                        wrong.append(user_id)
            return wrong

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(run, range(0, 64, 8))) == [[]] * 8
        assert len(verifier._verifier._token_cache or ()) <= 8


def test_refresh_ahead_from_a_sync_caller(para: MockPara, clock: FakeClock) -> None:
    """Past the refresh point the key cache wants a background refresh: from a
    thread without a loop it runs on the background loop, and verify still answers."""
    with para.sync_verifier() as verifier:
        verifier.verify(para.issue_jwt())
        clock.advance(590)  # past 80-90 % of max-age=600, still fresh
        assert verifier.verify(para.issue_jwt(user_id="late")).user_id == "late"
        deadline = time.monotonic() + 10
        while para.jwks_requests < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert para.jwks_requests == 2


def test_refresh_ahead_from_many_sync_callers_is_one_fetch(
    para: MockPara, clock: FakeClock
) -> None:
    with para.sync_verifier() as verifier:
        verifier.verify(para.issue_jwt())
        clock.advance(590)
        tokens = [para.issue_jwt(user_id=f"u-{i}") for i in range(8)]

        def run(token: str) -> str:
            return [verifier.verify(token) for _ in range(50)][-1].user_id

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(run, tokens)) == [f"u-{i}" for i in range(8)]
        refreshing = verifier._verifier._refreshing
        assert refreshing is not None
        refreshing.result(10)
        assert para.jwks_requests == 2
        assert verifier.jwks is not None and not verifier.jwks.refresh_due()


def test_no_refresh_ahead_after_close(para: MockPara, clock: FakeClock) -> None:
    """A token-cache hit after close() must not restart the background thread."""
    verifier = para.sync_verifier()
    token = para.issue_jwt(expires_in=3600)
    verifier.verify(token)
    verifier.close()
    clock.advance(590)
    assert verifier.verify(token).user_id
    assert [t.name for t in io_threads()] == ["MockPara"]
    assert para.jwks_requests == 1


def test_close_from_a_thread_running_an_event_loop(para: MockPara) -> None:
    """ASGI shutdown hooks and async tests close sync instances inside a running loop."""
    verifier = para.sync_verifier()
    api = para.sync_api()
    verifier.verify(para.issue_jwt())
    api.verify_session(para.issue_verification_token())

    async def shutdown() -> None:
        verifier.close()
        api.close()

    asyncio.run(shutdown())
    assert [t.name for t in io_threads()] == ["MockPara"]
    with pytest.raises(ParaJWTError):
        api.verify_session(para.issue_verification_token())


def test_sync_api(para: MockPara) -> None:
    address = "0x" + "ab" * 20
    wallet_id = para.register_wallet(address)
    with para.sync_api(backoff=0) as api:
        token = para.issue_verification_token()
        assert api.verify_session(token).identifier
        assert api.verify_wallet(address) == wallet_id
        para.expire_session(token)
        error = raised_by(functools.partial(api.verify_session, token))
        assert isinstance(error, SessionExpiredError)
        assert_no_token(error, token)
    assert repr(api).startswith("SyncParaAPI(")


def test_sync_constructors_fail_like_async_and_name_themselves() -> None:
    with pytest.raises(ConfigurationError, match=r"^SyncParaVerifier: "):
        SyncParaVerifier("not-a-uuid", environment="beta")
    with pytest.raises(ConfigurationError, match=r"^SyncParaAPI: environment="):
        SyncParaAPI("sandbox_" + "0" * 32, environment="beta", timeout=0)
    with pytest.raises(ConfigurationError, match=r"^ParaAPI: environment="):
        para_jwt.ParaAPI("sandbox_" + "0" * 32, environment="beta", timeout=0)
    with pytest.raises(ConfigurationError, match=r"^SyncParaAPI: timeout"):
        SyncParaAPI("sandbox_" + "0" * 32, timeout=0)


def test_close_during_a_fetch_fails_the_waiting_caller(para: MockPara) -> None:
    para.set_latency(5.0)  # the fetch is still in flight when close() comes
    verifier = para.sync_verifier()
    outcome: list[BaseException | str] = []

    def caller() -> None:
        try:
            outcome.append(verifier.verify(para.issue_jwt()).user_id)
        except BaseException as exc:  # collected and checked below
            outcome.append(exc)

    thread = threading.Thread(target=caller)
    thread.start()
    deadline = time.monotonic() + 10
    while para.jwks_requests == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    verifier.close()
    thread.join(10)
    assert not thread.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], JWKSUnavailableError)
    assert [t.name for t in io_threads()] == ["MockPara"]


def test_instances_left_open_are_closed_quietly_at_exit() -> None:
    script = """
from para_jwt.testing import MockPara
para = MockPara().__enter__()
verifier = para.sync_verifier()
api = para.sync_api()
print(verifier.verify(para.issue_jwt("user-1")).user_id)
print(api.verify_session(para.issue_verification_token()).auth_type)
"""
    # -W error turns ResourceWarning into an error too; not -X dev, whose asyncio
    # debug mode prints "Executing <Task ...> took 0.2 seconds" on a loaded machine.
    done = subprocess.run(  # noqa: S603 - this interpreter, our own script
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["user-1", "email"]
    assert done.stderr == ""


def test_the_exit_handler_closes_open_instances_and_stops_the_thread(
    para: MockPara, caplog: pytest.LogCaptureFixture
) -> None:
    """At exit, a fetch in flight is stopped (its per-fetch session closed), the
    API's session is closed on its loop, and the thread stops: nothing is left
    for the garbage collector to warn about."""
    verifier = para.sync_verifier()
    api = para.sync_api()
    api.verify_session(para.issue_verification_token())
    para.set_latency(5.0)  # the key fetch is still in flight at exit
    outcome: list[BaseException | str] = []

    def caller(verifier: SyncParaVerifier) -> None:
        try:
            outcome.append(verifier.verify(para.issue_jwt()).user_id)
        except BaseException as exc:  # collected and checked below
            outcome.append(exc)

    thread = threading.Thread(target=caller, args=(verifier,))
    thread.start()
    deadline = time.monotonic() + 10
    while para.jwks_requests == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert para.jwks_requests == 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _loop_thread.PORTAL._at_exit()  # what atexit runs
        thread.join(10)
        del verifier, api
        gc.collect()
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], JWKSUnavailableError)
    assert [t.name for t in io_threads()] == ["MockPara"]
    assert [str(w.message) for w in caught] == []
    assert not [r for r in caplog.records if "Unclosed" in r.getMessage()]


