"""``JWKSCache``: fetches and caches Para's key set, through rotations and outages.

The cache, its single-flight fetches, back-off and refetch budget, events, health
and warm start. How it behaves (outages, rotations, floods, clocks, many loops) is
told in ``docs/key-cache.md``; the JWK rules are in ``_keys``, HTTP freshness in
``_freshness``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import aiohttp

from ._freshness import freshness_lifetime
from ._jwks_budget import FetchBudget
from ._jwks_events import (
    JWKSEvent,
    JWKSEventKind,
    JWKSHealth,
    describe_failure,
    log_event,
)
from ._jwks_http import FetchError, get_jwks
from ._jwks_options import CacheOptions, check_options
from ._jwks_state import CachedKeys, cached_keys, health_of, restored_keys, state_of
from ._keys import (
    KeySet,
    SkippedKey,
    VerificationKey,
    decode_jwks,
    strict_document,
    well_formed_kid,
)
from ._options import configured_by
from ._per_loop import PerLoopFlight
from .errors import ConfigurationError, JWKSError, JWKSUnavailableError

__all__ = [
    "CacheOptions",
    "JWKSCache",
    "JWKSEvent",
    "JWKSEventKind",
    "JWKSHealth",
    "KeySet",
    "SkippedKey",
    "VerificationKey",
]

logger = logging.getLogger("para_jwt.jwks")


class JWKSCache:
    """Fetches and caches one JWKS URL. Use one per process and share it.

    ``await get_key(kid)`` returns a ready-to-verify key or raises
    ``UnknownKeyError`` / ``JWKSUnavailableError``. An async context manager;
    ``close()`` stops fetches in flight on every event loop. One instance may be
    used from any number of event loops and threads.

    Every duration is measured on the monotonic clock; the wall clock only dates
    what ``health()`` and ``export_state()`` show. The reason for each default is
    in ``docs/key-cache.md`` ("Options and their defaults").

    Args:
        url: The JWKS URL (https, or http on a loopback address).
        session: A ``ClientSession`` to fetch with, never closed by the cache, and
            usable only from the event loop it was made on (from another loop:
            ``ConfigurationError``). Default: a short-lived session per fetch, on
            the loop that fetches.
        timeout: Whole-request timeout in seconds. Default 5.
        min_ttl: Floor on the lifetime from ``Cache-Control``/``Expires``, in
            seconds. Default 60.
        max_ttl: Ceiling on that lifetime. Default 86400 (one day).
        default_ttl: Lifetime when Para sends no caching headers. Default 600.
        max_stale: How long past its lifetime the last good set is served while
            fetches fail; after that the cache fails closed. Default 3600.
        cooldown: The unknown-kid refetch window, and the longest back-off
            between failed fetches. Default 30.
        refetch_budget: At most this many fetches per ``cooldown`` are caused by
            unknown kids. Default 2.
        negative_ttl: After a refetch did not find a kid, asking for it again
            within this many seconds costs nothing. Default 30.
        max_body_size: Cap on the response body in bytes. Default 1 MiB.
        refresh_ahead: Refresh in the background once a jittered 80-90 % of the
            lifetime has passed, so requests never wait on a fresh set. Default
            ``True``.
        on_event: Called with each ``JWKSEvent``; an exception it raises is logged
            and ignored. Events are also logged on the ``para_jwt.jwks`` logger.
            Default ``None``.
        initial_state: What ``export_state()`` returned in an earlier process:
            the cache starts with those keys instead of fetching. Default ``None``.
        clock: The wall clock (seconds since the epoch). Default ``time.time``.
        monotonic: The clock every duration is measured on. Default
            ``clock.monotonic`` if the clock has one (``FakeClock`` does), else
            ``time.monotonic``.

    Raises:
        ConfigurationError: An option is out of range, or ``initial_state`` is
            unusable; the message starts with ``JWKSCache:``.
    """

    def __init__(
        self,
        url: str,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 5.0,
        min_ttl: float = 60.0,
        max_ttl: float = 86_400.0,
        default_ttl: float = 600.0,
        max_stale: float = 3_600.0,
        cooldown: float = 30.0,
        refetch_budget: int = 2,
        negative_ttl: float = 30.0,
        max_body_size: int = 1024 * 1024,
        refresh_ahead: bool = True,
        on_event: Callable[[JWKSEvent], None] | None = None,
        initial_state: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self._url, self._monotonic = configured_by(
            "JWKSCache",
            lambda: check_options(
                url,
                timeout=timeout,
                min_ttl=min_ttl,
                max_ttl=max_ttl,
                default_ttl=default_ttl,
                max_stale=max_stale,
                cooldown=cooldown,
                negative_ttl=negative_ttl,
                refetch_budget=refetch_budget,
                max_body_size=max_body_size,
                clock=clock,
                monotonic=monotonic,
            ),
        )
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._timeout_seconds = timeout
        self._min_ttl, self._max_ttl, self._default_ttl = min_ttl, max_ttl, default_ttl
        self._max_stale, self._max_body_size = max_stale, max_body_size
        self._refresh_ahead, self._on_event, self._clock = refresh_ahead, on_event, clock
        self._cached: CachedKeys | None = None
        self._budget = FetchBudget(
            cooldown=cooldown,
            refetch_budget=refetch_budget,
            negative_ttl=negative_ttl,
            clock=clock,
            monotonic=self._monotonic,
        )
        self._lock = threading.Lock()  # guards _serving_stale, shared by every loop
        self._serving_stale = False
        self._flights: PerLoopFlight[KeySet] = PerLoopFlight(
            lambda: JWKSUnavailableError("the key cache was closed while fetching Para's key set")
        )
        self._closed = False
        if initial_state is not None:
            self._cached = configured_by(
                "JWKSCache",
                lambda: restored_keys(
                    initial_state,
                    self._url,
                    wall_now=self._clock(),
                    monotonic_now=self._monotonic(),
                    max_ttl=self._max_ttl,
                    refresh_ahead=self._refresh_ahead,
                ),
            )

    def __repr__(self) -> str:
        return f"JWKSCache({self._url!r})"

    @property
    def url(self) -> str:
        """The JWKS URL."""
        return self._url

    async def __aenter__(self) -> JWKSCache:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the fetches in flight on every event loop; later fetches are refused.

        Callers waiting on a fetch get ``JWKSUnavailableError``. A fetch on
        another running loop is cancelled on that loop; one whose loop closed
        is simply forgotten.
        """
        self._closed = True
        await self._flights.cancel_all()

    # --- lookups ---------------------------------------------------------------------

    def peek(
        self, kid: str, refresh: Callable[[], object] | None = None
    ) -> VerificationKey | None:
        """The key for ``kid`` if the cached set is fresh, without I/O; else ``None``.

        Past the set's refresh point, starts a refresh on the running event loop;
        a caller without one (``SyncParaVerifier``) passes ``refresh``, called
        when ``refresh_due()`` says so. The hot path, hits included: one clock
        read and one comparison while the set is fresh.
        """
        cached = self._cached
        if cached is None:
            return None
        now = self._monotonic()
        if now >= cached.refresh_at:
            if now >= cached.expires_at:
                return None
            if refresh is None:
                self._maybe_refresh_ahead(now)
            elif self.refresh_due():
                refresh()
        return cached.keyset.keys.get(kid)

    def refresh_due(self) -> bool:
        """Whether a refresh-ahead should start now, for callers without an event loop.

        ``peek`` starts the refresh-ahead itself on the running event loop; a
        synchronous caller has none, so ``peek(kid, refresh)`` asks this and
        calls ``refresh`` (``SyncParaVerifier`` runs ``refresh()`` on a loop of
        its own).

        Returns:
            ``True`` while the cached set is still fresh but past its refresh
            point (and past any back-off after a failed fetch), the cache is
            open, and no fetch is in flight on any loop.
        """
        cached = self._cached
        if cached is None:
            return False
        now = self._monotonic()
        return (
            cached.refresh_at <= now < cached.expires_at
            and not self._budget.backing_off(now)
            and not self._closed
            and not self._flights.running_anywhere()
        )

    async def get_key(self, kid: str) -> VerificationKey:
        """The key for ``kid``, fetching or refetching the set as the rules allow.

        Raises:
            UnknownKeyError: No usable key has that kid (the set is current).
            JWKSUnavailableError: Para's key set cannot be had right now.
            ConfigurationError: A borrowed ``session`` is used from another event loop.
        """
        keyset = await self._usable_keyset()
        key = keyset.keys.get(kid)
        if key is not None:
            return key
        if kid not in keyset.unusable:
            if self._refetch_allowed(kid):
                keyset = await self._fetch()
                if kid not in keyset.keys:
                    self._budget.not_found(kid)
            elif await self._flights.wait_elsewhere(self._timeout_seconds):
                # The budget went to the same refetch on another loop: use its result.
                keyset = self._cached.keyset if self._cached is not None else keyset
            elif not self._fresh(self._monotonic()):
                # Serving a stale set through an outage: the kid may be a key Para
                # rotated in since, so "unknown" would blame the user for our outage.
                raise JWKSUnavailableError(
                    "'kid' is not in the last key set fetched, and Para's key set "
                    "cannot be refreshed right now",
                    retry_after=self._budget.retry_after(),
                )
        return keyset.key(kid)

    async def refresh(self) -> KeySet:
        """Fetch now (joining this loop's fetch in flight).

        Raises:
            JWKSUnavailableError: The fetch failed.
        """
        return await self._fetch()

    def _fresh(self, now: float) -> bool:
        cached = self._cached
        return cached is not None and now < cached.expires_at

    async def _usable_keyset(self) -> KeySet:
        now = self._monotonic()
        cached = self._cached
        if cached is not None and now < cached.expires_at:
            self._maybe_refresh_ahead(now)
            return cached.keyset
        if cached is not None and now < cached.expires_at + self._max_stale:
            # Once a refresh is in flight or has failed, requests stop waiting on
            # Para: they get the last good set while retries go on in the background.
            if self._flights.current() is not None or self._budget.failures:
                if (
                    self._flights.current() is None
                    and not self._budget.backing_off(now)
                    and not self._closed
                ):
                    self._start_fetch()
                return self._serve_stale(cached.keyset)
            try:
                return await self._fetch()
            except JWKSError:
                return self._serve_stale(cached.keyset)
        if cached is not None:
            self._stale_ended("max_stale exceeded: failing closed")
        if self._flights.current() is None and self._budget.backing_off(now):
            raise JWKSUnavailableError(
                "Para's key set is unavailable (last fetch failed; retrying shortly)",
                retry_after=self._budget.retry_after(),
            )
        return await self._fetch()

    def _serve_stale(self, keyset: KeySet) -> KeySet:
        with self._lock:
            started, self._serving_stale = not self._serving_stale, True
        if started:
            self._emit(JWKSEventKind.STALE_STARTED, reason=self._budget.last_error)
        return keyset

    def _stale_ended(self, reason: str) -> None:
        with self._lock:
            ended, self._serving_stale = self._serving_stale, False
        if ended:
            self._emit(JWKSEventKind.STALE_ENDED, reason=reason)

    def _refetch_allowed(self, kid: str) -> bool:
        if not well_formed_kid(kid):
            return False
        if self._flights.current() is not None:
            return True  # joining a fetch in flight costs nothing
        refusal = self._budget.refetch_refusal(kid)
        if refusal is not None:
            self._emit(JWKSEventKind.REFETCH_REFUSED, kid=kid, reason=refusal)
        return refusal is None

    # --- fetching: one single-flight task per event loop -------------------------------

    def _maybe_refresh_ahead(self, now: float) -> None:
        cached = self._cached
        if (
            cached is not None
            and now >= cached.refresh_at
            and not self._budget.backing_off(now)
            and not self._closed
            and self._flights.current() is None
        ):
            with contextlib.suppress(RuntimeError, ConfigurationError):
                self._start_fetch()  # no running loop, or a session of another loop

    def _start_fetch(self) -> asyncio.Task[KeySet]:
        loop = asyncio.get_running_loop()
        if self._session is not None and self._session._loop is not loop:
            raise ConfigurationError(
                "JWKSCache (and the ParaVerifier that made it) was given session= "
                "created on another event loop, and an aiohttp session works only on "
                "its own loop: create the session on the loop that verifies, or pass "
                "no session (the cache then makes its own on whichever loop fetches)"
            )
        return self._flights.start(self._fetch_and_store())

    async def _fetch(self) -> KeySet:
        if self._closed:
            raise JWKSUnavailableError("the key cache is closed")
        # Shielded: a request that gives up must not cancel the fetch others share.
        return await self._flights.wait(self._flights.current() or self._start_fetch())

    async def _fetch_and_store(self) -> KeySet:
        started = self._monotonic()
        self._emit(JWKSEventKind.FETCH_STARTED)
        try:
            if self._session is not None:
                status, headers, body = await self._get(self._session)
            else:
                async with aiohttp.ClientSession() as session:
                    status, headers, body = await self._get(session)
            if status == 304 and self._cached is not None:
                return self._revalidated(headers, started)
            if status != 200:
                raise FetchError(f"HTTP {status}", status)
            try:
                document = decode_jwks(body)
                previous = self._cached.keyset if self._cached is not None else None
                keyset = KeySet.from_jwks(document, previous=previous)
            except ValueError as exc:
                raise FetchError(str(exc), status) from None
        except FetchError as exc:
            reason, status_seen = exc.reason, exc.status
        except Exception as exc:
            # aiohttp's errors, timeouts, and the unexpected (a borrowed session
            # the app closed raises RuntimeError): all are "Para's keys are
            # unavailable" to the caller, with back-off, events and health.
            reason, status_seen = describe_failure(exc), None
        else:
            return self._stored(keyset, strict_document(document), headers, started)
        self._failed(reason, status_seen, started)

    async def _get(self, session: aiohttp.ClientSession) -> tuple[int, Mapping[str, str], bytes]:
        cached = self._cached
        return await get_jwks(
            session,
            self._url,
            etag=cached.etag if cached is not None else None,
            last_modified=cached.last_modified if cached is not None else None,
            time_limits=self._timeout,
            max_body_size=self._max_body_size,
        )

    def _lifetime(self, headers: Mapping[str, str]) -> float:
        lifetime = freshness_lifetime(headers, now=self._clock())
        if lifetime is None:
            lifetime = self._default_ttl
        return min(max(lifetime, self._min_ttl), self._max_ttl)

    def _succeeded(self) -> None:
        self._budget.succeeded()
        self._stale_ended("fetch succeeded")

    def _revalidated(self, headers: Mapping[str, str], started: float) -> KeySet:
        now = self._monotonic()
        cached = self._cached
        assert cached is not None
        self._cached = cached_keys(
            cached.keyset,
            cached.document,
            headers.get("ETag") or cached.etag,
            headers.get("Last-Modified") or cached.last_modified,
            self._lifetime(headers),
            fetched_at=now,
            fetched_wall=self._clock(),
            refresh_ahead=self._refresh_ahead,
        )
        self._succeeded()
        self._emit(JWKSEventKind.REVALIDATED, status=304, duration=now - started)
        return cached.keyset

    def _stored(
        self, keyset: KeySet, document: dict[str, Any], headers: Mapping[str, str], started: float
    ) -> KeySet:
        now = self._monotonic()
        previous = self._cached.keyset if self._cached is not None else None
        old_kids = set(previous.keys) if previous is not None else set()
        old_skips = set(previous.skipped) if previous is not None else set()
        self._cached = cached_keys(
            keyset,
            document,
            headers.get("ETag"),
            headers.get("Last-Modified"),
            self._lifetime(headers),
            fetched_at=now,
            fetched_wall=self._clock(),
            refresh_ahead=self._refresh_ahead,
        )
        self._succeeded()
        for skip in keyset.skipped:
            if skip not in old_skips:
                self._emit(JWKSEventKind.KEY_SKIPPED, kid=skip.kid, reason=skip.reason)
        self._emit(
            JWKSEventKind.FETCH_SUCCEEDED,
            status=200,
            duration=now - started,
            added=tuple(sorted(set(keyset.keys) - old_kids)),
            removed=tuple(sorted(old_kids - set(keyset.keys))),
        )
        return keyset

    def _failed(self, reason: str, status: int | None, started: float) -> NoReturn:
        retry_after = self._budget.failed(reason)
        duration = self._monotonic() - started
        self._emit(JWKSEventKind.FETCH_FAILED, status=status, duration=duration, reason=reason)
        raise JWKSUnavailableError(
            f"could not fetch Para's key set: {reason}", retry_after=retry_after
        )

    # --- observability and warm start ------------------------------------------------

    def _emit(self, kind: JWKSEventKind, **details: Any) -> None:
        event = JWKSEvent(kind, self._url, **details)
        log_event(event)
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                logger.exception("the on_event callback raised; the cache is unaffected")

    def health(self) -> JWKSHealth:
        """A snapshot of the cache's state (cheap; no I/O)."""
        return health_of(
            self._cached,
            url=self._url,
            now=self._monotonic(),
            max_stale=self._max_stale,
            budget=self._budget,
            refreshing=self._flights.running_anywhere(),
        )

    def export_state(self) -> dict[str, Any] | None:
        """The last good set and its validity, JSON-ready, for ``initial_state=``.

        Lets short-lived processes start with keys. Times are wall-clock seconds
        since the epoch (monotonic clocks do not carry across processes). Store
        it where only your service can write: whoever writes it chooses which
        keys verify.
        """
        cached = self._cached
        if cached is None:
            return None
        return state_of(cached, self._url, wall_now=self._clock(), monotonic_now=self._monotonic())
