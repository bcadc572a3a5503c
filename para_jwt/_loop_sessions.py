"""HTTP sessions that belong to the event loop using them.

An ``aiohttp.ClientSession`` is bound to the loop it was created on: used from
another loop it fails, and once its loop has closed it is dead. A client that
serves ``asyncio.run()`` per call, or several threads each running a loop, needs
one session per loop, created on that loop's first call and closed before that
loop closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import aiohttp

from ._per_loop import LoopMap
from .errors import ConfigurationError

__all__ = ["LoopSessions"]

logger = logging.getLogger("para_jwt")

#: How long ``close()`` waits for another thread's loop to close its session.
_CLOSE_WAIT_SECONDS = 5.0


async def _closes_with_its_loop(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    """Park here until the loop shuts down, then close ``session``.

    Why an async generator: ``asyncio.run()`` (and any loop shut down the
    documented way) calls ``loop.shutdown_asyncgens()`` before closing the loop,
    which closes every async generator started on it that is still suspended.
    This one then closes the session while its loop can still run the close, so
    ``asyncio.run(api.verify_session(token))`` per request leaks no connection.
    """
    try:
        yield
    finally:
        await session.close()


async def _aclose(closer: AsyncGenerator[None, None]) -> None:
    await closer.aclose()


@dataclass(frozen=True, slots=True)
class _Owned:
    session: aiohttp.ClientSession
    closer: AsyncGenerator[None, None]


class LoopSessions:
    """One ``ClientSession`` per running event loop, or one borrowed session.

    Args:
        owner: The public class name, for error messages.
        borrowed: A session the user passed (``session=``): always used, only from
            its own loop, and never closed here.

    Thread-safe: loops in several threads may ask at once.
    """

    __slots__ = ("_borrowed", "_closed", "_owned", "_owner")

    def __init__(self, owner: str, borrowed: aiohttp.ClientSession | None) -> None:
        self._owner = owner
        self._borrowed = borrowed
        self._owned: LoopMap[_Owned] = LoopMap()
        self._closed = False

    async def get(self) -> aiohttp.ClientSession | None:
        """The session for the running loop, created on its first call.

        Returns:
            The session, or ``None`` after ``close()`` (the caller raises its own error).

        Raises:
            ConfigurationError: a borrowed session is used from another loop.
        """
        if self._closed:
            return None
        loop = asyncio.get_running_loop()
        if self._borrowed is not None:
            # aiohttp's public ``loop`` property is deprecated; ``_loop`` is the
            # same value.
            if getattr(self._borrowed, "_loop", loop) is not loop:
                raise ConfigurationError(
                    f"{self._owner}: the session= you passed belongs to another event "
                    "loop, and an aiohttp session works only on its own loop: create it "
                    f"on the loop that calls {self._owner}, or omit session= to let "
                    f"{self._owner} keep one session per loop"
                )
            return self._borrowed
        owned = self._owned.get(loop)
        if owned is not None and not owned.session.closed:
            return owned.session
        # Made under the map's lock, so close() in another thread cannot miss it.
        stored = self._owned.put(loop, _new_session)
        if stored is None:  # close() ran in another thread meanwhile
            return None
        owned, stale = stored
        await owned.closer.asend(None)  # started: now the loop's shutdown closes it
        for entry in stale:
            await _close_here(entry)
        return owned.session

    async def close(self) -> None:
        """Close every session created here, on whichever loop it belongs to.

        The running loop's is closed here; another running loop's is closed on
        that loop (waiting up to a few seconds); a closed loop's is dropped.
        """
        self._closed = True
        owned = self._owned.take_all(close=True)
        here = asyncio.get_running_loop()
        for loop, entry in owned.items():
            if loop is here or loop.is_closed():
                await _close_here(entry)
            elif loop.is_running():
                future = asyncio.run_coroutine_threadsafe(_aclose(entry.closer), loop)
                try:
                    await asyncio.wait_for(asyncio.wrap_future(future), _CLOSE_WAIT_SECONDS)
                except Exception as exc:
                    logger.debug("closing a session on another loop failed: %r", type(exc))
            else:
                # Stopped, not closed: the close runs when that loop runs again.
                loop.call_soon_threadsafe(loop.create_task, _aclose(entry.closer))


def _new_session() -> _Owned:
    # No cookie jar: each call stands alone, and nothing Para sets should ride
    # along with later calls.
    session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
    return _Owned(session, _closes_with_its_loop(session))


async def _close_here(entry: _Owned) -> None:
    """Close a session of the running loop, or of a loop that has closed.

    For a closed loop aiohttp has nothing left to run: its connector just marks
    itself closed, so no "Unclosed client session" warning follows.
    """
    with contextlib.suppress(Exception):
        await entry.closer.aclose()
