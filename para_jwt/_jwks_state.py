"""The key cache's state: what it holds now, its health, and its export for a warm
start elsewhere."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from ._jwks_budget import FetchBudget
from ._jwks_events import JWKSHealth, wall_time
from ._keys import KeySet
from .errors import ConfigurationError

__all__ = ["CachedKeys", "cached_keys", "health_of", "restored_keys", "state_of"]

_STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class CachedKeys:
    """The last good set and its validity, swapped in whole so every thread sees one.

    Attributes:
        document: The document as plain JSON (per-key defects dropped), for export.
        fetched_at: Monotonic, like ``expires_at`` and ``refresh_at``.
        fetched_wall: The wall clock at the fetch, for dates and exports.
    """

    keyset: KeySet
    document: dict[str, Any]
    etag: str | None
    last_modified: str | None
    fetched_at: float
    fetched_wall: float
    expires_at: float
    refresh_at: float


def cached_keys(
    keyset: KeySet,
    document: dict[str, Any],
    etag: str | None,
    last_modified: str | None,
    lifetime: float,
    *,
    fetched_at: float,
    fetched_wall: float,
    refresh_ahead: bool,
) -> CachedKeys:
    """A set to cache, valid for ``lifetime`` seconds from ``fetched_at``.

    Args:
        keyset: The keys.
        document: The document as plain JSON, for export.
        etag: The ``ETag`` to revalidate with, if any.
        last_modified: The ``Last-Modified`` to revalidate with, if any.
        lifetime: Seconds the set is fresh.
        fetched_at: The monotonic clock at the fetch.
        fetched_wall: The wall clock at the fetch.
        refresh_ahead: Refresh at a random 80-90 % of the lifetime (jittered per
            fetch, so a fleet does not refetch in lockstep), not at its end.

    Returns:
        The entry, with ``expires_at`` and ``refresh_at`` on the monotonic clock.
    """
    share = random.uniform(0.8, 0.9) if refresh_ahead else 1.0  # noqa: S311 (jitter, not crypto)
    return CachedKeys(
        keyset,
        document,
        etag,
        last_modified,
        fetched_at=fetched_at,
        fetched_wall=fetched_wall,
        expires_at=fetched_at + lifetime,
        refresh_at=fetched_at + lifetime * share,
    )


def state_of(
    cached: CachedKeys, url: str, *, wall_now: float, monotonic_now: float
) -> dict[str, Any]:
    """``cached`` as JSON-ready state, with wall-clock times (monotonic ones do not
    carry across processes).

    The fetch time is the wall clock now less the set's age on the monotonic
    clock, not the wall time read at the fetch: a wall-clock step between the
    fetch and the export must not give the set back the lifetime it has used.
    """
    fetched_wall = wall_now - max(monotonic_now - cached.fetched_at, 0.0)
    return {
        "version": _STATE_VERSION,
        "url": url,
        "jwks": cached.document,
        "fetched_at": fetched_wall,
        "expires_at": fetched_wall + (cached.expires_at - cached.fetched_at),
        "etag": cached.etag,
        "last_modified": cached.last_modified,
    }


def restored_keys(
    state: Mapping[str, Any],
    url: str,
    *,
    wall_now: float,
    monotonic_now: float,
    max_ttl: float,
    refresh_ahead: bool,
) -> CachedKeys:
    """A warm start: an exported state checked, its keys re-imported under the usual rules.

    The state's age is read on the wall clock, the only one two processes share.
    A state cannot grant itself more lifetime than our own bounds allow: nor by a
    fetch time in the future (its age is 0, then), nor beyond ``max_ttl``.

    Args:
        state: What ``state_of`` made (``JWKSCache.export_state``).
        url: The cache's JWKS URL; the state must have been exported for it.
        wall_now: The wall clock now.
        monotonic_now: The monotonic clock now.
        max_ttl: The cache's longest lifetime for a set.
        refresh_ahead: As for ``cached_keys``.

    Returns:
        The entry to cache, on the monotonic clock.

    Raises:
        ConfigurationError: It is not a state ``state_of`` made for ``url``.
    """
    try:
        if state.get("version") != _STATE_VERSION:
            raise ValueError("unknown state version")
        if state["url"] != url:
            raise ValueError("it was exported for another JWKS URL")
        keyset = KeySet.from_jwks(state["jwks"])
        fetched_at, expires_at = float(state["fetched_at"]), float(state["expires_at"])
        # Finite and after 1970: anything else is no export of ours, and cannot
        # be shown by health() either.
        if not (0 <= fetched_at < math.inf and 0 <= expires_at < math.inf):
            raise ValueError("its times are not timestamps")
        etag, last_modified = state.get("etag"), state.get("last_modified")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigurationError(f"initial_state is not usable: {exc}") from None
    age = max(wall_now - fetched_at, 0.0)
    return cached_keys(
        keyset,
        dict(state["jwks"]),
        etag if isinstance(etag, str) else None,
        last_modified if isinstance(last_modified, str) else None,
        min(max(expires_at - fetched_at, 0.0), max_ttl),
        fetched_at=monotonic_now - age,
        fetched_wall=min(fetched_at, wall_now),
        refresh_ahead=refresh_ahead,
    )


def health_of(
    cached: CachedKeys | None,
    *,
    url: str,
    now: float,
    max_stale: float,
    budget: FetchBudget,
    refreshing: bool,
) -> JWKSHealth:
    """What ``JWKSCache.health()`` reports.

    Args:
        cached: The set the cache holds, if any.
        url: The JWKS URL.
        now: The monotonic clock now.
        max_stale: The cache's ``max_stale``.
        budget: The cache's failure record.
        refreshing: Whether a fetch is in flight on any event loop.

    Returns:
        The snapshot, its moments dated on the wall clock.
    """
    status: Literal["fresh", "stale", "unavailable", "empty"]
    if cached is None:
        status = "unavailable" if budget.failures else "empty"
    elif now < cached.expires_at:
        status = "fresh"
    elif now < cached.expires_at + max_stale:
        status = "stale"
    else:
        status = "unavailable"

    def on_wall_clock(moment: float) -> datetime | None:
        # A moment of the monotonic clock, dated from the wall clock at the fetch.
        assert cached is not None
        return wall_time(cached.fetched_wall + (moment - cached.fetched_at))

    return JWKSHealth(
        status=status,
        url=url,
        kids=tuple(sorted(cached.keyset.keys)) if cached is not None else (),
        skipped=cached.keyset.skipped if cached is not None else (),
        age=now - cached.fetched_at if cached is not None else None,
        fetched_at=wall_time(cached.fetched_wall) if cached is not None else None,
        expires_at=on_wall_clock(cached.expires_at) if cached else None,
        stale_until=on_wall_clock(cached.expires_at + max_stale) if cached else None,
        next_refresh=on_wall_clock(cached.refresh_at) if cached else None,
        last_success=wall_time(budget.last_success_wall),
        last_error=budget.last_error,
        last_error_at=wall_time(budget.last_error_wall),
        consecutive_failures=budget.failures,
        refreshing=refreshing,
    )
