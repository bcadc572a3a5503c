"""What belongs to one event loop: ``LoopMap`` (a value per loop) and
``PerLoopFlight`` (single-flight tasks, one per loop).

An asyncio task, future or ``ClientSession`` works only on its own loop. An
object shared by several loops (threads with their own loop, or
``asyncio.run`` per call) keeps one per loop: callers on the same loop share
it, other loops get their own, and a loop that closed is forgotten instead of
poisoning later calls. ``ParaAPI``'s sessions (``_loop_sessions``) and
``JWKSCache``'s fetches both keep theirs in a ``LoopMap``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

__all__ = ["LoopMap", "PerLoopFlight"]

T = TypeVar("T")
V = TypeVar("V")


class LoopMap(Generic[V]):
    """One value per event loop, safe to use from any thread.

    A plain dict, not weak keys: a value usually references its loop (a task, a
    session), so a weak key would never drop. Values of closed loops are pruned
    whenever a value is put instead.
    """

    __slots__ = ("_closed", "_lock", "_values")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[asyncio.AbstractEventLoop, V] = {}
        self._closed = False

    def __len__(self) -> int:
        return len(self._values)

    def get(self, loop: asyncio.AbstractEventLoop) -> V | None:
        """``loop``'s value, if it has one."""
        return self._values.get(loop)

    def values(self) -> list[V]:
        """A snapshot of every loop's value."""
        return list(self._values.values())

    def others(self, here: asyncio.AbstractEventLoop) -> list[tuple[asyncio.AbstractEventLoop, V]]:
        """The values of the loops other than ``here`` that have not closed."""
        with self._lock:
            return [
                (loop, value)
                for loop, value in self._values.items()
                if loop is not here and not loop.is_closed()
            ]

    def put(
        self, loop: asyncio.AbstractEventLoop, make: Callable[[], V]
    ) -> tuple[V, list[V]] | None:
        """Store ``make()`` as ``loop``'s value, atomically with the check for ``close()``.

        Args:
            loop: The loop the value belongs to.
            make: Builds the value; called under the lock, only if not closed.

        Returns:
            The new value and the ones it displaced (``loop``'s previous one and
            those of loops that have closed), for the caller to dispose of; or
            ``None`` once ``take_all(close=True)`` has run (nothing is made).
        """
        with self._lock:
            if self._closed:
                return None
            displaced = [
                self._values.pop(old)
                for old in list(self._values)
                if old is loop or old.is_closed()
            ]
            value = self._values[loop] = make()
        return value, displaced

    def discard(self, loop: asyncio.AbstractEventLoop, value: V) -> None:
        """Forget ``loop``'s value if it is still ``value``."""
        with self._lock:
            if self._values.get(loop) is value:
                del self._values[loop]

    def take_all(self, *, close: bool = False) -> dict[asyncio.AbstractEventLoop, V]:
        """Remove and return every value; with ``close``, refuse later ``put`` calls."""
        with self._lock:
            self._closed = self._closed or close
            values, self._values = self._values, {}
        return values


class PerLoopFlight(Generic[T]):
    """At most one task in flight per event loop, safe to use from any thread.

    Args:
        on_stopped: Makes the error a caller gets when the task it waits on was
            cancelled by ``cancel_all`` (and not the caller itself).
    """

    def __init__(self, on_stopped: Callable[[], Exception]) -> None:
        self._on_stopped = on_stopped
        # Entries leave with their task; one whose loop closed is dropped when
        # the next task starts, so a closed loop is never kept or reused.
        self._tasks: LoopMap[asyncio.Task[T]] = LoopMap()

    def current(self) -> asyncio.Task[T] | None:
        """The running loop's task in flight (``None`` also without a running loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        return self._tasks.get(loop)

    def running_anywhere(self) -> bool:
        """Whether a task is in flight on any loop."""
        return any(not task.done() for task in self._tasks.values())

    def start(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Start ``work`` as the running loop's task in flight."""
        loop = asyncio.get_running_loop()
        task = loop.create_task(work)
        # Never closed, so always stored; a displaced task of this loop had finished
        # (callers start one only when none is current) and keeps running to its end.
        self._tasks.put(loop, lambda: task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[T]) -> None:
        self._tasks.discard(task.get_loop(), task)
        if not task.cancelled():
            task.exception()  # retrieved, so a background failure is not "never retrieved"

    async def wait(self, task: asyncio.Task[T]) -> T:
        """Wait for ``task`` without letting this caller's cancellation cancel it.

        Raises:
            Exception: ``on_stopped()``, when ``cancel_all`` stopped the task.
        """
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and (current is None or not current.cancelling()):
                raise self._on_stopped() from None
            raise

    async def wait_elsewhere(self, patience: float) -> bool:
        """Wait (at most ``patience`` seconds) for a task in flight on another loop.

        Returns:
            ``False`` at once if no other loop has one.
        """
        here = asyncio.get_running_loop()
        elsewhere = [(loop, task) for loop, task in self._tasks.others(here) if not task.done()]
        if not elsewhere:
            return False
        loop, task = elsewhere[0]
        finished = here.create_future()

        def tell_here(_: asyncio.Future[T]) -> None:  # runs on the other loop
            with contextlib.suppress(RuntimeError):  # this loop closed meanwhile
                here.call_soon_threadsafe(_set_done, finished)

        # A callback, not a coroutine run there: a loop that closes before running
        # it drops it silently, where a coroutine never started would be reported
        # as "never awaited" (and fail a run with warnings as errors).
        try:
            loop.call_soon_threadsafe(task.add_done_callback, tell_here)
        except RuntimeError:  # that loop closed meanwhile
            return False
        # Bounded: a loop that closes before running the callback never answers.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(finished, patience)
        return True

    async def cancel_all(self) -> None:
        """Cancel every task in flight: this loop's awaited, other running loops' by
        ``call_soon_threadsafe``; tasks of closed loops are just forgotten."""
        tasks = self._tasks.take_all()
        here = asyncio.get_running_loop()
        awaited = []
        for loop, task in tasks.items():
            if task.done() or loop.is_closed():
                continue
            if loop is here:
                task.cancel()
                awaited.append(task)
            else:
                with contextlib.suppress(RuntimeError):  # it closed meanwhile
                    loop.call_soon_threadsafe(task.cancel)
        for task in awaited:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():  # wait_for may have cancelled it on timeout
        future.set_result(None)
