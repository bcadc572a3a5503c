"""The options of ``JWKSCache``: their names (``CacheOptions``) and their checks.

What each option means, and its default, is documented once, on ``JWKSCache``;
why each default was chosen is in ``docs/key-cache.md``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, TypedDict

from ._jwks_events import JWKSEvent
from ._options import check_callable, check_int, check_seconds
from .environments import check_endpoint_url
from .errors import ConfigurationError

__all__ = ["CacheOptions", "check_options"]


class CacheOptions(TypedDict, total=False):
    """The tuning options of ``JWKSCache``, as ``ParaVerifier`` passes them through."""

    timeout: float
    min_ttl: float
    max_ttl: float
    default_ttl: float
    max_stale: float
    cooldown: float
    refetch_budget: int
    negative_ttl: float
    max_body_size: int
    refresh_ahead: bool
    on_event: Callable[[JWKSEvent], None] | None
    initial_state: Mapping[str, Any] | None
    monotonic: Callable[[], float] | None


def check_options(
    url: str,
    *,
    timeout: float,
    min_ttl: float,
    max_ttl: float,
    default_ttl: float,
    max_stale: float,
    cooldown: float,
    negative_ttl: float,
    refetch_budget: int,
    max_body_size: int,
    clock: Callable[[], float],
    monotonic: Callable[[], float] | None,
) -> tuple[str, Callable[[], float]]:
    """Check ``JWKSCache``'s settings (the arguments of the same names).

    Returns:
        The URL, and the monotonic clock to use: ``monotonic`` if given, else
        ``clock.monotonic`` if the clock has one (``FakeClock`` does), else
        ``time.monotonic``.

    Raises:
        ConfigurationError: A setting is out of range, or ``max_ttl`` is below
            ``min_ttl``; the message names it and shows the value only if it is
            a number.
    """
    check_endpoint_url(url, what="jwks_url")
    for name, value in (("timeout", timeout), ("min_ttl", min_ttl), ("cooldown", cooldown)):
        check_seconds(name, value, allow_zero=False)
    for name, value in (
        ("max_ttl", max_ttl),
        ("default_ttl", default_ttl),
        ("max_stale", max_stale),
        ("negative_ttl", negative_ttl),
    ):
        check_seconds(name, value, allow_zero=True)
    if max_ttl < min_ttl:
        raise ConfigurationError("max_ttl must be at least min_ttl")
    check_int("refetch_budget", refetch_budget, minimum=1)
    check_int("max_body_size", max_body_size, minimum=1024)
    check_callable("clock", clock, "returning seconds since the epoch")
    if monotonic is None:
        monotonic = getattr(clock, "monotonic", None) or time.monotonic
    check_callable("monotonic", monotonic, "returning monotonic seconds")
    return url, monotonic
