"""The blocking I/O steps of ``_http``, for synchronous frameworks (Flask, Django's
synchronous views).

Each function is one call to ``SyncParaVerifier`` / ``SyncParaAPI`` between
``_http``'s steps without I/O (reading the credentials, turning a failure into a
refusal), which every adapter shares; the async twins are in ``_http``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._http import Gate, Refused, bearer_token, session_token, token_refusal
from ._sync import SyncParaAPI, SyncParaVerifier
from .api import SessionInfo
from .claims import ParaClaims
from .errors import InvalidTokenError, InvalidVerificationTokenError, JWKSError, ParaAPIError

__all__ = ["check_session", "verify_bearer", "verify_token"]


def verify_bearer(gate: Gate, verifier: SyncParaVerifier, values: Sequence[str]) -> ParaClaims:
    """Verify the token of ``Authorization`` header ``values``, blocking.

    Args:
        gate: Builds the refusals.
        verifier: Verifies the token.
        values: Every ``Authorization`` header of the request.

    Returns:
        The verified claims.

    Raises:
        Refused: 400 for a malformed header, 401 without credentials or for an
            invalid token, 503 when Para's keys cannot be had.
    """
    return verify_token(gate, verifier, bearer_token(gate, values))


def verify_token(gate: Gate, verifier: SyncParaVerifier, token: str) -> ParaClaims:
    """``verifier.verify(token)`` for a bearer token, its failures turned into ``Refused``.

    Raises:
        Refused: 400, 401 or 503.
    """
    try:
        return verifier.verify(token)
    except (InvalidTokenError, JWKSError) as exc:
        # As _http.verify_token: the error leaves without this frame, which holds the token.
        error = exc.with_traceback(None)
    raise Refused(token_refusal(gate, error, token, from_header=True))


def check_session(gate: Gate, api: SyncParaAPI, token: str | None) -> SessionInfo:
    """Ask Para whether ``token`` is an active session, blocking.

    Raises:
        Refused: 401 without a token or for an expired session, 400 for something
            that is not a verification token, 500/502/503 when Para cannot answer.
    """
    token = session_token(gate, token)
    try:
        return api.verify_session(token)
    except (ParaAPIError, InvalidVerificationTokenError) as exc:
        error = exc.with_traceback(None)
    raise Refused(gate.session_rejection(error))
