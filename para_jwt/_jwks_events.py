"""What the key cache reports: ``JWKSEvent`` for metrics, ``JWKSHealth`` for readiness."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from ._keys import SkippedKey

__all__ = ["JWKSEvent", "JWKSEventKind", "JWKSHealth", "describe_failure", "log_event", "wall_time"]

logger = logging.getLogger("para_jwt.jwks")


class JWKSEventKind(StrEnum):
    """What happened (``JWKSEvent.kind``)."""

    FETCH_STARTED = "fetch_started"
    FETCH_SUCCEEDED = "fetch_succeeded"
    FETCH_FAILED = "fetch_failed"
    REVALIDATED = "revalidated"
    STALE_STARTED = "stale_started"
    STALE_ENDED = "stale_ended"
    REFETCH_REFUSED = "refetch_refused"
    KEY_SKIPPED = "key_skipped"


@dataclass(frozen=True, slots=True)
class JWKSEvent:
    """Something the cache did, for metrics and alerts (see ``JWKSCache``'s ``on_event``).

    Attributes:
        kind: What happened.
        url: The JWKS URL.
        status: HTTP status of the fetch, when there was a response.
        duration: Seconds the fetch took (monotonic clock).
        added: Kids that appeared with this fetch.
        removed: Kids that disappeared with this fetch.
        reason: Why: the fetch error, the refusal or skip reason, or why staleness ended.
        kid: The kid a refusal or skip is about.
    """

    kind: JWKSEventKind
    url: str | None
    status: int | None = None
    duration: float | None = None
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    reason: str | None = None
    kid: str | None = None


_EVENT_LEVELS = {
    JWKSEventKind.FETCH_STARTED: logging.DEBUG,
    JWKSEventKind.FETCH_SUCCEEDED: logging.INFO,
    JWKSEventKind.FETCH_FAILED: logging.WARNING,
    JWKSEventKind.REVALIDATED: logging.DEBUG,
    JWKSEventKind.STALE_STARTED: logging.WARNING,
    JWKSEventKind.STALE_ENDED: logging.WARNING,
    JWKSEventKind.REFETCH_REFUSED: logging.DEBUG,
    JWKSEventKind.KEY_SKIPPED: logging.WARNING,
}


def log_event(event: JWKSEvent) -> None:
    """Log ``event`` on the ``para_jwt.jwks`` logger at its kind's level."""
    level = _EVENT_LEVELS[event.kind]
    if logger.isEnabledFor(level):
        logger.log(level, "jwks %s %s", event.kind.value, _event_details(event))


def wall_time(timestamp: float | None) -> datetime | None:
    """A wall-clock timestamp as an aware UTC datetime.

    ``None`` when there is none, or when a wall clock set far off (a test clock
    near 0, say) projects it outside the years ``datetime`` can show.
    """
    if timestamp is None:
        return None
    try:
        return datetime.fromtimestamp(timestamp, UTC)
    except (ValueError, OverflowError, OSError):
        return None


def describe_failure(exc: BaseException) -> str:
    """A fetch failure in a few words: the exception's type and text, never a token."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


@dataclass(frozen=True, slots=True)
class JWKSHealth:
    """A snapshot of the cache, for a readiness endpoint.

    Durations come from the cache's monotonic clock; the datetimes are those
    moments on the wall clock (past ones as read when they happened, future
    ones projected from now).

    Attributes:
        status: ``fresh`` (within its lifetime), ``stale`` (expired, serving the
            last good set because fetching fails), ``unavailable`` (nothing
            usable: verifies fail with ``JWKSUnavailableError``), or ``empty``
            (nothing fetched yet).
        url: The JWKS URL.
        kids: The usable kids.
        skipped: Members of the set not used, and why.
        age: Seconds since the set was last fetched or revalidated.
        fetched_at: When the set was last fetched or revalidated.
        expires_at: When its lifetime ends.
        stale_until: When a stale set stops being served (fail-closed).
        next_refresh: When a background refresh is due.
        last_success: The last successful fetch or revalidation.
        last_error: Why the last fetch failed.
        last_error_at: When it failed.
        consecutive_failures: Failed fetches since the last success.
        refreshing: A fetch is in flight on some event loop.
    """

    status: Literal["fresh", "stale", "unavailable", "empty"]
    url: str | None
    kids: tuple[str, ...]
    skipped: tuple[SkippedKey, ...]
    age: float | None
    fetched_at: datetime | None
    expires_at: datetime | None
    stale_until: datetime | None
    next_refresh: datetime | None
    last_success: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    refreshing: bool

    @property
    def ready(self) -> bool:
        """Whether verifies can succeed now (fresh or stale)."""
        return self.status in ("fresh", "stale")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (datetimes as ISO 8601)."""
        return {
            "status": self.status,
            "ready": self.ready,
            "url": self.url,
            "kids": list(self.kids),
            "skipped": [{"kid": s.kid, "reason": s.reason} for s in self.skipped],
            "age": self.age,
            "fetched_at": _iso(self.fetched_at),
            "expires_at": _iso(self.expires_at),
            "stale_until": _iso(self.stale_until),
            "next_refresh": _iso(self.next_refresh),
            "last_success": _iso(self.last_success),
            "last_error": self.last_error,
            "last_error_at": _iso(self.last_error_at),
            "consecutive_failures": self.consecutive_failures,
            "refreshing": self.refreshing,
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _loggable(value: object) -> str:
    # Kids and reasons can come from a hostile key set: escape control characters
    # (no forged log lines or terminal escapes) and bound the length.
    text = ascii(str(value))[1:-1]
    return text if len(text) <= 80 else text[:77] + "..."


def _event_details(event: JWKSEvent) -> str:
    parts = [f"url={event.url}"]
    if event.status is not None:
        parts.append(f"status={event.status}")
    if event.duration is not None:
        parts.append(f"duration={event.duration:.3f}")
    if event.kid is not None:
        parts.append(f"kid={_loggable(event.kid)}")
    if event.reason is not None:
        parts.append(f"reason={_loggable(event.reason)}")
    if event.added:
        parts.append(f"added={','.join(event.added)}")
    if event.removed:
        parts.append(f"removed={','.join(event.removed)}")
    return " ".join(parts)
