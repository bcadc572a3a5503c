"""Para's server-side verification endpoints: ``/sessions/verify`` and ``/wallets/verify``.

A JWT from ``para.issueJwt()`` is verified locally, without calling Para. These two
endpoints answer other questions, and each needs your *secret* API key:

* ``/sessions/verify``: is the session behind a *verification token* (the value of
  ``para.getVerificationToken()`` on the client) still active, and who signed in?
* ``/wallets/verify``: is this address a Para wallet of one of your users?

Para documents only the request shapes, the 200 answers, 403 for sessions and 404
for wallets. Every other answer is mapped to an exception in ``ParaAPI``'s
docstring; nothing is ever turned into ``None``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Any, Final, Self
from urllib.parse import urlsplit

import aiohttp

from ._options import check_int, check_seconds
from .claims import AuthType, OAuthMethod
from .environments import Environment, check_endpoint_url
from .errors import (
    ConfigurationError,
    InvalidAddressError,
    InvalidVerificationTokenError,
    ParaAPIError,
    ParaAuthenticationError,
    ParaUnavailableError,
    SessionExpiredError,
    WalletNotFoundError,
)

__all__ = ["ParaAPI", "SessionInfo"]

logger = logging.getLogger("para_jwt.api")

# Para's verification token is an opaque session-lookup ID. Its format is not
# documented, so the cap is generous; it exists so that nothing absurd is sent to
# Para under our secret key.
_MAX_VERIFICATION_TOKEN_LENGTH: Final = 2048
# The longest addresses of the chains Para supports (bech32 Cosmos addresses) are
# under 100 characters.
_MAX_ADDRESS_LENGTH: Final = 256
# Three dot-separated base64url segments: a compact JWS, that is, a JWT. The last
# segment may be empty (an unsigned JWT is still a JWT, not a verification token).
_JWT_SHAPE: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# Gateway answers (bad gateway, unavailable, gateway timeout): the request did not
# reach a healthy Para instance, which a rolling deploy or an overloaded instance
# causes and which usually clears within a second or two.
_RETRYABLE_STATUSES: Final = frozenset({502, 503, 504})

# The backoff sleeps go through this name so that tests can record the schedule
# instead of waiting it out.
_sleep = asyncio.sleep


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What ``/sessions/verify`` says about an active session.

    Para's answer carries no user ID. ``identifier`` is only unique together with
    ``auth_type`` (an email address and a phone number live in different
    namespaces), so link accounts on the pair, never on ``identifier`` alone.
    """

    auth_type: AuthType
    #: The login handle: the email address for email, ``+<digits>`` for phone...
    identifier: str
    #: The OAuth provider when the user signed in with one, else ``None``.
    oauth_method: OAuthMethod | None
    #: Para's whole JSON answer, read-only. Kept out of ``repr()`` and comparisons:
    #: it may hold fields this version does not know, including ones that echo the
    #: verification token.
    raw: Mapping[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class _Endpoint:
    url: str
    #: The non-200 statuses Para documents for this endpoint: exception and meaning.
    documented: Mapping[int, tuple[type[ParaAPIError], str]]

    def __str__(self) -> str:
        return f"POST {self.url}"


class ParaAPI:
    """Async client for Para's ``/sessions/verify`` and ``/wallets/verify``.

    Use it as an async context manager, or call ``close()`` when done::

        async with ParaAPI(secret_api_key) as para:
            session = await para.verify_session(verification_token)
            wallet_id = await para.verify_wallet(address)

    Answers and the exceptions they become (all are ``ParaAPIError``, with
    ``.status`` set to the HTTP status when there was one):

    ========================  ===========================================
    200, documented shape     the result
    200, any other body       ``ParaAPIError`` (status 200)
    3xx                       ``ParaAPIError``: redirects are not followed
    401                       ``ParaAuthenticationError``
    403 from sessions         ``SessionExpiredError``
    404 from wallets          ``WalletNotFoundError``
    any other 4xx             ``ParaAPIError``
    502, 503, 504             retried, then ``ParaUnavailableError``
    connection failed/dropped retried, then ``ParaUnavailableError``
    other 5xx, timeout        ``ParaUnavailableError`` at once
    ========================  ===========================================

    Neither the secret API key nor a verification token ever appears in
    ``repr()``, in an exception or in a log record. Error messages name the
    endpoint and the status only: Para's error bodies are never echoed, since
    they could repeat what was sent.
    """

    __slots__ = (
        "_backoff",
        "_base_url",
        "_client_timeout",
        "_closed",
        "_environment",
        "_headers",
        "_max_response_size",
        "_owns_session",
        "_retries",
        "_session",
        "_sessions_endpoint",
        "_timeout",
        "_wallets_endpoint",
    )

    def __init__(
        self,
        secret_api_key: str,
        *,
        environment: Environment | str | None = None,
        base_url: str | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
        retries: int = 2,
        backoff: float = 0.5,
        max_response_size: int = 64 * 1024,
    ) -> None:
        """Check the settings; no connection is made until the first call.

        Args:
            secret_api_key: Your *secret* API key (not the public key the client
                SDK uses). It is sent in the ``x-external-api-key`` header.
            environment: ``"prod"``, ``"beta"``, ``"sandbox"`` or an ``Environment``.
                Default ``None``: read it from the key's prefix (``beta_…``). It is
                required when the key has no such prefix, and an explicit value
                that contradicts the prefix is refused, because a key is valid in
                its own environment only.
            base_url: Call this base URL instead of the environment's API host
                (a proxy, a local fake of Para); ``sessions/verify`` and
                ``wallets/verify`` are appended to it. Must be ``https://``, or
                ``http://`` on a loopback host. Default ``None``: the
                environment's host. When set, the environment may stay unknown.
            session: An ``aiohttp.ClientSession`` to borrow (it is never closed
                here; its default headers and cookies are sent to Para too).
                Default ``None``: one is created on the first call, with no
                cookie jar, and closed by ``close()``.
            timeout: Seconds allowed for one attempt, from connecting to reading
                the whole answer. Default 10: these are small calls that should
                take well under a second, so 10 s only fires when something is
                wrong, and it bounds how long a caller's own request can hang.
            retries: Extra attempts after a 502, 503 or 504 answer or a failed or
                dropped connection. Default 2: enough to ride out a rolling
                deploy, few enough to keep the caller waiting seconds, not
                minutes. ``0`` disables retries.
            backoff: Seconds slept before the first retry, doubled before each
                next one. Default 0.5 (then 1.0): gateway errors mostly clear
                within a second or two. ``0`` retries at once.
            max_response_size: The most bytes of a 200 answer that are read; a
                larger answer is an error. Default 64 KiB: the documented answers
                are under 200 bytes, so this leaves room for new fields while
                bounding the memory one call can take.

        Raises:
            ConfigurationError: if any setting is invalid; the message says how
                to fix it and never contains the key.
        """
        _check_secret_api_key(secret_api_key)
        self._environment, self._base_url = _resolve_target(
            secret_api_key, environment, base_url
        )
        self._timeout = check_seconds("timeout", timeout, allow_zero=False)
        self._retries = check_int("retries", retries, minimum=0)
        self._backoff = check_seconds("backoff", backoff, allow_zero=True)
        self._max_response_size = check_int("max_response_size", max_response_size, minimum=1)

        self._headers = MappingProxyType(
            {"content-type": "application/json", "x-external-api-key": secret_api_key}
        )
        self._client_timeout = aiohttp.ClientTimeout(total=self._timeout)
        self._sessions_endpoint = _Endpoint(
            self._base_url + "sessions/verify",
            {
                403: (
                    SessionExpiredError,
                    "the session has expired or the verification token is invalid",
                )
            },
        )
        self._wallets_endpoint = _Endpoint(
            self._base_url + "wallets/verify",
            {404: (WalletNotFoundError, "the address is not a Para wallet of your users")},
        )
        self._session = session
        self._owns_session = session is None
        self._closed = False

    @property
    def environment(self) -> Environment | None:
        """The Para environment, or ``None`` when only ``base_url`` was given and
        the key's prefix names none."""
        return self._environment

    @property
    def base_url(self) -> str:
        """The base URL the endpoint paths are appended to (ends with ``/``)."""
        return self._base_url

    def __repr__(self) -> str:
        environment = None if self._environment is None else self._environment.name
        return f"<ParaAPI base_url={self._base_url!r} environment={environment!r}>"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session this object created; a borrowed one is left open.

        Calling it again does nothing; calls made after it raise ``RuntimeError``.
        """
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()

    async def verify_session(self, verification_token: str) -> SessionInfo:
        """Ask Para whether the session behind ``verification_token`` is active.

        ``verification_token`` is what ``para.getVerificationToken()`` returns on
        the client, *not* the JWT from ``para.issueJwt()``: verify JWTs locally.

        Raises:
            InvalidVerificationTokenError: before any request, if the value cannot
                be a verification token (empty, too long, or shaped like a JWT).
            SessionExpiredError: Para answered 403.
            ParaAuthenticationError, ParaUnavailableError, ParaAPIError: see the
                class docstring.
        """
        _check_verification_token(verification_token)
        endpoint = self._sessions_endpoint
        body = await self._post(endpoint, {"verificationToken": verification_token})
        auth_type = body.get("authType")
        identifier = body.get("identifier")
        oauth_method = body.get("oAuthMethod")
        if type(auth_type) is not str or not auth_type:
            raise _bad_body(endpoint, "that lacks a non-empty string 'authType'")
        if type(identifier) is not str or not identifier:
            raise _bad_body(endpoint, "that lacks a non-empty string 'identifier'")
        # An empty string names no provider: it means the same as an absent field.
        if oauth_method is not None and type(oauth_method) is not str:
            raise _bad_body(endpoint, "whose 'oAuthMethod' is not a string")
        return SessionInfo(
            auth_type=AuthType(auth_type),
            identifier=identifier,
            oauth_method=OAuthMethod(oauth_method) if oauth_method else None,
            raw=MappingProxyType(body),
        )

    async def verify_wallet(self, address: str) -> str:
        """Return Para's wallet ID for ``address`` if it is one of your users' wallets.

        ``address`` is sent exactly as given. Para does not document how it
        compares addresses (EVM checksum case, for example), so no normalisation
        is guessed here: pass the address in the form Para gave it to you, for
        instance from the JWT's ``data.wallets``.

        Raises:
            InvalidAddressError: before any request, if ``address`` is not a
                string, is empty, or is longer than any chain's address.
            WalletNotFoundError: Para answered 404.
            ParaAuthenticationError, ParaUnavailableError, ParaAPIError: see the
                class docstring.
        """
        if not isinstance(address, str):
            raise InvalidAddressError(f"address must be a string, not {type(address).__name__}")
        if not address or len(address) > _MAX_ADDRESS_LENGTH:
            raise InvalidAddressError(
                f"address must be a non-empty string of at most {_MAX_ADDRESS_LENGTH} characters"
            )
        endpoint = self._wallets_endpoint
        body = await self._post(endpoint, {"address": address})
        wallet_id = body.get("walletId")
        if type(wallet_id) is not str or not wallet_id:
            raise _bad_body(endpoint, "that lacks a non-empty string 'walletId'")
        return wallet_id

    # --- transport ------------------------------------------------------------------

    def _client_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("this ParaAPI has been closed")
        if self._session is None:
            # Created here, inside the running event loop, not in __init__. No
            # cookie jar: each call stands alone, and nothing Para sets should ride
            # along with later calls.
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    async def _post(self, endpoint: _Endpoint, payload: Mapping[str, str]) -> dict[str, Any]:
        """POST ``payload`` with retries; return the 200 answer's JSON object or raise."""
        session = self._client_session()
        data = json.dumps(payload).encode()
        attempts = self._retries + 1
        attempt = 0
        while True:
            attempt += 1
            if attempt > 1:
                await _sleep(self._backoff * 2 ** (attempt - 2))
            started = time.perf_counter()
            try:
                status, body = await self._attempt(session, endpoint, data)
            except TimeoutError as exc:
                # Not retried: the caller has already waited a full `timeout`, Para
                # may still be working on the request, and sending it again adds
                # load to a service that is already slow.
                _log(endpoint, "timed out", started, attempt, attempts)
                raise ParaUnavailableError(
                    f"{endpoint} did not answer within {self._timeout:g} s"
                ) from exc
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
                # Refused, reset or dropped (before or during the answer): the next
                # attempt opens a new connection, which usually reaches a healthy
                # instance. ClientPayloadError is a connection dropped mid-body.
                _log(endpoint, type(exc).__name__, started, attempt, attempts)
                if attempt < attempts:
                    continue
                raise ParaUnavailableError(
                    f"{endpoint} could not be reached ({type(exc).__name__}); "
                    f"tried {attempts} time(s)"
                ) from exc
            except ParaAPIError as exc:
                # An answer _attempt could not take in (not HTTP, or over the size
                # cap): retrying would get the same.
                outcome = "unusable answer" if exc.status is None else f"HTTP {exc.status}"
                _log(endpoint, outcome, started, attempt, attempts)
                raise
            _log(endpoint, f"HTTP {status}", started, attempt, attempts)
            if status in _RETRYABLE_STATUSES and attempt < attempts:
                continue
            if body is None:
                raise _status_error(endpoint, status, attempts)
            return _json_object(endpoint, body)

    async def _attempt(
        self, session: aiohttp.ClientSession, endpoint: _Endpoint, data: bytes
    ) -> tuple[int, bytes | None]:
        """One request: the status, and the body when the status is 200."""
        try:
            async with session.post(
                endpoint.url,
                data=data,
                headers=self._headers,
                timeout=self._client_timeout,
                # A redirect would carry the secret key header to another URL
                # (aiohttp strips only Authorization across hosts).
                allow_redirects=False,
                # Overrides a borrowed session's setting: the statuses are mapped
                # below, and aiohttp's ClientResponseError would hold our headers.
                raise_for_status=False,
            ) as response:
                if response.status != 200:
                    # Error bodies are never read: they are never shown, and leaving
                    # one unread only costs the connection, not a wrong answer.
                    return response.status, None
                return 200, await self._read_capped(response, endpoint)
        except aiohttp.ClientResponseError:
            # The answer was not valid HTTP. The exception is dropped, not chained:
            # its request_info holds our request headers, the secret key included.
            # Raising below, outside this block, keeps it out of __context__ too.
            pass
        raise ParaUnavailableError(f"{endpoint} sent an answer that is not valid HTTP")

    async def _read_capped(self, response: aiohttp.ClientResponse, endpoint: _Endpoint) -> bytes:
        limit = self._max_response_size
        chunks: list[bytes] = []
        size = 0
        # Read at most limit + 1 bytes: one byte over is enough to know it is too big.
        while size <= limit:
            chunk = await response.content.read(limit + 1 - size)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
        raise ParaAPIError(
            f"{endpoint} answered HTTP 200 with a body over {limit} bytes", status=200
        )


# --- checks and mappings ------------------------------------------------------------


def _log(endpoint: _Endpoint, outcome: str, started: float, attempt: int, attempts: int) -> None:
    # Never the body, the key or the token: only what helps to see Para's health.
    logger.debug(
        "%s: %s after %.3f s (attempt %d of %d)",
        endpoint,
        outcome,
        time.perf_counter() - started,
        attempt,
        attempts,
    )


def _status_error(endpoint: _Endpoint, status: int, attempts: int) -> ParaAPIError:
    """The exception for a non-200 answer (after retries, for the retryable ones)."""
    if status in _RETRYABLE_STATUSES:
        return ParaUnavailableError(
            f"{endpoint} answered HTTP {status}; tried {attempts} time(s)", status=status
        )
    if status == 401:
        return ParaAuthenticationError(
            f"Para refused the secret API key (HTTP 401 from {endpoint}): "
            "check it is the secret key of this environment",
            status=status,
        )
    if status in endpoint.documented:
        error, meaning = endpoint.documented[status]
        return error(f"{endpoint} answered HTTP {status}: {meaning}", status=status)
    if 300 <= status < 400:
        return ParaAPIError(
            f"{endpoint} answered with a redirect (HTTP {status}), which is not followed "
            "because it would send the secret API key elsewhere: check base_url",
            status=status,
        )
    if status >= 500:
        # Not retried: unlike a gateway error, an internal error is usually caused by
        # the request itself, so sending it again would fail the same way, later.
        return ParaUnavailableError(f"{endpoint} answered HTTP {status}", status=status)
    return ParaAPIError(f"{endpoint} answered HTTP {status}", status=status)


def _json_object(endpoint: _Endpoint, body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        # Raised below, outside this block: the decoder's exception keeps the body
        # (JSONDecodeError.doc, UnicodeDecodeError.object), which may echo the token.
        pass
    else:
        if isinstance(value, dict):
            return value
        raise _bad_body(endpoint, "that is not a JSON object")
    raise _bad_body(endpoint, "that is not JSON")


def _bad_body(endpoint: _Endpoint, problem: str) -> ParaAPIError:
    return ParaAPIError(f"{endpoint} answered HTTP 200 with a body {problem}", status=200)


def _check_verification_token(token: object) -> None:
    if not isinstance(token, str):
        raise InvalidVerificationTokenError(
            f"the verification token must be a string, not {type(token).__name__}"
        )
    if not token.strip():
        raise InvalidVerificationTokenError("the verification token is empty")
    if len(token) > _MAX_VERIFICATION_TOKEN_LENGTH:
        raise InvalidVerificationTokenError(
            f"the verification token is longer than {_MAX_VERIFICATION_TOKEN_LENGTH} "
            "characters, so it cannot be one"
        )
    if _JWT_SHAPE.fullmatch(token.strip()):
        raise InvalidVerificationTokenError(
            "this is a JWT, not a verification token: /sessions/verify takes the value "
            "of para.getVerificationToken() on the client, not the JWT from "
            "para.issueJwt(); verify JWTs locally instead of sending them to Para"
        )


def _check_secret_api_key(key: object) -> None:
    # The messages never show the key, even in part.
    if not isinstance(key, str) or not key:
        raise ConfigurationError(
            "secret_api_key must be a non-empty string: your secret API key from "
            "Para's developer portal"
        )
    if " " in key or not (key.isascii() and key.isprintable()):
        raise ConfigurationError(
            "secret_api_key contains whitespace or characters other than printable "
            "ASCII: was it copied with a space or a newline?"
        )


def _resolve_target(
    secret_api_key: str, environment: Environment | str | None, base_url: str | None
) -> tuple[Environment | None, str]:
    """The environment (if known) and the base URL to call."""
    try:
        from_key: Environment | None = Environment.from_api_key(secret_api_key)
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
            "base_url must not have a query or a fragment: the endpoint paths are "
            "appended to it"
        )
    try:
        invalid_port = parts.port == 0
    except ValueError:  # out of range or not a number
        invalid_port = True
    if invalid_port:
        raise ConfigurationError("base_url has an invalid port")
    return url if url.endswith("/") else url + "/"


