"""The background event loop of the sync facades: a portal for coroutines from sync code.

``SyncParaVerifier`` and ``SyncParaAPI`` verify in the caller's thread and run only
their I/O here, on one private event loop in a daemon thread (``PORTAL``) that every
sync instance shares. It starts on first need and stops when the last instance using
it closes, or at interpreter exit, after closing the instances' HTTP sessions on it
(so nothing warns about unclosed sessions). ``MockPara`` runs its server on a
``LoopThread`` of its own.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

from .errors import ConfigurationError

__all__ = ["PORTAL", "LoopThread"]

_T = TypeVar("_T")

#: How long interpreter exit waits for the instances' sessions to close.
_EXIT_TIMEOUT = 5.0


class _Closable(Protocol):
    async def close(self) -> None: ...


class LoopThread:
    """An event loop running in a daemon thread: a portal for coroutines from sync code.

    ``acquire(owner)`` starts it if needed and registers ``owner``, whose async
    ``close()`` runs on the loop at ``release(owner)`` or at interpreter exit;
    the thread stops once no owner is left.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._owners: set[_Closable] = set()

    @property
    def thread(self) -> threading.Thread | None:
        """The loop's thread while it runs."""
        return self._thread

    def acquire(self, owner: _Closable) -> asyncio.AbstractEventLoop:
        """The running loop, started if needed, with ``owner`` registered on it."""
        with self._lock:
            if self._loop is None:
                self._start()
            assert self._loop is not None
            self._owners.add(owner)
            return self._loop

    def _start(self) -> None:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            try:
                loop.run_forever()
            finally:
                _wind_down(loop)

        thread = threading.Thread(target=run, name=self._name, daemon=True)
        thread.start()
        ready.wait()
        self._loop, self._thread = loop, thread
        atexit.register(self._at_exit)

    def submit(
        self, owner: _Closable, coro: Coroutine[Any, Any, _T]
    ) -> concurrent.futures.Future[_T]:
        """Schedule ``coro`` on the loop for ``owner``; the caller waits on the future."""
        loop = self.acquire(owner)
        if threading.current_thread() is self._thread:
            coro.close()
            raise ConfigurationError(
                "a synchronous para_jwt call was made from its own background loop "
                "(e.g. from an on_event callback): use the async classes there"
            )
        return asyncio.run_coroutine_threadsafe(coro, loop)

    def release(self, owner: _Closable) -> None:
        """Close ``owner`` on the loop; stop the loop if no owner is left."""
        with self._lock:
            loop = self._loop
            if loop is None or owner not in self._owners:
                return
            self._owners.discard(owner)
            stop = not self._owners
        future = asyncio.run_coroutine_threadsafe(owner.close(), loop)
        try:
            future.result()
        finally:
            if stop:
                self._stop_if_unused()

    def _stop_if_unused(self) -> None:
        with self._lock:
            if self._owners or self._loop is None:
                return
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        assert thread is not None
        atexit.unregister(self._at_exit)
        loop.call_soon_threadsafe(loop.stop)
        thread.join()

    def _at_exit(self) -> None:
        with self._lock:
            loop, owners = self._loop, list(self._owners)
            self._owners.clear()
        if loop is None:
            return
        for owner in owners:
            future = asyncio.run_coroutine_threadsafe(owner.close(), loop)
            try:
                future.result(_EXIT_TIMEOUT)
            except Exception:  # exit goes on whatever one close did
                future.cancel()
        self._stop_if_unused()


def _wind_down(loop: asyncio.AbstractEventLoop) -> None:
    """Close a stopped loop, in its own thread.

    Whatever a closing instance left pending is cancelled, so no caller waits
    forever on a loop that no longer runs. Done here, not in the thread that
    stopped the loop: that one may be running an event loop of its own (an
    ASGI server's shutdown, an async test), where ``run_until_complete`` fails.
    """
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


#: The one background loop thread shared by every sync instance in the process.
PORTAL = LoopThread("para_jwt-io")
