"""What ``ParaAPI`` is given, checked before anything is sent to Para.

Everything here guards the secret API key: a value that cannot be what it claims
is refused locally, and the key itself travels in a ``Secret`` whose ``repr`` is
redacted, so no error reporter that records frame locals can capture it.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final, Generic, NoReturn, TypeVar, cast
from urllib.parse import unquote, urlsplit

from ._jws import base64url_decode
from .environments import Environment, check_endpoint_url
from .errors import ConfigurationError, InvalidAddressError, InvalidVerificationTokenError

__all__ = [
    "Secret",
    "check_address",
    "check_secret_api_key",
    "check_verification_token",
    "resolve_target",
]

_T = TypeVar("_T")

# Para's verification token is an opaque session-lookup ID. Its format is not
# documented, so the cap is generous; it exists so that nothing absurd is sent to
# Para under our secret key.
MAX_VERIFICATION_TOKEN_LENGTH: Final = 2048
# The longest addresses of the chains Para supports (bech32 Cosmos addresses) are
# under 100 characters.
MAX_ADDRESS_LENGTH: Final = 256
# What splits a value into base64 (either alphabet, padded) or dotted words.
_NOT_BASE64: Final = re.compile(r"[^A-Za-z0-9_+/=.-]+")
# How a JSON object starts: a JOSE header or a JWT payload once decoded.
_JSON_OBJECT_START: Final = re.compile(rb'\s*\{\s*["}]')
# An Authorization scheme, or any URI-style "scheme:", at the start of the value.
_SCHEME_PREFIX: Final = re.compile(r"(?i)(?:bearer|basic|dpop)(?![a-z0-9])|[a-z][a-z0-9+.-]*:")

class Secret(Generic[_T]):
    """A value that must not show where error reporters look.

    Its ``repr`` is redacted, so a traceback recorded with its frames' locals
    (Sentry and the like) shows ``<redacted>`` wherever one is held. The value is
    taken out only inside the expression that hands it to aiohttp.
    """

    __slots__ = ("_value",)

    def __init__(self, value: _T) -> None:
        self._value = value

    def reveal(self) -> _T:
        return self._value

    def __repr__(self) -> str:
        return "<redacted>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a secret is not pickled")



def check_address(address: object) -> None:
    """Refuse, before any request, what cannot be a wallet address."""
    if not isinstance(address, str):
        raise InvalidAddressError(f"address must be a string, not {type(address).__name__}")
    if not address or len(address) > MAX_ADDRESS_LENGTH:
        raise InvalidAddressError(
            f"address must be a non-empty string of at most {MAX_ADDRESS_LENGTH} characters"
        )


def check_verification_token(token: object) -> None:
    """Refuse, before any request, what cannot be a verification token.

    Para's verification token is an opaque session-lookup ID (a UUID today). What
    is refused is what a mistake or an attacker would send to Para under our
    secret key: a JWT, or a token wrapped in something (a header's scheme, quotes,
    percent-encoding, invisible characters).
    """
    if not isinstance(token, str):
        raise InvalidVerificationTokenError(
            f"the verification token must be a string, not {type(token).__name__}"
        )
    if not token.strip():
        raise InvalidVerificationTokenError("the verification token is empty")
    if len(token) > MAX_VERIFICATION_TOKEN_LENGTH:
        raise InvalidVerificationTokenError(
            f"the verification token is longer than {MAX_VERIFICATION_TOKEN_LENGTH} "
            "characters, so it cannot be one"
        )
    if any(map(_is_jws, _NOT_BASE64.split(unquote(token)))):
        raise InvalidVerificationTokenError(
            "this is a JWT (or wraps one), not a verification token: /sessions/verify "
            "takes the value of para.getVerificationToken() on the client, not the JWT from "
            "para.issueJwt(); verify JWTs locally instead of sending them to Para"
        )
    problem = _wrapping_problem(token)
    if problem is None and "%" in token:  # percent-encoded quotes or whitespace
        problem = _wrapping_problem(unquote(token))
    if problem is not None:
        raise InvalidVerificationTokenError(f"the verification token {problem}")


def _is_jws(word: str) -> bool:
    """Whether ``word`` has the shape of a compact JWS (a JWT) or of its first two
    parts: two dots, or one dot next to a part that decodes to a JSON object."""
    segments = word.split(".")
    return len(segments) >= 3 or (len(segments) == 2 and any(map(_is_jose_part, segments)))


def _wrapping_problem(token: str) -> str | None:
    for char in token:
        if "!" <= char <= "~":
            continue
        category = unicodedata.category(char)
        if category[0] == "Z" or char.isspace():
            return (
                "contains whitespace: pass the value of getVerificationToken() alone, "
                "without a scheme such as 'Bearer ' or a line break"
            )
        if category in ("Cc", "Cf"):
            return "contains control or invisible characters"
        return "contains characters other than printable ASCII"
    if any(quote in token for quote in "\"'`"):
        return "contains quotes: pass the value itself"
    if _SCHEME_PREFIX.match(token):
        return "starts with a scheme: pass the value of getVerificationToken() alone"
    return None


def _is_jose_part(segment: str) -> bool:
    """Whether ``segment`` decodes to a JSON object: a JOSE header or a JWT payload,
    in base64url or standard base64, padded or not."""
    data = segment.rstrip("=").replace("+", "-").replace("/", "_")
    if len(data) < 4:
        return False
    try:
        decoded = base64url_decode(data)
    except ValueError:
        return False
    return _JSON_OBJECT_START.match(decoded) is not None


def check_secret_api_key(key: Secret[object]) -> Secret[str]:
    """The key, if it can be one. Raised from here, an error's traceback holds the
    key only inside its ``Secret``; the messages never show it, even in part."""
    if not isinstance(key.reveal(), str) or not key.reveal():
        raise ConfigurationError(
            "secret_api_key must be a non-empty string: your secret API key "
            "from Para's developer portal"
        )
    if not _is_printable_ascii_word(key.reveal()):
        raise ConfigurationError(
            "secret_api_key contains whitespace or characters other than "
            "printable ASCII: was it copied with a space or a newline?"
        )
    return cast(Secret[str], key)


def _is_printable_ascii_word(value: object) -> bool:
    return isinstance(value, str) and value.isascii() and value.isprintable() and " " not in value


def resolve_target(
    secret_api_key: Secret[str], environment: Environment | str | None, base_url: str | None
) -> tuple[Environment | None, str]:
    """The environment (if known) and the base URL to call."""
    try:
        from_key: Environment | None = Environment.from_api_key(secret_api_key.reveal())
    except ConfigurationError:
        # No environment prefix (REST-style 'sk_…' keys, for example).
        from_key = None
    chosen = from_key
    if environment is not None:
        chosen = Environment.parse(environment)
        if from_key is not None and from_key is not chosen:
            raise ConfigurationError(
                f"environment={chosen.name.lower()!r} conflicts with the secret API key, "
                f"whose prefix says {from_key.name.lower()!r}: a key works only in its "
                "own environment"
            )
    if base_url is not None:
        return chosen, _check_base_url(base_url)
    if chosen is None:
        raise ConfigurationError(
            "cannot tell the Para environment from the secret API key (its prefix is "
            "not 'prod_', 'beta_' or 'sandbox_'): pass environment='prod', 'beta' or "
            "'sandbox', or base_url="
        )
    return chosen, chosen.api_base


def _check_base_url(url: str) -> str:
    check_endpoint_url(url, what="base_url")
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise ConfigurationError(
            "base_url must not have a query or a fragment: the endpoint paths "
            "are appended to it"
        )
    try:
        invalid_port = parts.port == 0
    except ValueError:  # out of range or not a number
        invalid_port = True
    if invalid_port:
        raise ConfigurationError("base_url has an invalid port")
    return url if url.endswith("/") else url + "/"


