"""Decoding a compact JWS **without verifying it**: for ``para-jwt inspect``, the
hints of ``para-jwt verify`` and the demo's tampered token.

Lenient about padding, unlike the verifier: inspecting is for looking at tokens
the verifier refuses, too. Nothing decoded here is trusted.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ._jws import base64url_decode
from ._terminal import duration, iso
from .verifier import _MAX_TIMESTAMP

__all__ = [
    "UNVERIFIED",
    "MalformedToken",
    "decode_unverified",
    "numeric_date",
    "time_claim",
]


class MalformedToken(Exception):
    """The token cannot even be decoded; the message says why (never what it holds)."""


def _lenient_base64url(segment: str, what: str) -> bytes:
    """Decode a token segment with ``_jws.base64url_decode``, padding allowed.

    Deliberately lenient about ``=`` padding (which the verifier refuses), so that
    ``para-jwt inspect`` can still show a token the verifier rejects for it.

    Args:
        segment: One dot-separated segment of the token.
        what: The segment's name (``"header"``, ...) for the error message.

    Returns:
        The decoded bytes.

    Raises:
        MalformedToken: ``segment`` is not base64url (the message never quotes it).
    """
    try:
        return base64url_decode(segment.rstrip("="))
    except ValueError:
        raise MalformedToken(f"the {what} is not base64url") from None


def _decode_json_segment(segment: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(_lenient_base64url(segment, what).decode("utf-8"))
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
    return header, payload, _lenient_base64url(segments[2], "signature")


def numeric_date(value: Any) -> float | None:
    """``value`` as seconds since the epoch, or ``None`` if it is not a NumericDate
    the verifier would accept (the same bounds: ``verifier._MAX_TIMESTAMP``)."""
    if type(value) in (int, float) and math.isfinite(value) and 0 <= value <= _MAX_TIMESTAMP:
        return float(value)
    return None


def time_claim(name: str, value: Any, now: float) -> dict[str, Any]:
    """How ``inspect`` shows the time claim ``name``: its date and how long ago or ahead."""
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


