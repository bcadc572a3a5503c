"""A reference model of the key cache's documented rules, and the harness around it.

The model reads only what Para served and when (``Served``: the monotonic and
wall time of each JWKS response and what it carried) and the documented rules
(README "The key cache", "Resilience", "Events and health", "Warm start";
``JWKSCache``'s docstring). It knows nothing of how ``JWKSCache`` is written.
From that history it says, for a moment of the monotonic clock:

* which key sets a verify may use (``acceptable_sets``): the last good set while
  it is fresh, or within ``max_stale`` once a fetch has failed, and any set
  fetched during the call; none at all means fail closed;
* which fetches a verify must make and which it must not (``fetch_rule``):
  expiry, refresh-ahead at 80-90 % of the lifetime, back-off 1, 2, 4 ... up to
  ``cooldown`` after failures, unknown kids within ``refetch_budget`` per
  ``cooldown`` and a per-kid negative cache of ``negative_ttl``;
* what ``health()`` must say (``expected_health``).

Boundaries are three-valued: within ``EPS`` of a deadline either answer is right.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from hypothesis import HealthCheck, Phase, settings

import para_jwt
from para_jwt.testing import FakeClock, MockPara

EPS = 1e-6

#: Small numbers so that short rule sequences cross every bound.
CONFIG: dict[str, Any] = {
    "min_ttl": 60.0,
    "max_ttl": 900.0,
    "default_ttl": 300.0,
    "max_stale": 240.0,
    "cooldown": 30.0,
    "refetch_budget": 2,
    "negative_ttl": 30.0,
    # The default; the injected hang reaches it by moving the loop's clock.
    "timeout": 5.0,
}


def lifetime_from(cache_control: str | None) -> float:
    """Documented lifetime: ``max-age`` (no-cache/no-store: 0), else ``default_ttl``,
    clamped to ``[min_ttl, max_ttl]``. (Only the headers the machine serves.)"""
    lifetime: float = CONFIG["default_ttl"]
    if cache_control is not None:
        directives = [d.strip() for d in cache_control.split(",")]
        for directive in directives:
            if directive.startswith("max-age="):
                lifetime = float(directive.removeprefix("max-age="))
        if "no-cache" in directives or "no-store" in directives:
            lifetime = 0.0
    return float(min(max(lifetime, CONFIG["min_ttl"]), CONFIG["max_ttl"]))


# --- the history ------------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    """One JWKS response as Para sent it (``status`` None: the client gave up first)."""

    mono: float
    wall: float
    status: int | None
    #: The kids of a 200 that is a key set; None for anything else.
    kids: frozenset[str] | None
    cache_control: str | None


@dataclass(frozen=True)
class GoodSet:
    kids: frozenset[str]
    at: float  # monotonic time of the fetch or revalidation
    lifetime: float
    wall: float  # the wall clock then


@dataclass
class View:
    """The cache as the history says it must be: its last good set and failures since."""

    good: GoodSet | None
    failures: int = 0
    last_failure: float = -math.inf
    #: Every success (a 200 with a set, or a 304 with a set), oldest first.
    successes: list[GoodSet] = field(default_factory=list)

    def backoff_end(self) -> float:
        if not self.failures:
            return -math.inf
        return self.last_failure + min(2.0 ** (self.failures - 1), float(CONFIG["cooldown"]))


def _success(served: Served, have_set: bool) -> bool:
    return (served.status == 200 and served.kids is not None) or (served.status == 304 and have_set)


def before(now: float, deadline: float) -> bool | None:
    """``now < deadline``, or None when too close to call."""
    if abs(now - deadline) < EPS:
        return None
    return now < deadline


class KeyCacheModel:
    """The documented key-cache rules over the history of what Para served."""

    def __init__(self) -> None:
        self.history: list[Served] = []
        #: Where the current cache instance's history starts, and the set it
        #: started with (a warm start), if any.
        self.epoch = 0
        self.seed: GoodSet | None = None
        #: Monotonic times of fetches the rules count against the refetch budget.
        self.refetches: list[float] = []
        #: Kids a refetch looked up in vain, and when (the negative cache).
        self.not_found: dict[str, float] = {}
        #: Every fetch made during a verify, and the last refusal of each kid: an
        #: upper bound of what the budget and negative cache may hold.
        self.verify_fetches: list[float] = []
        self.refused: dict[str, float] = {}

    def restart(self, seed: GoodSet | None) -> None:
        """A new cache instance (cold, or warm from an exported state)."""
        self.epoch, self.seed = len(self.history), seed

    def view(self, upto: int | None = None) -> View:
        view = View(self.seed)
        for served in self.history[self.epoch : upto]:
            lifetime = lifetime_from(served.cache_control)
            if served.status == 200 and served.kids is not None:
                view.good = GoodSet(served.kids, served.mono, lifetime, served.wall)
            elif served.status == 304 and view.good is not None:
                view.good = GoodSet(view.good.kids, served.mono, lifetime, served.wall)
            else:
                view.failures += 1
                view.last_failure = served.mono
                continue
            view.failures = 0
            view.last_failure = -math.inf
            view.successes.append(view.good)
        return view

    # --- rules --------------------------------------------------------------------------

    @staticmethod
    def fresh(view: View, now: float) -> bool | None:
        return None if view.good is None else before(now, view.good.at + view.good.lifetime)

    @staticmethod
    def within_stale(view: View, now: float) -> bool | None:
        good = view.good
        if good is None:
            return False
        return before(now, good.at + good.lifetime + CONFIG["max_stale"])

    @staticmethod
    def pre_refresh(view: View, now: float) -> bool:
        """Strictly before the earliest refresh-ahead point (80 % of the lifetime)."""
        good = view.good
        return good is not None and before(now, good.at + 0.8 * good.lifetime) is True

    def acceptable_sets(
        self, start: View, end: View, n_start: int, now: float, concurrent: bool
    ) -> list[frozenset[str]]:
        """The key sets a verify made at ``now`` may have used (empty: fail closed).

        ``start``/``end`` are the views before and after the call; ``n_start`` is
        the length of the history when it began.
        """
        sets = [g.kids for g in end.successes[len(start.successes) :]]
        fresh = self.fresh(start, now)
        if fresh is True and self.pre_refresh(start, now) and sets and not concurrent:
            return sets  # only an unknown-kid refetch happens here, and it is awaited
        failed_since = start.failures > 0 or any(
            not _success(s, start.good is not None) for s in self.history[n_start:]
        )
        # Stale-if-error: once a refresh has failed (or, for concurrent requests,
        # is in flight) requests get the last good set until max_stale.
        stale_ok = self.within_stale(start, now) is not False and (failed_since or concurrent)
        if start.good is not None and (fresh is not False or stale_ok):
            sets.append(start.good.kids)
        return sets

    def fetch_rule(self, view: View, now: float, kid: str | None) -> tuple[bool, bool]:
        """``(must_fetch, may_fetch)`` for one verify, alone, of a token naming
        ``kid`` (None: a token refused by the cheap checks, before the key lookup)."""
        backoff = before(now, view.backoff_end())
        if backoff is not False:
            return False, backoff is None
        fresh = self.fresh(view, now)
        good = view.good
        if good is None or fresh is False:
            return kid is not None, kid is not None
        if fresh is None:
            return False, True
        if not self.pre_refresh(view, now):
            due = before(now, good.at + 0.9 * good.lifetime) is False
            # Refresh-ahead: a token-cache hit on an expired token may start it too.
            return due and kid is not None, True
        if kid is None or kid in good.kids:
            return False, False
        # An unknown kid while fresh: within the budget, unless looked up in vain.
        sure = [t for t in self.refetches if now - t < CONFIG["cooldown"] - EPS]
        negative = self.not_found.get(kid, -math.inf)
        may = (
            len(sure) < CONFIG["refetch_budget"] and now - negative >= CONFIG["negative_ttl"] - EPS
        )
        # Must: conservatively, nothing in the window could have used the budget.
        maybe = [t for t in self.verify_fetches if now - t < CONFIG["cooldown"] + EPS]
        refused = self.refused.get(kid, -math.inf)
        must = (
            len(maybe) < CONFIG["refetch_budget"] and now - refused > CONFIG["negative_ttl"] + EPS
        )
        return must and may, may

    def record_verify(
        self, now: float, fetches: int, kid: str, *, refused: bool, counted: bool, in_vain: bool
    ) -> None:
        """Book a verify step: its fetches and, for an unknown kid while the set was
        fresh (``counted``), the budget and negative cache those fetches are."""
        self.verify_fetches += [now] * fetches
        if refused:
            self.refused[kid] = now
        if counted:
            self.refetches += [now] * fetches
            if in_vain:
                self.not_found[kid] = now

    def refetches_in_window(self, now: float) -> int:
        return sum(1 for t in self.refetches if now - t < CONFIG["cooldown"] - EPS)

    def expected_health(self, now: float) -> dict[str, Any]:
        """What ``health()`` must say at ``now`` (None for a field too close to call)."""
        view = self.view()
        good = view.good
        status: str | None
        if good is None:
            status = "unavailable" if view.failures else "empty"
        else:
            fresh, stale = self.fresh(view, now), self.within_stale(view, now)
            if fresh is None or (fresh is False and stale is None):
                status = None
            else:
                status = "fresh" if fresh else "stale" if stale else "unavailable"
        return {
            "status": status,
            "kids": tuple(sorted(good.kids)) if good is not None else (),
            "consecutive_failures": view.failures,
            "age": None if good is None else now - good.at,
        }


# --- the harness: clocks, a recording Para, tasks, profiles -----------------------------


class Clocks:
    """A FakeClock plus the model's own monotonic reading.

    With a two-clock FakeClock (``step``/``monotonic``) the cache reads the same
    monotonic time; with a one-clock FakeClock (before the two-clock change)
    stepping is an assignment to ``now`` and the cache only has the wall clock.
    """

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.fake = FakeClock(start)
        self.mono = 0.0
        self._origin = self._monotonic()

    def _monotonic(self) -> float:
        monotonic: Callable[[], float] | None = getattr(self.fake, "monotonic", None)
        return self.mono if monotonic is None else monotonic()

    def agree(self) -> bool:
        """The cache's monotonic clock (if FakeClock has one) reads the model's time."""
        return abs(self._monotonic() - self._origin - self.mono) < EPS

    @property
    def wall(self) -> float:
        return self.fake()

    def advance(self, seconds: float) -> None:
        self.fake.advance(seconds)
        self.mono += seconds

    def step(self, seconds: float) -> None:
        step: Callable[[float], None] | None = getattr(self.fake, "step", None)
        if step is not None:
            step(seconds)
        else:
            self.fake.now += seconds


def _kids(body: bytes) -> frozenset[str] | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        return None
    return frozenset(m["kid"] for m in document["keys"] if isinstance(m, dict) and "kid" in m)


class SteppableLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock a test can move: a timeout without waiting for it."""

    offset = 0.0

    def time(self) -> float:
        return super().time() + self.offset


class RecordingPara(MockPara):
    """MockPara that writes down every JWKS answer, and can hang one past the timeout."""

    def __init__(self, clocks: Clocks, **options: Any) -> None:
        super().__init__(clock=clocks.fake, **options)
        self.clocks = clocks
        self.served: list[Served] = []
        self.hangs = 0
        self._release = asyncio.Event()

    def release(self) -> None:
        """End the hung answers (their clients gave up long ago)."""
        self._release.set()
        self._release = asyncio.Event()

    async def _handle_jwks(self, request: web.Request) -> web.StreamResponse:
        clocks = self.clocks
        if self.hangs:
            self.hangs -= 1
            self.served.append(Served(clocks.mono, clocks.wall, None, None, None))
            loop = asyncio.get_running_loop()
            assert isinstance(loop, SteppableLoop), "hangs need a SteppableLoop"
            loop.offset += CONFIG["timeout"]  # the client's timeout is now due
            await self._release.wait()
            return web.Response(status=503)
        response = await super()._handle_jwks(request)
        body = response.body if isinstance(response, web.Response) else b""
        kids = _kids(bytes(body)) if response.status == 200 and isinstance(body, bytes) else None
        self.served.append(
            Served(
                clocks.mono,
                clocks.wall,
                response.status,
                kids,
                response.headers.get("Cache-Control"),
            )
        )
        return response


_PACKAGE = str(Path(para_jwt.__path__[0]))
_TESTING = os.path.join(_PACKAGE, "testing")


def library_tasks(loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[Any]]:
    """Pending tasks running para_jwt code (not the test kit's server)."""
    pending = []
    for task in asyncio.all_tasks(loop):
        code = getattr(task.get_coro(), "cr_code", None)
        filename = code.co_filename if code is not None else ""
        if filename.startswith(_PACKAGE) and not filename.startswith(_TESTING):
            pending.append(task)
    return pending


async def drain(
    loop: asyncio.AbstractEventLoop, para: RecordingPara | None = None, seconds: float = 5.0
) -> list[Any]:
    """Let background work finish; return what is still running after ``seconds``."""
    deadline = time.monotonic() + seconds
    while (pending := library_tasks(loop)) and time.monotonic() < deadline:
        await asyncio.wait(pending, timeout=max(deadline - time.monotonic(), 0))
    if para is not None:
        para.release()
    for _ in range(3):
        await asyncio.sleep(0)
    return library_tasks(loop)


# --- profiles and figures -----------------------------------------------------------------

#: ``MODEL_PROFILE=ci`` (default; ``make check``, so CI): derandomized and bounded
#: (about 30 s for all machines). ``MODEL_PROFILE=quick`` (``make test``): the same
#: with fewer examples, still enough for every rule of each machine to run.
#: ``MODEL_PROFILE=long`` (``make model``): random seeds, batches of examples until
#: ``MODEL_MINUTES`` have passed.
PROFILE = os.environ.get("MODEL_PROFILE", "ci")
MINUTES = float(os.environ.get("MODEL_MINUTES", "20"))

settings.register_profile(
    "model-ci",
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile(
    "model-long",
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def model_settings(examples: int, steps: int) -> settings:
    # ``quick`` is ``ci`` with the smaller count the caller passes.
    profile = settings.get_profile("model-long" if PROFILE == "long" else "model-ci")
    return settings(profile, max_examples=examples, stateful_step_count=steps)


def mutation_settings(examples: int) -> settings:
    """The CI profile, derandomized, for a test claiming a mutation is found within it."""
    return settings(
        settings.get_profile("model-ci"),
        max_examples=examples,
        stateful_step_count=40,
        phases=[Phase.explicit, Phase.generate],
        report_multiple_bugs=False,
    )


@dataclass
class Figures:
    """What a machine did: examples (runs), rule steps, the longest run."""

    examples: int = 0
    steps: int = 0
    longest: int = 0
    verifies: int = 0
    fetches: int = 0
    current: int = 0

    def start(self) -> None:
        # step() also runs once right after __init__ (invariants do): not a rule.
        self.examples += 1
        self.steps -= 1
        self.current = -1

    def step(self) -> None:
        self.steps += 1
        self.current += 1
        self.longest = max(self.longest, self.current)

    def line(self, name: str, seconds: float) -> str:
        return (
            f"{name}: {self.examples} examples, {self.steps} steps, longest run "
            f"{self.longest} steps, {self.verifies} verifies, {self.fetches} JWKS "
            f"requests, {seconds:.0f} s"
        )
