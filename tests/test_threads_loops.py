"""One async ParaVerifier shared by many event loops and threads.

These depend on JWKSCache's per-loop sessions, locks and single-flight (the
``keys`` branch); on a branch without them they fail with "attached to a
different loop" or "Event loop is closed", which is the bug they pin down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from hammer import hammer_through_rotation

from para_jwt import ParaJWTError
from para_jwt.testing import FakeClock, MockPara


@pytest.fixture
def para(clock: FakeClock) -> Iterator[MockPara]:
    with MockPara(clock=clock) as mock:
        yield mock


def test_threads_with_their_own_loops_share_one_async_verifier(
    para: MockPara, clock: FakeClock
) -> None:
    """Depends on the per-loop sessions and single-flight of JWKSCache (keys branch)."""
    verifier = para.verifier(token_cache_size=16)
    loops: dict[int, asyncio.AbstractEventLoop] = {}
    leftovers: list[set[asyncio.Task[Any]]] = []

    def verify(worker: int, token: str) -> str:
        loop = loops.get(worker)
        if loop is None:
            loop = loops[worker] = asyncio.new_event_loop()
        return loop.run_until_complete(verifier.verify(token)).user_id

    hammer_through_rotation(para, clock, verify)
    # One fetch per loop at start, per loop for the rotated kid, per loop for the refresh.
    assert para.jwks_requests <= 3 * 8
    for loop in loops.values():
        loop.run_until_complete(verifier.close())
        leftovers.append({t for t in asyncio.all_tasks(loop) if not t.done()})
        loop.close()
    assert leftovers == [set()] * len(loops)


def test_asyncio_run_per_call_over_hours(para: MockPara, clock: FakeClock) -> None:
    """A Flask-style wrapper: a new event loop for every call, through refreshes,
    a rotation and an outage. Depends on per-loop sessions in JWKSCache (keys branch)."""
    verifier = para.verifier()
    failures: list[BaseException] = []
    for step in range(6 * 12):  # six hours in five-minute steps
        if step == 20:
            para.rotate()
        if step == 40:
            para.down()
        if step == 45:
            para.up()
        token = para.issue_jwt(user_id=f"user-{step}")
        try:
            claims = asyncio.run(verifier.verify(token))
        except ParaJWTError as exc:
            failures.append(exc)
        else:
            assert claims.user_id == f"user-{step}"
        clock.advance(300)
    asyncio.run(verifier.close())
    assert failures == []
