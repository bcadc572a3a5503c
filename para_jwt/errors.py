"""The one exception hierarchy of para_jwt, grouped by who has to act.

``InvalidTokenError``: the caller sent a bad token (HTTP 401).
``JWKSError``: we cannot get Para's keys right now (HTTP 503, never 401).
``ParaAPIError``: Para's verification endpoints answered badly or not at all.
``ConfigurationError``: the settings are wrong; raised at construction.

No message, ``repr`` or attribute of these errors ever holds a token, a
signature, a verification token or a secret API key.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "InvalidAddressError",
    "InvalidAudienceError",
    "InvalidClaimsError",
    "InvalidSignatureError",
    "InvalidTokenError",
    "InvalidVerificationTokenError",
    "JWKSError",
    "JWKSUnavailableError",
    "MalformedTokenError",
    "ParaAPIError",
    "ParaAuthenticationError",
    "ParaJWTError",
    "ParaUnavailableError",
    "SessionExpiredError",
    "TokenExpiredError",
    "TokenNotYetValidError",
    "UnknownKeyError",
    "UnsupportedAlgorithmError",
    "WalletNotFoundError",
]


class ParaJWTError(Exception):
    """Base class of every error para_jwt raises on purpose."""


# --- the caller's token is bad: 401 -------------------------------------------------


class InvalidTokenError(ParaJWTError):
    """The token must not be trusted. ``reason`` is a short, stable code."""

    reason = "invalid_token"


class MalformedTokenError(InvalidTokenError):
    """Not a well-formed compact JWS (size, segments, base64url, JSON, header)."""

    reason = "malformed"


class UnsupportedAlgorithmError(InvalidTokenError):
    """The header's ``alg`` is not one this verifier accepts."""

    reason = "unsupported_algorithm"


class UnknownKeyError(InvalidTokenError):
    """The header's ``kid`` names no usable key in Para's key set."""

    reason = "unknown_key"


class InvalidSignatureError(InvalidTokenError):
    """The signature does not verify with the key named by ``kid``."""

    reason = "invalid_signature"


class TokenExpiredError(InvalidTokenError):
    """``exp`` has passed (beyond the configured leeway)."""

    reason = "expired"


class TokenNotYetValidError(InvalidTokenError):
    """``nbf`` or ``iat`` lies in the future (beyond the configured leeway)."""

    reason = "not_yet_valid"


class InvalidAudienceError(InvalidTokenError):
    """``aud`` is missing or is not this application's API key ID."""

    reason = "invalid_audience"


class InvalidClaimsError(InvalidTokenError):
    """A claim is missing, of the wrong type, or inconsistent (``sub``, ``data``...)."""

    reason = "invalid_claims"


# --- Para's keys are unreachable: 503 -------------------------------------------------


class JWKSError(ParaJWTError):
    """Para's key set could not be fetched or used. Not the caller's fault."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        #: Seconds after which trying again is useful, if known (for ``Retry-After``).
        self.retry_after = retry_after


class JWKSUnavailableError(JWKSError):
    """No usable key set: the fetch failed and nothing fresh enough is cached."""


# --- Para's verification endpoints ---------------------------------------------------


class ParaAPIError(ParaJWTError):
    """Para's API answered with something other than the documented success.

    ``status`` is the HTTP status when there was a response, else ``None``.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SessionExpiredError(ParaAPIError):
    """``/sessions/verify`` answered 403: the session expired or the token is invalid."""


class WalletNotFoundError(ParaAPIError):
    """``/wallets/verify`` answered 404: the address is none of your users' wallets."""


class ParaAuthenticationError(ParaAPIError):
    """Para refused the secret API key (401)."""


class ParaUnavailableError(ParaAPIError):
    """Para's API failed (5xx, timeout, connection) after the allowed retries."""


class InvalidVerificationTokenError(ParaJWTError, ValueError):
    """The value given as a verification token cannot be one (for example, it is the JWT)."""


class InvalidAddressError(ParaJWTError, ValueError):
    """The value given to ``verify_wallet`` cannot be a wallet address (not a string,
    empty, or longer than any chain's address)."""


# --- fix your settings ----------------------------------------------------------------


class ConfigurationError(ParaJWTError, ValueError):
    """The library was configured wrongly. The message says how to fix it."""
