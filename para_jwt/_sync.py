"""Blocking facades for synchronous code: ``SyncParaVerifier`` and ``SyncParaAPI``.

Verification is CPU work and runs in the caller's thread: a token-cache hit or a
key already in the key set touches no other thread. Only I/O (fetching Para's
keys, calling Para's API) runs on the one background event loop every sync
instance shares (``_loop_thread.PORTAL``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import copy
import functools
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from types import TracebackType
from typing import Any, NoReturn, Self, TypeVar, Unpack

from ._loop_thread import PORTAL
from .api import ParaAPI, SessionInfo
from .claims import ParaClaims
from .environments import Environment
from .errors import ConfigurationError, JWKSUnavailableError, ParaAPIError, ParaJWTError
from .jwks import CacheOptions, JWKSCache, JWKSHealth, KeySet, VerificationKey
from .verifier import ParaVerifier, _scrubbed, _Unverified

__all__ = ["SyncParaAPI", "SyncParaVerifier"]

_T = TypeVar("_T")


def _raise_copy(error: BaseException) -> NoReturn:
    """Raise a copy of an error several threads may be raising at once.

    Every waiter of a shared fetch gets the same exception object; raising one
    object in many threads would tangle their tracebacks. A fetch cancelled by
    ``close()`` in another thread is a key set that cannot be had.
    """
    if isinstance(error, ParaJWTError):
        raise _scrubbed(copy.copy(error))
    if isinstance(error, concurrent.futures.CancelledError | asyncio.CancelledError):
        raise JWKSUnavailableError("the verifier was closed while fetching keys") from None
    raise error


class _SyncCore(ParaVerifier):
    """The ParaVerifier inside a SyncParaVerifier, named so in errors and ``repr``.

    Its key lookups also start the key cache's refresh-ahead: ``JWKSCache.peek``
    starts it only on a running event loop, which a synchronous caller lacks, so
    here it runs on the background loop, one refresh at a time.
    """

    _called_as = "SyncParaVerifier"

    def __init__(self, api_key_id: str, **options: Any) -> None:
        super().__init__(api_key_id, **options)
        self._refreshing: concurrent.futures.Future[KeySet] | None = None
        self._refresh_lock = threading.Lock()
        self._refresh_stopped = False
        if self._cache is not None:
            self._start_refresh = functools.partial(self._refresh_ahead, self._cache)
            self._peek = self._peek_and_refresh

    def _peek_and_refresh(self, kid: str) -> VerificationKey | None:
        """``peek(kid)``, the refresh-ahead started on the background loop when due."""
        # The cache asks whether a refresh is due only once its set is past the
        # refresh point, so a hit costs one more call than an async one, no more.
        assert self._cache is not None
        return self._cache.peek(kid, self._start_refresh)

    def _refresh_ahead(self, cache: JWKSCache) -> None:
        with self._refresh_lock:
            refreshing = self._refreshing
            if self._refresh_stopped or (refreshing is not None and not refreshing.done()):
                return
            # Asked again under the lock: a caller that found a refresh due may
            # have waited here while another's refresh finished.
            if not cache.refresh_due():
                return
            # Its failure is the cache's business (back-off, events, health):
            # requests keep the fresh set they have meanwhile.
            with contextlib.suppress(ConfigurationError):  # from the background loop itself
                self._refreshing = PORTAL.submit(self, cache.refresh())

    def stop_refreshing(self) -> None:
        """No refresh-ahead starts after this: the background loop is not restarted."""
        with self._refresh_lock:
            self._refresh_stopped = True


class SyncParaVerifier:
    """A blocking ``ParaVerifier`` for synchronous code (Flask, Django, gunicorn sync workers).

    Takes the arguments of ``ParaVerifier`` except ``session``, and raises the
    same errors. One instance serves every thread of the process: create it once
    at startup, share it, and close it on shutdown (or use ``with``); at
    interpreter exit an instance still open is closed for you.

    Verification runs in the calling thread. Only fetching Para's keys runs on a
    private event loop in a background thread, started on first need; callers
    needing the same key at once wait on one fetch.

    Args:
        api_key_id: Your API key's ID (a UUID), which Para puts in ``aud``.
        environment: As for ``ParaVerifier``, like every argument below.
        jwks_url: An explicit key-set URL.
        jwks: A pinned key set.
        jwks_cache: A ready ``JWKSCache``, borrowed.
        algorithms: Accepted ``alg`` values (RS256 by default).
        leeway: Clock skew tolerated, in seconds.
        clock: Wall-clock seconds since the epoch.
        max_token_size: Longest token accepted, in bytes.
        token_cache_size: Verified tokens remembered; 0 turns it off.
        **cache_options: The key cache's options, documented on ``JWKSCache``.

    Raises:
        ConfigurationError: As ``ParaVerifier`` does.
    """

    def __init__(
        self,
        api_key_id: str,
        *,
        environment: Environment | str | None = None,
        jwks_url: str | None = None,
        jwks: Mapping[str, Any] | None = None,
        jwks_cache: JWKSCache | None = None,
        algorithms: Sequence[str] = ("RS256",),
        leeway: float = 0,
        clock: Callable[[], float] = time.time,
        max_token_size: int = 16 * 1024,
        token_cache_size: int = 4096,
        **cache_options: Unpack[CacheOptions],
    ) -> None:
        self._verifier = _SyncCore(
            api_key_id,
            environment=environment,
            jwks_url=jwks_url,
            jwks=jwks,
            jwks_cache=jwks_cache,
            algorithms=algorithms,
            leeway=leeway,
            clock=clock,
            max_token_size=max_token_size,
            token_cache_size=token_cache_size,
            **cache_options,
        )
        self._fetches: dict[str, concurrent.futures.Future[VerificationKey]] = {}
        # Reentrant: a future already done runs its callback at once, in this thread.
        self._fetches_lock = threading.RLock()
        self._closed = False

    def __repr__(self) -> str:
        return repr(self._verifier)

    @property
    def api_key_id(self) -> str:
        """The API key ID tokens must carry as ``aud``."""
        return self._verifier.api_key_id

    @property
    def jwks(self) -> JWKSCache | None:
        """The key cache (``None`` with pinned keys); its coroutines belong to the
        background loop, so call only its synchronous methods."""
        return self._verifier.jwks

    @property
    def async_verifier(self) -> ParaVerifier:
        """The ``ParaVerifier`` inside, for async code in the same process (Django's
        async views): it shares this instance's key set and token cache, and works
        from any event loop. Close this instance, not it."""
        return self._verifier

    def verify(self, token: str | bytes) -> ParaClaims:
        """Verify a Para JWT and return its typed claims; blocks only to fetch keys.

        Args:
            token: The compact JWS, without the ``Bearer `` scheme.

        Returns:
            The token's claims, checked.

        Raises:
            InvalidTokenError: The token is bad (answer 401); a subclass names why.
            JWKSError: Para's keys cannot be had right now (answer 503).
        """
        outcome = self._verifier._verify_locally(token)
        if type(outcome) is ParaClaims:
            return outcome
        del token  # as in ParaVerifier.verify: refusals raised from a frame holding no token
        if type(outcome) is _Unverified:
            outcome = self._fetch_and_complete(outcome)
            if type(outcome) is ParaClaims:
                return outcome
        assert isinstance(outcome, ParaJWTError)
        raise outcome

    def _fetch_and_complete(self, unverified: _Unverified) -> ParaClaims | ParaJWTError:
        """``ParaVerifier._fetch_and_complete``, the key fetched on the background loop."""
        try:
            return self._verifier._complete(unverified, self._key(unverified.kid))
        except ParaJWTError as exc:
            return _scrubbed(exc)

    def _key(self, kid: str) -> VerificationKey:
        """Fetch the key for ``kid`` on the background loop, one fetch per kid at a time."""
        if self._closed:
            raise JWKSUnavailableError("the verifier is closed")
        cache = self._verifier.jwks
        assert cache is not None  # pinned keys never need a fetch
        with self._fetches_lock:
            future = self._fetches.get(kid)
            if future is None:
                future = PORTAL.submit(self._verifier, cache.get_key(kid))
                self._fetches[kid] = future
                future.add_done_callback(lambda done: self._fetch_finished(kid, done))
        try:
            return future.result()
        except BaseException as exc:  # re-raised as a private copy
            _raise_copy(exc)

    def _fetch_finished(self, kid: str, future: concurrent.futures.Future[VerificationKey]) -> None:
        with self._fetches_lock:
            if self._fetches.get(kid) is future:
                del self._fetches[kid]

    def refresh(self) -> None:
        """Fetch Para's keys now, e.g. at startup so the first request does not wait.

        Raises:
            JWKSUnavailableError: The fetch failed.
        """
        if self._verifier.jwks is not None:
            self._run(self._verifier.refresh())

    def _run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        if self._closed:
            coro.close()
            raise JWKSUnavailableError("the verifier is closed")
        future = PORTAL.submit(self._verifier, coro)
        try:
            return future.result()
        except BaseException as exc:  # re-raised as a private copy
            _raise_copy(exc)

    def health(self) -> JWKSHealth | None:
        """The key cache's health snapshot (``None`` with pinned keys)."""
        return self._verifier.health()

    def close(self) -> None:
        """Close the HTTP session on the background loop; stop it if no one else uses it.

        Safe to call more than once. Token-cache hits still answer afterwards;
        a key fetch raises ``JWKSUnavailableError``.
        """
        self._closed = True
        self._verifier.stop_refreshing()
        PORTAL.release(self._verifier)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class _SyncAPICore(ParaAPI):
    """The ParaAPI inside a SyncParaAPI, named so in its errors."""

    __slots__ = ()
    _called_as = "SyncParaAPI"


class SyncParaAPI:
    """A blocking ``ParaAPI``: ``verify_session`` and ``verify_wallet`` for synchronous code.

    Takes the arguments of ``ParaAPI`` except ``session`` and raises the same
    errors. Every call runs on the background loop thread shared with
    ``SyncParaVerifier``; share one instance across threads and close it on
    shutdown (or use ``with``).

    Args:
        secret_api_key: Your secret API key, sent as ``x-external-api-key``.
        environment: As ``ParaAPI``'s (by default, from the key's prefix).
        base_url: As ``ParaAPI``'s.
        timeout: As ``ParaAPI``'s.
        retries: As ``ParaAPI``'s.
        backoff: As ``ParaAPI``'s.
        max_response_size: As ``ParaAPI``'s.

    Raises:
        ConfigurationError: As ``ParaAPI`` does.
    """

    def __init__(
        self,
        secret_api_key: str,
        *,
        environment: Environment | str | None = None,
        base_url: str | None = None,
        timeout: float = 10.0,
        retries: int = 2,
        backoff: float = 0.5,
        max_response_size: int = 64 * 1024,
    ) -> None:
        self._api = _SyncAPICore(
            secret_api_key,
            environment=environment,
            base_url=base_url,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            max_response_size=max_response_size,
        )
        self._closed = False

    def __repr__(self) -> str:
        return f"SyncParaAPI(base_url={self._api.base_url!r})"

    @property
    def base_url(self) -> str:
        """Where Para's API is called."""
        return self._api.base_url

    def verify_session(self, verification_token: str) -> SessionInfo:
        """Ask Para whether a session is live; see ``ParaAPI.verify_session``.

        Args:
            verification_token: The token from the client's ``issueJwt``/session export.

        Returns:
            The session's user and login method.

        Raises:
            ParaAPIError: As ``ParaAPI.verify_session`` does.
        """
        call = self._api.verify_session(verification_token)
        del verification_token  # no frame an error passes through holds it
        return self._run(call)

    def verify_wallet(self, address: str) -> str:
        """The Para wallet ID for ``address``; see ``ParaAPI.verify_wallet``.

        Args:
            address: The wallet address.

        Returns:
            The wallet's ID.

        Raises:
            ParaAPIError: As ``ParaAPI.verify_wallet`` does.
        """
        return self._run(self._api.verify_wallet(address))

    def _run(self, call: Coroutine[Any, Any, _T]) -> _T:
        if self._closed:
            call.close()
            raise ParaAPIError("the API client is closed")
        try:
            return PORTAL.submit(self._api, call).result()
        except ParaJWTError as exc:
            error = exc
        except concurrent.futures.CancelledError:
            error = ParaAPIError("the API client was closed during the call")
        raise _scrubbed(error)

    def close(self) -> None:
        """Close the HTTP session on the background loop. Safe to call more than once."""
        self._closed = True
        PORTAL.release(self._api)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
