"""Para's environments, their URLs, and the rules for URLs we are willing to call.

Each environment has its own key set: a BETA token must never verify in a PROD
app, so a verifier is bound to exactly one environment (or one explicit URL).
"""

from __future__ import annotations

import ipaddress
from enum import Enum
from urllib.parse import urlsplit

from .errors import ConfigurationError

__all__ = ["Environment", "check_endpoint_url", "is_loopback"]


class Environment(Enum):
    """A Para environment. The value is the API host's base URL."""

    SANDBOX = "https://api.sandbox.getpara.com/"
    BETA = "https://api.beta.getpara.com/"
    PROD = "https://api.getpara.com/"

    @property
    def api_base(self) -> str:
        """The API host's base URL, ending in ``/`` (``ParaAPI`` appends its paths)."""
        return self.value

    @property
    def jwks_url(self) -> str:
        """The URL of this environment's key set (JWKS)."""
        return self.value + ".well-known/jwks.json"

    @classmethod
    def parse(cls, value: Environment | str) -> Environment:
        """``"prod"``, ``"BETA"``, ``"Sandbox"`` or the member itself.

        The SDK's aliases ``DEVELOPMENT`` (= BETA) and ``PRODUCTION`` (= PROD) are
        accepted too. Para's internal ``DEV`` environment is refused: it has no
        public key set.
        """
        if isinstance(value, Environment):
            return value
        if not isinstance(value, str):
            raise ConfigurationError(
                f"environment must be a string or para_jwt.Environment, not {type(value).__name__}"
            )
        name = value.strip().upper()
        name = _ALIASES.get(name, name)
        try:
            return cls[name]
        except KeyError:
            # The value is not shown: it may be a key passed to the wrong parameter.
            raise ConfigurationError(
                "unknown Para environment: environment= takes one of "
                f"{', '.join(repr(e.name.lower()) for e in cls)}"
            ) from None

    @classmethod
    def from_api_key(cls, api_key: str) -> Environment:
        """The environment encoded in an API key's prefix (``beta_…``, ``prod_…``, ``sandbox_…``).

        Only the prefix is read and only its name appears in errors: the key itself
        is never echoed.
        """
        prefix, sep, _ = api_key.partition("_") if isinstance(api_key, str) else ("", "", "")
        if not sep or not prefix:
            raise ConfigurationError(
                "cannot tell the Para environment from this API key (it has no "
                "'beta_', 'prod_' or 'sandbox_' prefix): pass environment= explicitly"
            )
        name = _ALIASES.get(prefix.upper(), prefix.upper())
        if name not in cls.__members__:
            raise ConfigurationError(
                "the API key's prefix names no public Para environment (not 'beta_', "
                "'prod_' or 'sandbox_'): pass environment= explicitly"
            )
        return cls[name]


_ALIASES = {"DEVELOPMENT": "BETA", "PRODUCTION": "PROD"}


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an IP address, no port) is this machine only:
    ``localhost``, ``127.0.0.0/8`` or ``::1``. The one loopback check of the package."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint_url(url: str, *, what: str) -> str:
    """Return ``url`` if it is safe to fetch keys or call Para at; else raise.

    HTTPS is required, except for loopback hosts (local tests and MockPara):
    keys fetched over plain HTTP from the network could be swapped by anyone on
    the path, and every token would then verify. Credentials in the URL are
    refused because they would end up in logs and errors.
    """
    if not isinstance(url, str) or not url:
        raise ConfigurationError(f"{what} must be a non-empty URL string")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigurationError(
            f"{what} must be an absolute https:// URL (got scheme {parts.scheme or 'none'!r})"
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(f"{what} must not carry credentials (user:password@)")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigurationError(
            f"{what} uses plain http:// for a non-loopback host ({parts.hostname}); "
            "use https:// (http:// is allowed only for 127.0.0.1, ::1 and localhost)"
        )
    return url
