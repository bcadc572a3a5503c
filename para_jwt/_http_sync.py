"""The blocking twins of ``_http``'s verification steps, for synchronous frameworks.

Flask views and Django's synchronous views run in worker threads without an event
loop; they verify through ``SyncParaVerifier`` / ``SyncParaAPI``. Everything a
refusal says (status, headers, body) still comes from ``_http``'s ``Gate``: only the
call to the verifier differs from the async steps there.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import SyncParaAPI, SyncParaVerifier
from ._http import (
    _B64TOKEN,
    SESSION_SCHEME,
    VERIFICATION_TOKEN_HEADER,
    Absent,
    Gate,
    MalformedAuthorization,
    Refused,
    Rejection,
    bearer_credentials,
)
from .api import SessionInfo
from .claims import ParaClaims
from .errors import (
    InvalidTokenError,
    InvalidVerificationTokenError,
    JWKSError,
    MalformedTokenError,
    ParaAPIError,
)

__all__ = ["bearer_token", "check_session", "verify_bearer", "verify_token"]


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


def bearer_token(gate: Gate, values: Sequence[str]) -> str:
    """The token of ``Authorization`` header ``values``: the part without I/O.

    Raises:
        Refused: 400 for a malformed header, 401 without credentials.
    """
    # As _http.verify_bearer: refusals are raised outside except blocks, so that
    # nothing that held the header is chained to them.
    token: str | Absent | None
    try:
        token = bearer_credentials(values)
    except MalformedAuthorization:
        token = None
    if token is None:
        raise Refused(gate.malformed_header())
    if isinstance(token, Absent):
        raise Refused(gate.absent(token))
    return token


def verify_token(gate: Gate, verifier: SyncParaVerifier, token: str) -> ParaClaims:
    """``verifier.verify(token)`` for a bearer token, its failures turned into ``Refused``.

    Raises:
        Refused: 400, 401 or 503.
    """
    try:
        return verifier.verify(token)
    except (InvalidTokenError, JWKSError) as exc:
        # Unwinding into this frame, which holds the token, added it to the error's
        # traceback; the rejection keeps the error (``cause``): without that frame.
        rejection = _token_refusal(gate, exc.with_traceback(None), token)
    raise Refused(rejection)


def _token_refusal(gate: Gate, exc: InvalidTokenError | JWKSError, token: str) -> Rejection:
    # As _http.verify_token: a bearer "token" that is not even a b64token is a
    # malformed header (400), not a bad token.
    if isinstance(exc, MalformedTokenError) and not _B64TOKEN.fullmatch(token):
        return gate.malformed_header()
    return gate.token_rejection(exc)


def check_session(gate: Gate, api: SyncParaAPI, token: str | None) -> SessionInfo:
    """Ask Para whether ``token`` is an active session, blocking.

    Raises:
        Refused: 401 without a token or for an expired session, 400 for something
            that is not a verification token, 500/502/503 when Para cannot answer.
    """
    if token is None:
        # As _http.check_session, word for word: the same refusal from every adapter.
        description = (
            f"This route requires a Para verification token ({VERIFICATION_TOKEN_HEADER} "
            "header or 'verificationToken' in a JSON body)"
        )
        raise Refused(
            gate.challenge(
                401, "missing_token", description, "no_verification_token", scheme=SESSION_SCHEME
            )
        )
    try:
        return api.verify_session(token)
    except (ParaAPIError, InvalidVerificationTokenError) as exc:
        # As in verify_bearer: not this frame, which holds the verification token.
        rejection = gate.session_rejection(exc.with_traceback(None))
    raise Refused(rejection)
