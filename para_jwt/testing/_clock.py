"""A clock that moves only when told to, for MockPara, the verifier and your app."""

from __future__ import annotations

import math
import time

__all__ = ["FakeClock"]


class FakeClock:
    """Seconds since the epoch, as ``time.time`` gives them, frozen until ``advance``.

    Pass the same instance as ``clock=`` to ``MockPara`` and to ``ParaVerifier``
    (``MockPara.verifier()`` does that for you) and a test can expire tokens and
    age the key cache without sleeping::

        clock = FakeClock()
        async with MockPara(clock=clock) as para, para.verifier() as verifier:
            token = para.issue_jwt(expires_in=60)
            clock.advance(61)
            await verifier.verify(token)  # TokenExpiredError
    """

    def __init__(self, start: float | None = None) -> None:
        """:param start: Where the clock stands. Default: the real time now, so
        tokens issued on this clock are also valid for code that reads the real one.
        """
        #: The current time; assignable, but ``advance`` is the usual way to move it.
        self.now = time.time() if start is None else float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward (time never runs backwards here)."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError("advance takes a finite, non-negative number of seconds")
        self.now += seconds

    def __repr__(self) -> str:
        return f"FakeClock({self.now!r})"
