"""When ``JWKSCache`` may fetch: back-off after failures, the unknown-kid refetch
budget and the negative cache, with the failure record ``health()`` reports.

One ``FetchBudget`` is shared by every event loop and thread using a cache: it
is read freely and changed only under its lock (cachetools and deque moves are
not atomic). Every duration is on the monotonic clock; the wall clock only
dates the last success and the last error.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable

from cachetools import TTLCache

__all__ = ["FetchBudget"]


class FetchBudget:
    """The fetch bookkeeping of one ``JWKSCache``.

    Args:
        cooldown: The refetch window, and the longest back-off between failures.
        refetch_budget: At most this many unknown-kid refetches per ``cooldown``.
        negative_ttl: How long a kid looked up in vain is refused a refetch.
        clock: The wall clock, for dating successes and errors.
        monotonic: The clock every duration is measured on.
    """

    def __init__(
        self,
        *,
        cooldown: float,
        refetch_budget: int,
        negative_ttl: float,
        clock: Callable[[], float],
        monotonic: Callable[[], float],
    ) -> None:
        self._cooldown = cooldown
        self._refetch_budget = refetch_budget
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._refetches: deque[float] = deque()
        self._not_found: TTLCache[str, bool] = TTLCache(
            maxsize=10_000, ttl=negative_ttl, timer=monotonic
        )
        #: Failed fetches since the last success.
        self.failures = 0
        #: The monotonic time before which no fetch is started (back-off).
        self.next_attempt_at = -math.inf
        self.last_success_wall: float | None = None
        #: Why the last fetch failed (never a body or a header value).
        self.last_error: str | None = None
        self.last_error_wall: float | None = None

    def backing_off(self, now: float) -> bool:
        """Whether ``now`` (monotonic) is still within the back-off of a failure."""
        return now < self.next_attempt_at

    def retry_after(self) -> float:
        """Seconds until the back-off ends, at least one (for ``Retry-After``)."""
        return max(self.next_attempt_at - self._monotonic(), 1.0)

    def refetch_refusal(self, kid: str) -> str | None:
        """Spend one refetch on ``kid``, or say why not.

        Returns:
            ``None`` if the refetch may go ahead (and it is counted), else the
            reason: ``"negative cache"`` or ``"cooldown"``.
        """
        with self._lock:
            now = self._monotonic()
            while self._refetches and self._refetches[0] <= now - self._cooldown:
                self._refetches.popleft()
            if kid in self._not_found:
                return "negative cache"
            if len(self._refetches) >= self._refetch_budget or self.backing_off(now):
                return "cooldown"
            self._refetches.append(now)
            return None

    def not_found(self, kid: str) -> None:
        """Remember that a refetch did not find ``kid``, for ``negative_ttl``."""
        with self._lock:
            self._not_found[kid] = True

    def succeeded(self) -> None:
        """A fetch succeeded: the back-off ends."""
        with self._lock:
            self.last_success_wall = self._clock()
            self.failures = 0
            self.next_attempt_at = -math.inf

    def failed(self, reason: str) -> float:
        """A fetch failed: back off 1, 2, 4 ... seconds, up to the cooldown.

        An outage then costs Para a trickle of requests, and a blip heals within
        a second.

        Args:
            reason: Why, for ``health()`` and the event.

        Returns:
            Seconds until the next fetch may start.
        """
        with self._lock:
            now = self._monotonic()
            self.failures += 1
            self.next_attempt_at = now + min(2.0 ** (self.failures - 1), self._cooldown)
            self.last_error, self.last_error_wall = reason, self._clock()
            return self.next_attempt_at - now
