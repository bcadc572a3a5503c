"""A clock that moves only when told to, for MockPara, the verifier and your app."""

from __future__ import annotations

import math
import time

from ..errors import ConfigurationError

__all__ = ["FakeClock"]


class FakeClock:
    """A wall clock and a monotonic clock, both frozen until told to move.

    Call it for the wall clock (seconds since the epoch, as ``time.time`` gives
    them); ``monotonic()`` reads the monotonic one, which the key cache measures
    its durations on. Pass the same instance as ``clock=`` to ``MockPara`` and to
    ``ParaVerifier`` (``MockPara.verifier()`` does that for you) and a test can
    expire tokens, age the key cache and step the wall clock without sleeping::

        clock = FakeClock()
        async with MockPara(clock=clock) as para, para.verifier() as verifier:
            token = para.issue_jwt(expires_in=60)
            clock.advance(61)
            await verifier.verify(token)  # TokenExpiredError

    Args:
        start: Where the wall clock stands. Default: the real time now, so tokens
            issued on this clock are also valid for code that reads the real one.

    Attributes:
        now: The wall clock's reading; assignable (like ``step``, it leaves the
            monotonic clock alone).
    """

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else float(start)
        # Any origin will do; far from the wall clock's, so that code mixing the
        # two clocks up fails loudly in tests.
        self._monotonic = 1_000.0

    def __call__(self) -> float:
        return self.now

    def monotonic(self) -> float:
        """The monotonic clock's reading (seconds from an arbitrary origin)."""
        return self._monotonic

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass: both clocks move forward.

        Raises:
            ConfigurationError: ``seconds`` is negative or not finite (time never runs
                backwards; ``step`` moves the wall clock alone, either way).
        """
        if not math.isfinite(seconds) or seconds < 0:
            raise ConfigurationError(
                "FakeClock.advance takes a finite, non-negative number of seconds"
            )
        self.now += seconds
        self._monotonic += seconds

    def step(self, seconds: float) -> None:
        """Step the wall clock alone, forward or back, as NTP or an operator might.

        Raises:
            ConfigurationError: ``seconds`` is not finite.
        """
        if not math.isfinite(seconds):
            raise ConfigurationError("FakeClock.step takes a finite number of seconds")
        self.now += seconds

    def __repr__(self) -> str:
        return f"FakeClock({self.now!r}, monotonic={self._monotonic!r})"
