"""para_jwt: trust Para's users in async Python without calling Para on every request."""

from __future__ import annotations

from .api import ParaAPI, SessionInfo
from .environments import Environment
from .errors import (
    ConfigurationError,
    InsufficientScopeError,
    InvalidAudienceError,
    InvalidClaimsError,
    InvalidSignatureError,
    InvalidTokenError,
    InvalidVerificationTokenError,
    JWKSError,
    JWKSUnavailableError,
    MalformedTokenError,
    ParaAPIError,
    ParaAuthenticationError,
    ParaJWTError,
    ParaUnavailableError,
    SessionExpiredError,
    TokenExpiredError,
    TokenNotYetValidError,
    UnknownKeyError,
    UnsupportedAlgorithmError,
    WalletNotFoundError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "Environment",
    "InsufficientScopeError",
    "InvalidAudienceError",
    "InvalidClaimsError",
    "InvalidSignatureError",
    "InvalidTokenError",
    "InvalidVerificationTokenError",
    "JWKSError",
    "JWKSUnavailableError",
    "MalformedTokenError",
    "ParaAPI",
    "ParaAPIError",
    "ParaAuthenticationError",
    "ParaJWTError",
    "ParaUnavailableError",
    "SessionExpiredError",
    "SessionInfo",
    "TokenExpiredError",
    "TokenNotYetValidError",
    "UnknownKeyError",
    "UnsupportedAlgorithmError",
    "WalletNotFoundError",
    "__version__",
]
