"""What every web framework adapter shares: credentials and refusals.

The adapters (``para_jwt.aiohttp``, ``para_jwt.starlette``, ``para_jwt.fastapi``)
only move bytes between their framework and this module, so that every one of them
refuses a request with the same status, headers and body:

=========================================  ======  ==========================  ====================
when                                       status  ``error``                   headers
=========================================  ======  ==========================  ====================
no ``Authorization``, or another scheme    401     ``missing_token``           ``WWW-Authenticate``
(``Basic``...)                                                                 (no error code)
``Authorization: Bearer`` malformed        400     ``invalid_request``         ``WWW-Authenticate``
``InvalidTokenError`` (expired, ...)       401     ``invalid_token``           ``WWW-Authenticate``
a route requirement not met                403     ``insufficient_scope``      ``WWW-Authenticate``
``JWKSError``: Para's keys unreachable     503     ``temporarily_unavailable`` ``Retry-After``
=========================================  ======  ==========================  ====================

The body is ``{"error": ..., "error_description": ...}`` (RFC 6750 §3). Nothing in a
refusal comes from the request: descriptions are this module's fixed sentences.
A route's requirements (the 403s) are ``_requirements.Requirements``.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Final, Literal, overload

from .claims import ParaClaims
from .errors import (
    InvalidTokenError,
    InvalidVerificationTokenError,
    JWKSError,
    MalformedTokenError,
    ParaAPIError,
    ParaAuthenticationError,
    ParaJWTError,
    ParaUnavailableError,
    SessionExpiredError,
)
from .verifier import ParaVerifier

#: The ``error`` member of a refusal's JSON body. RFC 6750 §3.1 gives a request
#: without credentials no code: ``missing_token`` names that case. RFC 6749
#: §4.1.2.1 gives ``temporarily_unavailable`` and ``server_error``.
RejectionError = Literal[
    "missing_token",
    "invalid_request",
    "invalid_token",
    "insufficient_scope",
    "temporarily_unavailable",
    "server_error",
]


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a request was refused, and the answer every adapter gives for it.

    Attributes:
        status: The HTTP status: 400, 401, 403, 413, 500, 502 or 503.
        error: The JSON body's ``error``: see ``RejectionError``.
        description: One short fixed sentence for the caller, e.g. "The token has
            expired". Nothing in it comes from the request, so it is safe to show.
        reason: A short stable code for logs and handlers: ``InvalidTokenError.reason``
            (``expired``, ``invalid_signature``...), ``no_token``, ``auth_type``...
        headers: Headers the answer must carry: ``WWW-Authenticate``, ``Retry-After``.
        cause: The para_jwt exception behind it, if any (its message holds no secret).
    """

    status: int
    error: RejectionError
    description: str
    reason: str
    headers: Mapping[str, str] = field(default_factory=dict)
    cause: ParaJWTError | None = field(default=None, repr=False)

    @property
    def body(self) -> bytes:
        """The JSON body: ``{"error": ..., "error_description": ...}``."""
        return json.dumps({"error": self.error, "error_description": self.description}).encode()


class Refused(Exception):
    """Raised by the checks of this module; the adapter answers with ``rejection``."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.reason)
        self.rejection = rejection


class Absent(Enum):
    """Why a request carries no bearer credentials."""

    #: No ``Authorization`` header at all.
    NO_HEADER = "no_token"
    #: ``Authorization`` with another scheme (``Basic``...): RFC 6750 §3.1 treats it
    #: as a request without credentials, not as a malformed one.
    OTHER_SCHEME = "unsupported_scheme"


# Short sentences for InvalidTokenError.reason. Fixed text, never the exception's
# message: that names claims and keys, which only the server's logs need.
_INVALID_TOKEN_DESCRIPTIONS: Final[Mapping[str, str]] = {
    "malformed": "The token is malformed",
    "unsupported_algorithm": "The token's signing algorithm is not accepted",
    "unknown_key": "The token was signed with an unknown key",
    "invalid_signature": "The token's signature is invalid",
    "expired": "The token has expired",
    "not_yet_valid": "The token is not valid yet",
    "invalid_audience": "The token was issued for another application",
    "invalid_claims": "The token's claims are invalid",
}

# RFC 6750 §2.1's b64token. Matched case-sensitively on the token alone, and only
# once verification failed: a token that verifies is a compact JWS, made of them.
_B64TOKEN: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# RFC 9110 §11.1's auth-scheme (a token): what a scheme other than Bearer may be.
_AUTH_SCHEME: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A Retry-After when the error does not know when to retry: long enough not to
# hammer a recovering Para, short enough that users barely notice.
_DEFAULT_RETRY_AFTER: Final = 5
#: The challenge scheme for Para verification tokens (not RFC 6750's Bearer: the
#: token travels in its own header).
SESSION_SCHEME: Final = "ParaVerificationToken"
#: The header a Para verification token is sent in.
VERIFICATION_TOKEN_HEADER: Final = "X-Para-Verification-Token"  # noqa: S105
#: The default cap on a JSON body read to find ``verificationToken``: far above a
#: login request, far below what would make parsing costly.
DEFAULT_MAX_BODY_SIZE: Final = 64 * 1024

# Refusals are the caller's business (INFO), except those that are ours: a 500
# (our configuration is wrong: someone must act) and a 502 (Para misbehaves).
_LOG_LEVELS: Final[Mapping[int, int]] = {500: logging.ERROR, 502: logging.WARNING}


@dataclass(frozen=True, slots=True)
class Gate:
    """Builds the refusals of one protected app, whose ``WWW-Authenticate`` realm
    is ``realm``."""

    realm: str

    def challenge(
        self,
        status: int,
        error: RejectionError,
        description: str,
        reason: str,
        cause: ParaJWTError | None = None,
        *,
        scheme: str = "Bearer",
    ) -> Rejection:
        """A refusal that challenges the caller (``WWW-Authenticate``, RFC 6750 §3)."""
        challenge = f'{scheme} realm="{self.realm}"'
        # Without credentials, no error code (§3.1): there was nothing to judge.
        if error != "missing_token":
            challenge += f', error="{error}", error_description="{description}"'
        return Rejection(status, error, description, reason, {"WWW-Authenticate": challenge}, cause)

    def absent(self, why: Absent) -> Rejection:
        """No bearer credentials on a route that needs them."""
        return self.challenge(401, "missing_token", "This route requires a Para token", why.value)

    def malformed_header(self) -> Rejection:
        """``Authorization: Bearer`` that is not ``Bearer <one token>``."""
        return self.challenge(
            400,
            "invalid_request",
            "The Authorization header must be 'Bearer <token>'",
            "malformed_header",
        )

    def token_rejection(self, exc: InvalidTokenError | JWKSError) -> Rejection:
        """The refusal for a verification failure: 401, or 503 for Para's keys."""
        if isinstance(exc, JWKSError):
            return unavailable(exc.retry_after, "jwks_unavailable", exc)
        description = _INVALID_TOKEN_DESCRIPTIONS.get(exc.reason, "The token is invalid")
        return self.challenge(401, "invalid_token", description, exc.reason, exc)

    def bad_session_request(self, description: str, cause: ParaJWTError | None = None) -> Rejection:
        """A verification token that cannot be read from the request: 400."""
        return self.challenge(
            400,
            "invalid_request",
            description,
            "bad_verification_request",
            cause,
            scheme=SESSION_SCHEME,
        )

    def session_rejection(self, exc: ParaAPIError | InvalidVerificationTokenError) -> Rejection:
        """The refusal for an error of ``ParaAPI.verify_session``."""
        if isinstance(exc, InvalidVerificationTokenError):
            return self.bad_session_request("This is not a Para verification token", exc)
        if isinstance(exc, SessionExpiredError):
            return self.challenge(
                401,
                "invalid_token",
                "The session has expired or the verification token is invalid",
                "session_expired",
                exc,
                scheme=SESSION_SCHEME,
            )
        if isinstance(exc, ParaUnavailableError):
            return unavailable(None, "para_unavailable", exc)
        if isinstance(exc, ParaAuthenticationError):
            # Our configuration's fault, not Para's or the caller's: 500, logged at
            # ERROR. The caller is not told why; the reason names what to fix.
            return Rejection(
                500,
                "server_error",
                "The server could not check the session",
                "para_refused_our_secret_api_key",
                {},
                exc,
            )
        # Para answered, but not as documented: a bad gateway.
        return Rejection(
            502, "server_error", "Para answered unexpectedly", "para_api_error", {}, exc
        )


def unavailable(retry_after: float | None, reason: str, cause: ParaJWTError) -> Rejection:
    """503 with ``Retry-After``: Para's fault, not the caller's, so no
    ``WWW-Authenticate``, which would blame the token."""
    seconds = _DEFAULT_RETRY_AFTER
    if retry_after is not None and math.isfinite(retry_after):
        seconds = max(1, math.ceil(retry_after))
    return Rejection(
        503,
        "temporarily_unavailable",
        "Para is unavailable; try again later",
        reason,
        {"Retry-After": str(seconds)},
        cause,
    )


def log_rejection(logger: logging.Logger, method: str, raw_path: str, rejection: Rejection) -> None:
    """One line per refusal, never the token.

    Args:
        logger: The adapter's logger.
        method: The request method.
        raw_path: The path as sent (percent-encoded, so a decoded newline cannot
            forge lines), without the query string, which may hold secrets.
        rejection: What was refused.
    """
    logger.log(
        _LOG_LEVELS.get(rejection.status, logging.INFO),
        "%s %s: %d %s (%s)",
        method,
        raw_path,
        rejection.status,
        rejection.error,
        rejection.reason,
    )


# --- credentials ----------------------------------------------------------------------


def bearer_credentials(values: Sequence[str]) -> str | Absent:
    """The token of the request's ``Authorization`` header values (RFC 6750 §2.1).

    Args:
        values: Every ``Authorization`` header of the request, in order.

    Returns:
        The token, or why there is none.

    Raises:
        MalformedAuthorization: For two headers, a ``Bearer`` without exactly one
            token, or a header that names no scheme.
    """
    if not values:
        return Absent.NO_HEADER
    # Two Authorization headers: which one did a proxy in front of us look at?
    if len(values) > 1:
        raise MalformedAuthorization
    scheme, _, token = values[0].partition(" ")
    if scheme.lower() != "bearer":
        # Another scheme asks for another kind of authentication, which this route
        # does not offer: no Para credentials (§3.1), not a malformed request. No
        # registered scheme has a ".": one that does is a JWT sent without "Bearer ".
        if _AUTH_SCHEME.fullmatch(scheme) and "." not in scheme:
            return Absent.OTHER_SCHEME
        raise MalformedAuthorization
    token = token.lstrip(" ")
    if not token or " " in token:
        raise MalformedAuthorization
    return token


class MalformedAuthorization(Exception):
    """``Authorization`` that tries ``Bearer`` (or no scheme) but is not RFC 6750's."""


@overload
def bearer_token(gate: Gate, values: Sequence[str], *, optional: Literal[False] = False) -> str: ...
@overload
def bearer_token(gate: Gate, values: Sequence[str], *, optional: bool) -> str | None: ...
def bearer_token(gate: Gate, values: Sequence[str], *, optional: bool = False) -> str | None:
    """The token of ``Authorization`` header ``values``: the step before verifying.

    Args:
        gate: Builds the refusals.
        values: Every ``Authorization`` header of the request.
        optional: Let a request without bearer credentials through (``None``).

    Returns:
        The token, or ``None`` for a request without credentials when ``optional``.

    Raises:
        Refused: 400 for a malformed header, 401 without credentials.
    """
    # Refusals are raised outside except blocks, so that nothing that held the
    # header is chained to them.
    token: str | Absent | None
    try:
        token = bearer_credentials(values)
    except MalformedAuthorization:
        token = None
    if token is None:
        raise Refused(gate.malformed_header())
    if isinstance(token, Absent):
        if optional:
            return None
        raise Refused(gate.absent(token))
    return token


def token_refusal(
    gate: Gate, error: InvalidTokenError | JWKSError, token: str, *, from_header: bool
) -> Rejection:
    """The refusal for ``token``, whose verification failed with ``error``.

    Args:
        gate: Builds the refusals.
        error: What the verifier raised, without its traceback (the refusal
            keeps it as ``cause``, which reaches user code).
        token: The token.
        from_header: The token came from ``Authorization: Bearer``, so a token that
            is not even a b64token is a malformed header (400), not a bad token.

    Returns:
        400, 401 or 503.
    """
    if from_header and isinstance(error, MalformedTokenError) and not _B64TOKEN.fullmatch(token):
        return gate.malformed_header()
    return gate.token_rejection(error)


def session_token(gate: Gate, token: str | None) -> str:
    """The verification token found in a request: the step before asking Para.

    Raises:
        Refused: 401 when the request has none.
    """
    if token is None:
        description = (
            f"This route requires a Para verification token ({VERIFICATION_TOKEN_HEADER} "
            "header or 'verificationToken' in a JSON body)"
        )
        raise Refused(
            gate.challenge(
                401, "missing_token", description, "no_verification_token", scheme=SESSION_SCHEME
            )
        )
    return token


# The I/O steps, async (the sync twins are in _http_sync). Each caught error
# leaves its except block without its traceback: unwinding into these frames,
# which hold the token, added them to it, and the refusal keeps the error as
# ``cause``. The Refused is raised outside the block, so nothing is chained to it.


async def verify_bearer(
    gate: Gate, verifier: ParaVerifier, values: Sequence[str], *, optional: bool
) -> ParaClaims | None:
    """Verify the token of ``Authorization`` header ``values``.

    Args:
        gate: Builds the refusals.
        verifier: Verifies the token.
        values: Every ``Authorization`` header of the request.
        optional: Let a request without bearer credentials through (``None``).

    Returns:
        The verified claims, or ``None`` for a request without credentials when
        ``optional``.

    Raises:
        Refused: For anything else; a token that is sent but invalid is refused
            even when ``optional``.
    """
    token = bearer_token(gate, values, optional=optional)
    if token is None:
        return None
    return await verify_token(gate, verifier, token, from_header=True)


async def verify_token(
    gate: Gate, verifier: ParaVerifier, token: str, *, from_header: bool
) -> ParaClaims:
    """``verifier.verify(token)``, its failures turned into ``Refused``.

    Args:
        gate: Builds the refusals.
        verifier: Verifies the token.
        token: The token.
        from_header: As for ``token_refusal``.

    Returns:
        The verified claims.

    Raises:
        Refused: 400, 401 or 503.
    """
    try:
        return await verifier.verify(token)
    except (InvalidTokenError, JWKSError) as exc:
        error = exc.with_traceback(None)
    raise Refused(token_refusal(gate, error, token, from_header=from_header))
