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
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Any, Self

import aiohttp

from ._api_answers import (
    Answer,
    Endpoint,
    bad_body,
    json_object,
    log_attempt,
    read_capped,
    status_error,
)
from ._api_input import (
    Secret,
    check_address,
    check_secret_api_key,
    check_verification_token,
    resolve_target,
)
from ._loop_sessions import LoopSessions
from ._options import check_int, check_seconds, configured_by
from .claims import AuthType, OAuthMethod
from .environments import Environment
from .errors import (
    ConfigurationError,
    ParaAPIError,
    ParaJWTError,
    ParaUnavailableError,
    SessionExpiredError,
    WalletNotFoundError,
)

__all__ = ["ParaAPI", "SessionInfo"]

# The backoff sleeps go through this name so that tests can record the schedule
# instead of waiting it out.
_sleep = asyncio.sleep



@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What ``/sessions/verify`` says about an active session.

    Para's answer carries no user ID. ``identifier`` is only unique together with
    ``auth_type`` (an email address and a phone number live in different
    namespaces), so link accounts on the pair, never on ``identifier`` alone.

    Attributes:
        auth_type: How the user signed in (``email``, ``phone``, ``oauth``...).
        identifier: The login handle: the email address for email, ``+<digits>``
            for phone...
        oauth_method: The OAuth provider when the user signed in with one, else
            ``None``.
        raw: Para's whole JSON answer, read-only. Kept out of ``repr()`` and
            comparisons: it may hold fields this version does not know, including
            ones that echo the verification token.
    """

    auth_type: AuthType
    identifier: str
    oauth_method: OAuthMethod | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)


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
    anything unexpected       ``ParaUnavailableError`` at once
    ========================  ===========================================

    One instance serves every event loop and thread: each loop that calls it
    gets its own HTTP session, closed when that loop shuts down (``asyncio.run``
    does) or by ``close()``.

    Neither the secret API key nor a verification token ever appears in
    ``repr()``, in an exception (message, attributes, chained exceptions, or the
    locals of the frames in its traceback) or in a log record. Error messages
    name the endpoint and the status only: Para's error bodies are never echoed,
    since they could repeat what was sent.

    Args:
        secret_api_key: Your *secret* API key (not the public key the client SDK
            uses). It is sent in the ``x-external-api-key`` header.
        environment: ``"prod"``, ``"beta"``, ``"sandbox"`` or an ``Environment``.
            Default ``None``: read it from the key's prefix (``beta_…``). It is
            required when the key has no such prefix, and an explicit value that
            contradicts the prefix is refused, because a key is valid in its own
            environment only.
        base_url: Call this base URL instead of the environment's API host (a
            proxy, a local fake of Para); ``sessions/verify`` and
            ``wallets/verify`` are appended to it. Must be ``https://``, or
            ``http://`` on a loopback host. Default ``None``: the environment's
            host. When set, the environment may stay unknown.
        session: An ``aiohttp.ClientSession`` to borrow, used from its own event
            loop only (from another loop a call raises ``ConfigurationError``).
            It is never closed here, and its default headers and cookies are sent
            to Para too. Default ``None``: one session per event loop is created
            on that loop's first call, with no cookie jar.
        timeout: Seconds allowed for one attempt, from connecting to reading the
            whole answer. Default 10: these are small calls that should take well
            under a second, so 10 s only fires when something is wrong, and it
            bounds how long a caller's own request can hang.
        retries: Extra attempts after a 502, 503 or 504 answer or a failed or
            dropped connection. Default 2: enough to ride out a rolling deploy,
            few enough to keep the caller waiting seconds, not minutes. ``0``
            disables retries.
        backoff: Seconds slept before the first retry, doubled before each next
            one. Default 0.5 (then 1.0): gateway errors mostly clear within a
            second or two. ``0`` retries at once.
        max_response_size: The most bytes of a 200 answer that are read; a larger
            answer is an error, and reading stops there. Default 64 KiB: the
            documented answers are under 200 bytes, so this leaves room for new
            fields while bounding the memory one call can take.

    Raises:
        ConfigurationError: if any setting is invalid; the message says how to
            fix it and never contains the key.
    """

    __slots__ = (
        "_api_key",
        "_backoff",
        "_base_url",
        "_client_timeout",
        "_environment",
        "_max_response_size",
        "_retries",
        "_sessions",
        "_sessions_endpoint",
        "_timeout",
        "_wallets_endpoint",
    )

    #: The class named in configuration errors; a facade that builds a ``ParaAPI``
    #: for its user can subclass it to name itself.
    _called_as = "ParaAPI"

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
        # Out of this frame's locals, which error reporters record with the
        # traceback of a ConfigurationError raised below.
        api_key = Secret[object](secret_api_key)
        del secret_api_key
        configured_by(
            self._called_as,
            lambda: self._configure(
                api_key,
                environment,
                base_url,
                session,
                timeout,
                retries,
                backoff,
                max_response_size,
            ),
        )
        self._client_timeout = aiohttp.ClientTimeout(total=self._timeout)
        self._sessions = LoopSessions(self._called_as, session)

    def _configure(
        self,
        api_key: Secret[object],
        environment: Environment | str | None,
        base_url: str | None,
        session: aiohttp.ClientSession | None,
        timeout: float,
        retries: int,
        backoff: float,
        max_response_size: int,
    ) -> None:
        """Check the settings (the arguments of ``__init__``) and set up both endpoints."""
        self._api_key = check_secret_api_key(api_key)
        self._environment, self._base_url = resolve_target(self._api_key, environment, base_url)
        self._timeout = check_seconds("timeout", timeout, allow_zero=False)
        self._retries = check_int("retries", retries, minimum=0)
        self._backoff = check_seconds("backoff", backoff, allow_zero=True)
        self._max_response_size = check_int("max_response_size", max_response_size, minimum=1)
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise ConfigurationError(
                f"session must be an aiohttp.ClientSession, not {type(session).__name__}"
            )
        self._sessions_endpoint = Endpoint(
            self._base_url + "sessions/verify",
            {
                403: (
                    SessionExpiredError,
                    "the session has expired or the verification token is invalid",
                )
            },
        )
        self._wallets_endpoint = Endpoint(
            self._base_url + "wallets/verify",
            {404: (WalletNotFoundError, "the address is not a Para wallet of your users")},
        )

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
        # getattr: error reporters call repr() on the `self` of a constructor that
        # raised, before every attribute is set.
        environment = getattr(self, "_environment", None)
        name = None if environment is None else environment.name
        return f"<ParaAPI base_url={getattr(self, '_base_url', None)!r} environment={name!r}>"

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
        """Close the sessions this object created, on every loop; a borrowed one is
        left open.

        Calling it again does nothing; calls made after it raise
        ``ParaUnavailableError``.
        """
        await self._sessions.close()

    async def verify_session(self, verification_token: str) -> SessionInfo:
        """Ask Para whether the session behind ``verification_token`` is active.

        Args:
            verification_token: What ``para.getVerificationToken()`` returns on the
                client, *not* the JWT from ``para.issueJwt()`` (verify JWTs
                locally). Sent exactly as given.

        Returns:
            Who signed in, and how.

        Raises:
            InvalidVerificationTokenError: before any request, if the value cannot
                be a verification token: not a string, empty, too long, anything
                that is or wraps a JWS/JWT (dot-separated segments), whitespace,
                quotes, control or invisible characters, a ``Bearer`` prefix.
            SessionExpiredError: Para answered 403.
            ParaAuthenticationError, ParaUnavailableError, ParaAPIError: see the
                class docstring.
        """
        try:
            return await self._verify_session(verification_token)
        except ParaJWTError as exc:
            error = exc
        raise _without_internals(error)

    async def verify_wallet(self, address: str) -> str:
        """Return Para's wallet ID for ``address`` if it is one of your users' wallets.

        Args:
            address: Sent exactly as given. Para does not document how it compares
                addresses (EVM checksum case, for example), so no normalisation is
                guessed here: pass the address in the form Para gave it to you,
                for instance from the JWT's ``data.wallets``.

        Returns:
            Para's wallet ID.

        Raises:
            InvalidAddressError: before any request, if ``address`` is not a
                string, is empty, or is longer than any chain's address.
            WalletNotFoundError: Para answered 404.
            ParaAuthenticationError, ParaUnavailableError, ParaAPIError: see the
                class docstring.
        """
        try:
            return await self._verify_wallet(address)
        except ParaJWTError as exc:
            error = exc
        raise _without_internals(error)

    async def _verify_session(self, verification_token: str) -> SessionInfo:
        check_verification_token(verification_token)
        endpoint = self._sessions_endpoint
        body = await self._post(endpoint, _json_body("verificationToken", verification_token))
        auth_type = body.get("authType")
        identifier = body.get("identifier")
        oauth_method = body.get("oAuthMethod")
        if type(auth_type) is not str or not auth_type:
            raise bad_body(endpoint, "that lacks a non-empty string 'authType'")
        if type(identifier) is not str or not identifier:
            raise bad_body(endpoint, "that lacks a non-empty string 'identifier'")
        # An empty string names no provider: it means the same as an absent field.
        if oauth_method is not None and type(oauth_method) is not str:
            raise bad_body(endpoint, "whose 'oAuthMethod' is not a string")
        return SessionInfo(
            auth_type=AuthType(auth_type),
            identifier=identifier,
            oauth_method=OAuthMethod(oauth_method) if oauth_method else None,
            raw=MappingProxyType(body),
        )

    async def _verify_wallet(self, address: str) -> str:
        check_address(address)
        endpoint = self._wallets_endpoint
        body = await self._post(endpoint, _json_body("address", address))
        wallet_id = body.get("walletId")
        if type(wallet_id) is not str or not wallet_id:
            raise bad_body(endpoint, "that lacks a non-empty string 'walletId'")
        return wallet_id

    # --- transport ------------------------------------------------------------------

    async def _post(self, endpoint: Endpoint, data: Secret[bytes]) -> dict[str, Any]:
        """POST ``data`` with retries; return the 200 answer's JSON object or raise.

        Every way a call can fail ends here, as one ``Answer``: logged once per
        attempt, retried when it may help, then mapped to one exception.
        """
        session = await self._sessions.get()
        if session is None:
            raise ParaUnavailableError(f"this {self._called_as} has been closed")
        attempts = self._retries + 1
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                await _sleep(self._backoff * 2 ** (attempt - 2))
            started = time.perf_counter()
            answer = await self._attempt(session, endpoint, data)
            log_attempt(endpoint, answer.outcome, started, attempt, attempts)
            if not (answer.retryable and attempt < attempts):
                break
        if answer.failure is not None:
            raise self._failure_error(endpoint, answer, attempts)
        if answer.body is None:
            assert answer.status is not None  # an answer without failure has a status
            raise status_error(endpoint, answer.status, attempts)
        return json_object(endpoint, answer.body)

    def _failure_error(self, endpoint: Endpoint, answer: Answer, attempts: int) -> ParaAPIError:
        if answer.kind == "too-large":
            return bad_body(endpoint, f"over {self._max_response_size} bytes")
        if answer.kind == "timeout":
            return ParaUnavailableError(f"{endpoint} did not answer within {self._timeout:g} s")
        if answer.kind == "connection":
            return ParaUnavailableError(
                f"{endpoint} could not be reached ({answer.failure}); tried {attempts} time(s)"
            )
        if answer.kind == "not-http":
            return ParaUnavailableError(f"{endpoint} sent an answer that is not valid HTTP")
        return ParaUnavailableError(f"{endpoint} failed: {answer.failure}")

    async def _attempt(
        self, session: aiohttp.ClientSession, endpoint: Endpoint, data: Secret[bytes]
    ) -> Answer:
        """One request; never raises an ``Exception``.

        aiohttp's exceptions are dropped here, never chained: their tracebacks hold
        aiohttp's frames, whose locals include our request headers, the secret key
        among them. Each ``Answer`` is returned outside the ``except`` blocks, so
        nothing raised later has one as its ``__context__`` either.
        """
        cancelled: tuple[object, ...] | None = None
        try:
            return await self._exchange(session, endpoint, data)
        except TimeoutError:
            # Not retried: the caller has already waited a full `timeout`, Para may
            # still be working on the request, and sending it again adds load to a
            # service that is already slow.
            answer = Answer(None, failure="timed out", kind="timeout")
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            # Refused, reset or dropped (before or during the answer): the next
            # attempt opens a new connection, which usually reaches a healthy
            # instance. ClientPayloadError is a connection dropped mid-body.
            answer = Answer(None, failure=type(exc).__name__, kind="connection")
        except aiohttp.ClientResponseError:
            answer = Answer(None, failure="not HTTP", kind="not-http")
        except asyncio.CancelledError as exc:
            # Re-raised fresh below: the caught one went through aiohttp's frames.
            cancelled = exc.args
        except Exception as exc:
            # A borrowed session the app closed, a bug in a dependency...: the same
            # failure path as any other, not a raw exception out of verify_*().
            answer = Answer(None, failure=f"unexpected {type(exc).__name__}", kind="unexpected")
        if cancelled is not None:
            raise asyncio.CancelledError(*cancelled)
        return answer

    async def _exchange(
        self, session: aiohttp.ClientSession, endpoint: Endpoint, data: Secret[bytes]
    ) -> Answer:
        async with session.post(
            endpoint.url,
            data=data.reveal(),
            # Built inline, so no frame of ours holds the key in a local.
            headers={
                "content-type": "application/json",
                "x-external-api-key": self._api_key.reveal(),
            },
            timeout=self._client_timeout,
            # A redirect would carry the secret key header to another URL (aiohttp
            # strips only Authorization across hosts).
            allow_redirects=False,
            # Overrides a borrowed session's setting: the statuses are mapped here,
            # and aiohttp's ClientResponseError would hold our headers.
            raise_for_status=False,
        ) as response:
            if response.status != 200:
                # Error bodies are never read: they are never shown, and leaving one
                # unread only costs the connection, not a wrong answer.
                return Answer(response.status)
            body = await read_capped(response.content, self._max_response_size)
            if body is None:
                return Answer(200, failure="too large", kind="too-large")
            return Answer(200, body)


def _without_internals(error: ParaJWTError) -> ParaJWTError:
    """``error`` with no traceback and nothing chained, to be raised by a public method.

    The frames it went through hold what must not reach an error reporter: the
    request body (the verification token), Para's answer (which may echo it).
    Raised again from the public method, its traceback starts there.
    """
    error.__cause__ = error.__context__ = None
    return error.with_traceback(None)


def _json_body(name: str, value: str) -> Secret[bytes]:
    return Secret(json.dumps({name: value}).encode())

