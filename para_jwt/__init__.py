"""para_jwt: trust Para's users in async Python without calling Para on every request."""

from __future__ import annotations

from ._sync import SyncParaAPI, SyncParaVerifier
from ._version import __version__
from .api import ParaAPI, SessionInfo
from .claims import AuthType, OAuthMethod, ParaClaims, Payload, Wallet, WalletType
from .environments import Environment
from .errors import (
    ConfigurationError,
    InvalidAddressError,
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
from .jwks import JWKSCache, JWKSEvent, JWKSEventKind, JWKSHealth, KeySet, SkippedKey
from .verifier import ParaVerifier

__all__ = [
    "AuthType",
    "ConfigurationError",
    "Environment",
    "InvalidAddressError",
    "InvalidAudienceError",
    "InvalidClaimsError",
    "InvalidSignatureError",
    "InvalidTokenError",
    "InvalidVerificationTokenError",
    "JWKSCache",
    "JWKSError",
    "JWKSEvent",
    "JWKSEventKind",
    "JWKSHealth",
    "JWKSUnavailableError",
    "KeySet",
    "MalformedTokenError",
    "OAuthMethod",
    "ParaAPI",
    "ParaAPIError",
    "ParaAuthenticationError",
    "ParaClaims",
    "ParaJWTError",
    "ParaUnavailableError",
    "ParaVerifier",
    "Payload",
    "SessionExpiredError",
    "SessionInfo",
    "SkippedKey",
    "SyncParaAPI",
    "SyncParaVerifier",
    "TokenExpiredError",
    "TokenNotYetValidError",
    "UnknownKeyError",
    "UnsupportedAlgorithmError",
    "Wallet",
    "WalletNotFoundError",
    "WalletType",
    "__version__",
]
