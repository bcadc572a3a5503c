"""Decoding a compact JWS **without verifying it**: for ``para-jwt inspect``, the
hints of ``para-jwt verify`` and the demo's tampered token.

Lenient about padding, unlike the verifier: inspecting is for looking at tokens
the verifier refuses, too. Nothing decoded here is trusted.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from typing import Any

from ._terminal import duration, iso

__all__ = [
    "UNVERIFIED",
    "MalformedToken",
    "base64url_decode",
    "decode_unverified",
    "numeric_date",
    "time_claim",
]


class MalformedToken(Exception):
    """The token cannot even be decoded; the message says why (never what it holds)."""


_BASE64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def base64url_decode(segment: str, what: str) -> bytes:
    """``segment`` decoded, padded or not; ``MalformedToken`` naming ``what`` if it
    is not base64url."""
    if not _BASE64URL.fullmatch(segment):
        raise MalformedToken(f"the {what} is not base64url")
    data = segment.rstrip("=")
    try:
        return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        raise MalformedToken(f"the {what} is not base64url") from None


def _decode_json_segment(segment: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(base64url_decode(segment, what).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedToken(f"the {what} is not UTF-8 JSON") from None
    if not isinstance(value, dict):
        raise MalformedToken(f"the {what} is not a JSON object")
    return value


def decode_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """Header, payload and signature of a compact JWS, **without any verification**."""
    segments = token.split(".")
    if len(segments) == 5:
        raise MalformedToken(
            "this has 5 segments: an encrypted token (JWE)? Para's JWTs are signed JWS "
            "with 3 segments"
        )
    if len(segments) != 3:
        raise MalformedToken(f"a JWT has 3 dot-separated segments, this has {len(segments)}")
    header = _decode_json_segment(segments[0], "header")
    payload = _decode_json_segment(segments[1], "payload")
    return header, payload, base64url_decode(segments[2], "signature")


def numeric_date(value: Any) -> float | None:
    if type(value) in (int, float) and math.isfinite(value) and 0 <= value < 253_402_300_800:
        return float(value)
    return None


def time_claim(name: str, value: Any, now: float) -> dict[str, Any]:
    at = numeric_date(value)
    if at is None:
        return {"at": None, "relative": "not a NumericDate (seconds since the epoch)"}
    if name == "exp":
        expired = at <= now
        relative = f"expired {duration(now - at)} ago" if expired else f"{duration(at - now)} left"
        return {"at": iso(at), "expired": expired, "relative": relative}
    relative = f"{duration(now - at)} ago" if at <= now else f"in {duration(at - now)}"
    return {"at": iso(at), "relative": relative}


UNVERIFIED = (
    "NOT VERIFIED: decoded only. Signature, key, audience and expiry were not checked; "
    "anyone can write a token that decodes like this. Use 'para-jwt verify' to trust it."
)


