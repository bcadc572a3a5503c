"""Single-flight tasks that belong to the event loop that started them.

An asyncio task, future or ``ClientSession`` works only on its own loop. An
object shared by several loops (threads with their own loop, or
``asyncio.run`` per call) keeps one task per loop here: callers on the same
loop share it, other loops start their own, and a loop that closed is
forgotten instead of poisoning later calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

__all__ = ["PerLoopFlight"]

T = TypeVar("T")


class PerLoopFlight(Generic[T]):
    """At most one task in flight per event loop, safe to use from any thread.

    Args:
        on_stopped: Makes the error a caller gets when the task it waits on was
            cancelled by ``cancel_all`` (and not the caller itself).
    """

    def __init__(self, on_stopped: Callable[[], Exception]) -> None:
        self._on_stopped = on_stopped
        self._lock = threading.Lock()
        # Entries leave with their task; one whose loop closed is dropped when
        # the next task starts, so a closed loop is never kept or reused.
        self._tasks: dict[asyncio.AbstractEventLoop, asyncio.Task[T]] = {}

    def current(self) -> asyncio.Task[T] | None:
        """The running loop's task in flight (``None`` also without a running loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        return self._tasks.get(loop)

    def running_anywhere(self) -> bool:
        """Whether a task is in flight on any loop."""
        return any(not task.done() for task in list(self._tasks.values()))

    def start(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Start ``work`` as the running loop's task in flight."""
        loop = asyncio.get_running_loop()
        task = loop.create_task(work)
        with self._lock:
            for closed in [other for other in self._tasks if other.is_closed()]:
                del self._tasks[closed]
            self._tasks[loop] = task
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[T]) -> None:
        with self._lock:
            if self._tasks.get(task.get_loop()) is task:
                del self._tasks[task.get_loop()]
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
        with self._lock:
            elsewhere = [
                (loop, task)
                for loop, task in self._tasks.items()
                if loop is not here and not loop.is_closed() and not task.done()
            ]
        if not elsewhere:
            return False
        loop, task = elsewhere[0]
        try:
            waited = asyncio.run_coroutine_threadsafe(asyncio.wait([task]), loop)
        except RuntimeError:  # that loop closed meanwhile
            return False
        # Bounded: a loop that closes before running the wait never answers.
        try:
            await asyncio.wait_for(asyncio.wrap_future(waited), patience)
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # this caller was cancelled, not the wait on the other loop
        return True

    async def cancel_all(self) -> None:
        """Cancel every task in flight: this loop's awaited, other running loops' by
        ``call_soon_threadsafe``; tasks of closed loops are just forgotten."""
        with self._lock:
            tasks, self._tasks = self._tasks, {}
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
