"""HTTP freshness for a private cache (RFC 9111 §4.2): how long a response stays fresh.

Shared by ``JWKSCache`` (reading Para's answers) and ``MockPara`` (writing them),
so both sides read ``Cache-Control``, ``Age``, ``Expires`` and HTTP dates alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import formatdate, parsedate_to_datetime

__all__ = ["format_http_date", "freshness_lifetime", "parse_http_date"]


def parse_http_date(value: str | None) -> float | None:
    """Seconds since the epoch of an HTTP date (RFC 9110 §5.6.7), or ``None`` if unreadable."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def format_http_date(timestamp: float) -> str:
    """An HTTP date (IMF-fixdate, GMT) for seconds since the epoch."""
    return formatdate(timestamp, usegmt=True)


def _max_age(cache_control: str) -> float | None:
    directives: dict[str, str] = {}
    for part in cache_control.split(","):
        name, _, value = part.strip().partition("=")
        directives[name.strip().lower()] = value.strip().strip('"')
    if "no-store" in directives or "no-cache" in directives:
        return 0.0
    max_age = directives.get("max-age", "")
    # isdecimal, not isdigit: "²" is a digit that float() refuses.
    return float(max_age) if max_age.isdecimal() and max_age.isascii() else None


def freshness_lifetime(headers: Mapping[str, str], *, now: float) -> float | None:
    """Seconds a response stays fresh per its headers, or ``None`` if they say nothing.

    ``max-age`` wins over ``Expires``; ``Age`` (time spent in caches on the way)
    is subtracted. ``no-cache``/``no-store`` and an unreadable ``Expires`` count
    as already stale (lifetime 0; the caller applies its own floor).

    Args:
        headers: The response headers (a case-insensitive mapping).
        now: Wall-clock seconds since the epoch, standing in for a missing ``Date``.

    Returns:
        The lifetime in seconds (never negative), or ``None``.
    """
    lifetime = _max_age(headers.get("Cache-Control", ""))
    if lifetime is None and "Expires" in headers:
        expires = parse_http_date(headers["Expires"])
        date = parse_http_date(headers.get("Date")) or now
        lifetime = 0.0 if expires is None else expires - date
    if lifetime is None:
        return None
    age = headers.get("Age", "")
    if age.isdecimal() and age.isascii():
        # float, not int: int() refuses more than 4300 digits, float() says inf.
        lifetime -= float(age)
    return max(lifetime, 0.0)
