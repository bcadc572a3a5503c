"""pytest fixtures for code that trusts Para, loaded through the ``pytest11`` entry point.

Installing para_jwt is enough: pytest finds this plugin by itself, and tests can
ask for these fixtures by name (``pytest --fixtures`` lists them):

``para_clock``
    A ``FakeClock`` at the real time now that moves only on ``advance()``.
``mock_para``
    A started ``MockPara`` on that clock, closed after the test.
``para_verifier``
    A ``ParaVerifier`` bound to ``mock_para`` (its key set URL, API key ID and
    clock), closed after the test.
``para_api``
    A ``ParaAPI`` calling ``mock_para`` with its secret key, closed after the test.
``sync_mock_para``
    A ``MockPara`` on ``para_clock`` serving from a background thread, for
    synchronous tests (``SyncParaVerifier``, Flask, Django); closed after the test.

The async fixtures need pytest-asyncio (pytest-aiohttp brings it along). They
are declared with ``pytest_asyncio.fixture``, so they work in its strict mode
too, and run in the event loop of its default fixture loop scope, which must be
the one your tests run in (function scope unless you changed it).

For other options, override a fixture in your ``conftest.py``; for instance a
verifier that tolerates clock skew::

    @pytest_asyncio.fixture
    async def para_verifier(mock_para):
        async with mock_para.verifier(leeway=5) as verifier:
            yield verifier
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from ..api import ParaAPI
from ..verifier import ParaVerifier
from ._clock import FakeClock
from ._mock import MockPara

__all__ = ["mock_para", "para_api", "para_clock", "para_verifier", "sync_mock_para"]


def _async_fixture_decorator() -> Callable[..., Any]:
    try:
        import pytest_asyncio
    except ImportError:
        # Without pytest-asyncio, leave the async fixtures to whichever plugin
        # runs async tests (anyio's runs plain async fixtures for its tests).
        return pytest.fixture
    return pytest_asyncio.fixture


_async_fixture = _async_fixture_decorator()


@pytest.fixture
def para_clock() -> FakeClock:
    """A ``FakeClock`` at the real time now, shared by ``mock_para`` and ``para_verifier``.

    ``para_clock.advance(seconds)`` expires tokens and ages the key cache without
    sleeping. It starts at the real time, so tokens issued on it also pass a
    verifier of your app that reads the real clock (until they expire).
    """
    return FakeClock()


@_async_fixture
async def mock_para(para_clock: FakeClock) -> AsyncIterator[MockPara]:
    """A started ``MockPara`` on 127.0.0.1 (a free port), on ``para_clock``.

    Configure the code under test with ``mock_para.jwks_url``,
    ``mock_para.api_key_id``, ``mock_para.base_url`` and
    ``mock_para.secret_api_key``; make tokens with ``mock_para.issue_jwt()``.
    """
    async with MockPara(clock=para_clock) as mock:
        yield mock


@_async_fixture
async def para_verifier(mock_para: MockPara) -> AsyncIterator[ParaVerifier]:
    """A ``ParaVerifier`` for ``mock_para``'s tokens, on ``para_clock``, with default options."""
    verifier: ParaVerifier = mock_para.verifier()
    async with verifier:
        yield verifier


@_async_fixture
async def para_api(mock_para: MockPara) -> AsyncIterator[ParaAPI]:
    """A ``ParaAPI`` calling ``mock_para``'s ``/sessions/verify`` and ``/wallets/verify``.

    ``backoff=0``: retries after a 502/503/504 still happen, without the waits.
    """
    api: ParaAPI = mock_para.api(backoff=0)
    async with api:
        yield api


@pytest.fixture
def sync_mock_para(para_clock: FakeClock) -> Iterator[MockPara]:
    """A started ``MockPara`` on ``para_clock``, serving from its own background thread.

    For synchronous tests: ``sync_mock_para.sync_verifier()`` makes a
    ``SyncParaVerifier`` for its tokens (close it, or use ``with``).
    """
    with MockPara(clock=para_clock) as mock:
        yield mock
