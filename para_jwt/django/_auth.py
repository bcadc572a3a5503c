"""Authenticating one Django request, shared by the middleware, the decorator and the mixin.

Authentication and refusal are two steps. ``authenticate`` (or ``aauthenticate``)
verifies the request's bearer token once and records the outcome on the request:
``request.para_claims`` (the claims, or ``None``), and privately the refusal a view
that requires Para answers with. ``admit`` then decides for one view, with that
view's requirements. So the middleware can authenticate every request and still
refuse only where a view asks for it.
"""

from __future__ import annotations

from typing import Final

from django.http import HttpRequest, HttpResponse

from .. import _http, _http_sync
from .._http import Absent, Refused, Rejection
from .._requirements import Requirements
from ..claims import ParaClaims
from ._settings import para, refusal_response

__all__ = ["CLAIMS_ATTRIBUTE", "aauthenticate", "admit", "authenticate", "recorded_refusal"]

#: The public attribute: ``request.para_claims``.
CLAIMS_ATTRIBUTE: Final = "para_claims"
# The refusal for a view that requires Para; None when the token verified.
_REFUSAL_ATTRIBUTE: Final = "_para_jwt_refusal"


def _authorization(request: HttpRequest) -> list[str]:
    # WSGI and ASGI servers hand Django one value; duplicates arrive comma-joined,
    # which RFC 6750's parsing then refuses as malformed.
    value = request.META.get("HTTP_AUTHORIZATION")
    return [] if value is None else [value]


def _record(request: HttpRequest, claims: ParaClaims | None, refusal: Rejection | None) -> None:
    setattr(request, CLAIMS_ATTRIBUTE, claims)
    setattr(request, _REFUSAL_ATTRIBUTE, refusal)


def authenticate(request: HttpRequest) -> None:
    """Verify the request's token with ``SyncParaVerifier`` (once per request)."""
    if hasattr(request, _REFUSAL_ATTRIBUTE):
        return
    state = para()
    try:
        claims = _http_sync.verify_bearer(state.gate, state.verifier, _authorization(request))
    except Refused as refused:
        _record(request, None, refused.rejection)
    else:
        _record(request, claims, None)


async def aauthenticate(request: HttpRequest) -> None:
    """``authenticate`` for async code, awaited in the server's event loop.

    It verifies with the ``ParaVerifier`` inside ``SyncParaVerifier``
    (``async_verifier``): one key set and one token cache for sync and async
    views, and no thread hop; a key fetch is awaited, never blocking the loop.
    """
    if hasattr(request, _REFUSAL_ATTRIBUTE):
        return
    state = para()
    try:
        claims = await _http.verify_bearer(
            state.gate, state.verifier.async_verifier, _authorization(request), optional=False
        )
    except Refused as refused:
        _record(request, None, refused.rejection)
    else:
        _record(request, claims, None)


def admit(request: HttpRequest, requirements: Requirements) -> HttpResponse | None:
    """After ``authenticate``: the refusal for a view with ``requirements``, or ``None``."""
    claims: ParaClaims | None = getattr(request, CLAIMS_ATTRIBUTE)
    if claims is None:
        return refusal_response(request, recorded_refusal(request))
    try:
        requirements.enforce(para().gate, claims)
    except Refused as refused:
        return refusal_response(request, refused.rejection)
    return None


def recorded_refusal(request: HttpRequest, default: Absent | None = None) -> Rejection:
    """The refusal ``authenticate`` recorded for a request without valid credentials.

    Args:
        request: The request.
        default: Without a record (nothing authenticated the request), the refusal
            for this absence of credentials.

    Returns:
        The refusal.
    """
    refusal: Rejection | None = getattr(request, _REFUSAL_ATTRIBUTE, None)
    if refusal is None:
        assert default is not None, "authenticate() records a refusal for every request"
        return para().gate.absent(default)
    return refusal
