"""MockPara: a local, scriptable Para API host for tests and development.

Verifying Para tokens means talking to Para: fetching its key set, and calling
``/sessions/verify`` and ``/wallets/verify`` with a secret key. Tests of that code
are only worth something if those calls are real HTTP, so MockPara is a real
aiohttp server on 127.0.0.1 that answers like Para's API host, signs tokens in
Para's exact shape with keys it publishes, and can be told to misbehave: rotate
keys, go down, answer slowly, drop connections, redirect, or serve hostile key
sets. It counts and records every request, so a test can assert how often a
client called Para, not only what it concluded.

Time comes from an injectable clock, as everywhere in para_jwt: a test moves the
clock forward instead of sleeping.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import json
import math
import secrets
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import TracebackType
from typing import Any, Final, Literal, Self

from aiohttp import web
from aiohttp.typedefs import Handler

from .._freshness import format_http_date, parse_http_date
from .._loop_thread import LoopThread
from .._sync import SyncParaAPI, SyncParaVerifier
from ..api import ParaAPI
from ..verifier import ParaVerifier
from . import _fakes
from ._keys import SUPPORTED_ALGORITHMS, SigningKey, sign_compact

__all__ = ["Endpoint", "MockPara", "RecordedRequest"]

#: The endpoints whose behaviour can be scripted.
Endpoint = Literal["jwks", "sessions", "wallets"]
_ENDPOINTS: tuple[Endpoint, ...] = ("jwks", "sessions", "wallets")

#: Headers whose values are credentials; ``RecordedRequest``'s repr hides them.
_SECRET_HEADERS = frozenset({"x-external-api-key", "x-api-key", "authorization", "cookie"})


class _Omit(Enum):
    OMIT = "OMIT"

    def __repr__(self) -> str:
        return "MockPara.OMIT"


class _Default(Enum):
    DEFAULT = "DEFAULT"

    def __repr__(self) -> str:
        return "<random>"


_DEFAULT: Final = _Default.DEFAULT


@dataclass(frozen=True, slots=True, repr=False)
class RecordedRequest:
    """One request MockPara received, as it arrived."""

    method: str
    #: The path without the query string, e.g. ``"/.well-known/jwks.json"``.
    path: str
    #: Case-insensitive (``headers["X-External-API-Key"]`` works) and read-only.
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON (raises ``ValueError`` if it is not JSON)."""
        return json.loads(self.body)

    def __repr__(self) -> str:
        # Test failures print this; the secret key must not end up in CI logs.
        shown = {
            name: "<redacted>" if name.lower() in _SECRET_HEADERS else value
            for name, value in self.headers.items()
        }
        return (
            f"RecordedRequest(method={self.method!r}, path={self.path!r}, "
            f"headers={shown!r}, body=<{len(self.body)} bytes>)"
        )


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: bytes
    headers: Mapping[str, str]

    def response(self) -> web.Response:
        return web.Response(status=self.status, body=self.body, headers=self.headers)


def _json_bytes(value: Any) -> bytes:
    # Compact and non-ASCII as is: what JSON.stringify, on Para's Node side, produces.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _json_answer(status: int, value: Any) -> _Answer:
    return _Answer(status, _json_bytes(value), {"Content-Type": "application/json"})


def _message(status: int, message: str) -> _Answer:
    return _json_answer(status, {"message": message})


class _Refused(Exception):
    """Ends request handling early with ``answer`` (bad key, bad body)."""

    def __init__(self, answer: _Answer) -> None:
        super().__init__(answer.status)
        self.answer = answer


def _merged(base: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    # Overriding a member keeps its place, so Para's member order survives.
    merged = dict(base)
    for name, value in (overrides or {}).items():
        if value is _Omit.OMIT:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


def _check_endpoint(endpoint: str) -> Endpoint:
    if endpoint not in _ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}: use one of {_ENDPOINTS}")
    return endpoint


def _check_times(times: int) -> None:
    if not isinstance(times, int) or times < 1:
        raise ValueError(f"times must be a positive int, not {times!r}")


def _etag_matches(if_none_match: str, etag: str) -> bool:
    # RFC 9110 §13.1.2: If-None-Match uses the weak comparison, so W/"x" matches "x".
    candidates = (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))
    return any(tag in ("*", etag) for tag in candidates)


@dataclass(slots=True)
class _Session:
    auth_type: str
    identifier: str
    oauth_method: str | None
    expires_at: float | None
    expired: bool = False

    def is_live(self, now: float) -> bool:
        return not self.expired and (self.expires_at is None or now < self.expires_at)

    def as_json(self) -> dict[str, str]:
        answer = {"authType": self.auth_type, "identifier": self.identifier}
        if self.oauth_method is not None:
            answer["oAuthMethod"] = self.oauth_method
        return answer


# A one-shot fault: given the request and the answer MockPara would have given,
# produce what it gives instead.
_Fault = Callable[[web.Request, _Answer], web.StreamResponse]


async def _stop_listening(listener: asyncio.Server) -> None:
    """Close ``listener`` without leaking a connection it accepted at that moment.

    asyncio accepts a connection in one loop iteration and makes its transport in
    the next. A server closed in between makes that transport fail (CPython 3.11
    to 3.13), and the accepted socket stays open until some later garbage
    collection warns about an unclosed transport, in whatever test runs then. A
    client connecting just as a test ends is enough. So: stop accepting, give
    what was already accepted the one iteration it needs to become a connection
    of the web server (which ``AppRunner.cleanup`` closes), and only then close.
    """
    loop = asyncio.get_running_loop()
    # The two-step accept is the selector loop's (Linux's and macOS's default);
    # other loops (Windows' proactor, uvloop) accept otherwise and may not
    # support remove_reader, so they just close.
    if isinstance(loop, asyncio.SelectorEventLoop):
        for sock in listener.sockets:
            loop.remove_reader(sock.fileno())
        await asyncio.sleep(0)
    listener.close()


def _drop(request: web.Request, answer: _Answer) -> web.StreamResponse:
    # Closing the transport before aiohttp writes anything makes the client see
    # the server hang up mid-request; aiohttp treats the write that then fails as
    # a client disconnect and logs nothing above debug level.
    request.protocol.force_close()
    return answer.response()


def _malformed(request: web.Request, answer: _Answer) -> web.StreamResponse:
    # The first half of the real answer: JSON that was cut off in transit.
    return _Answer(200, answer.body[: len(answer.body) // 2], answer.headers).response()


class MockPara:
    """A local Para API host: JWKS, ``/sessions/verify`` and ``/wallets/verify``.

    Use it as an async context manager (or ``await start()`` / ``await close()``)::

        async with MockPara() as para:
            token = para.issue_jwt()
            ...  # verify it against para.jwks_url with audience para.api_key_id

    Everything that shapes the answers can be changed while it runs; changes take
    effect with the next request. Plain attributes that shape the JWKS response:

    ``cache_control``
        The ``Cache-Control`` header (constructor option; ``None`` sends none).
    ``expires``
        An ``Expires`` header value (an HTTP-date string), or ``None`` (default)
        for none.
    ``age``
        An ``Age`` header in seconds, or ``None`` (default) for none, to play a
        CDN that has held the response for a while.
    ``last_modified``
        ``None`` (default) sends ``Last-Modified`` as the clock's time of the last
        change to the served key set; a string is sent verbatim and also used to
        answer ``If-Modified-Since``. HTTP dates have one-second resolution, so a
        change in the same second as a fetch is invisible to ``If-Modified-Since``
        (the ``ETag`` always sees it).
    """

    #: Pass as a claim or header value to ``issue_jwt``/``sign`` to remove that
    #: member, e.g. ``issue_jwt(exp=MockPara.OMIT)``.
    OMIT: Final = _Omit.OMIT

    def __init__(
        self,
        *,
        api_key_id: str | None = None,
        secret_api_key: str | None = None,
        alg: str = "RS256",
        cache_control: str | None = "public, max-age=600",
        clock: Callable[[], float] = time.time,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """Make a mock with one signing key; nothing listens until ``start``.

        Args:
            api_key_id: The ``aud`` of issued tokens: the API key's ID, a UUID
                in Para's developer portal. Default: a random UUID4, so a verifier only
                passes if it is configured with this mock's ID.
            secret_api_key: The key ``/sessions/verify`` and ``/wallets/verify``
                demand in ``x-external-api-key``. Default: ``"sandbox_"`` and 32 random
                hex digits, since real Para keys carry their environment as a prefix.
            alg: The algorithm of the signing keys made when none is named
                (``RS256``, ``PS256``, ``ES256`` or ``EdDSA``). Default ``RS256``, Para's.
            cache_control: The JWKS response's ``Cache-Control``; also a plain
                attribute. Default ``"public, max-age=600"``, a typical key-set policy;
                Para's real header is unknown.
            clock: Seconds since the epoch, for ``iat``/``exp``, session expiry
                and ``Last-Modified``. Default ``time.time``; tests inject a fake.
            host: Where to listen. Default ``127.0.0.1``: loopback is the only
                place para_jwt accepts plain ``http://``.
            port: Default ``0``, a free port chosen by the OS, so parallel test
                runs do not collide.
        """
        if alg not in SUPPORTED_ALGORITHMS:
            raise ValueError(f"alg must be one of {SUPPORTED_ALGORITHMS}, not {alg!r}")
        self._api_key_id = str(uuid.uuid4()) if api_key_id is None else api_key_id
        self._secret_api_key = (
            "sandbox_" + secrets.token_hex(16) if secret_api_key is None else secret_api_key
        )
        self._alg = alg
        self._clock = clock
        self._host = host
        self._requested_port = port

        self.cache_control = cache_control
        self.expires: str | None = None
        self.age: int | None = None
        self.last_modified: str | None = None

        self._keys: dict[str, SigningKey] = {}
        self._retired: set[str] = set()
        self._extra_jwks: list[dict[str, Any]] = []
        self._jwks_override: bytes | None = None
        self._jwks_changed_at = clock()
        self._current_kid: str | None = self._new_key(alg).kid
        self._next_kid: str | None = None

        self._sessions: dict[str, _Session] = {}
        self._wallets: dict[str, str] = {}

        self._faults: dict[Endpoint, deque[_Fault]] = {e: deque() for e in _ENDPOINTS}
        self._latency: dict[Endpoint, float] = dict.fromkeys(_ENDPOINTS, 0.0)
        self._down: set[Endpoint] = set()
        self._counts: dict[Endpoint, int] = dict.fromkeys(_ENDPOINTS, 0)
        self._requests: list[RecordedRequest] = []

        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self._port: int | None = None
        self._thread_loop: LoopThread | None = None

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening. A MockPara starts once; make a new one to start again."""
        if self._runner is not None:
            raise RuntimeError("this MockPara was already started")
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/.well-known/jwks.json", self._handle_jwks)
        app.router.add_post("/sessions/verify", self._handle_sessions)
        app.router.add_post("/wallets/verify", self._handle_wallets)
        # No access log: it would only repeat what ``requests`` records. A short
        # shutdown grace, because a handler held by a latency fault must not make
        # close() wait for it.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.25)
        await runner.setup()
        assert runner.server is not None  # set by setup()
        try:
            # A listener of our own rather than a ``web.TCPSite``: close() must stop
            # it accepting before it closes it (see ``_stop_listening``).
            listener = await asyncio.get_running_loop().create_server(
                runner.server, self._host, self._requested_port
            )
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._listener = listener
        self._port = listener.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and drop open connections. Safe to call more than once."""
        if self._listener is not None:
            await _stop_listening(self._listener)
            self._listener = None
        if self._runner is not None:
            # Closes every connection, the ones accepted just before the listener
            # closed too, after a short grace for handlers still running.
            await self._runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def __enter__(self) -> Self:
        """Start serving from a private event loop in a background thread.

        For synchronous tests: ``with MockPara() as para:``; every method except
        ``start``/``close`` is then usable from the test's thread.
        """
        if self._thread_loop is not None:
            raise RuntimeError("this MockPara was already started")
        self._thread_loop = LoopThread("MockPara")
        self._thread_loop.submit(self, self.start()).result()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop serving and stop the background thread."""
        if self._thread_loop is not None:
            self._thread_loop.release(self)

    def __repr__(self) -> str:
        # Never the secret key or private keys: reprs end up in test output and logs.
        where = self.base_url if self._port is not None else "not started"
        return f"MockPara(api_key_id={self._api_key_id!r}, {where}, kid={self._current_kid!r})"

    # --- identity and addresses ----------------------------------------------------------

    @property
    def api_key_id(self) -> str:
        """The audience of issued tokens (configure verifiers with it)."""
        return self._api_key_id

    @property
    def secret_api_key(self) -> str:
        """The secret key the verification endpoints demand."""
        return self._secret_api_key

    @property
    def clock(self) -> Callable[[], float]:
        """The clock behind ``iat``, session expiry and ``Last-Modified``."""
        return self._clock

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("MockPara is not started: use 'async with MockPara()' or start()")
        return self._port

    @property
    def base_url(self) -> str:
        """The API host's root, with a trailing slash, like ``Environment.api_base``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}/"

    @property
    def jwks_url(self) -> str:
        return self.base_url + ".well-known/jwks.json"

    # --- keys ----------------------------------------------------------------------------

    @property
    def current_kid(self) -> str:
        """The ``kid`` that ``issue_jwt`` and ``sign`` use by default."""
        if self._current_kid is None:
            raise RuntimeError("the signing key was retired: call rotate() to get a new one")
        return self._current_kid

    @property
    def next_kid(self) -> str | None:
        """The key ``publish_next`` prepared for the next ``rotate``, if any."""
        return self._next_kid

    def rotate(self, alg: str | None = None) -> str:
        """Sign with a new key from now on and return its ``kid``.

        The key prepared by ``publish_next`` if there is one, else a freshly made
        and published key of ``alg`` (default: the constructor's ``alg``). Earlier
        keys stay published until ``retire``.
        """
        prepared = self._next_kid
        if prepared is not None:
            if alg is not None and alg != self._keys[prepared].alg:
                raise ValueError(
                    f"the prepared key {prepared!r} is {self._keys[prepared].alg}, not {alg}"
                )
            self._next_kid = None
            self._current_kid = prepared
        else:
            self._current_kid = self._new_key(alg or self._alg).kid
        return self._current_kid

    def publish_next(self, alg: str | None = None) -> str:
        """Publish a new key now without signing with it yet; ``rotate`` switches to it.

        This is the usual key rollover: clients that cached the key set before
        the rotation already know the new key. Calling it again prepares a newer key instead
        (the earlier one stays published).
        """
        self._next_kid = self._new_key(alg or self._alg).kid
        return self._next_kid

    def retire(self, kid: str) -> None:
        """Unpublish a key (or a JWK added by ``publish_jwk``).

        A retired MockPara key can no longer sign; retiring the current key leaves
        MockPara without one until ``rotate``.
        """
        extras = [jwk for jwk in self._extra_jwks if jwk.get("kid") == kid]
        if kid not in self._keys and not extras:
            raise KeyError(kid)
        if kid in self._keys:
            self._retired.add(kid)
        self._extra_jwks = [jwk for jwk in self._extra_jwks if jwk not in extras]
        if self._current_kid == kid:
            self._current_kid = None
        if self._next_kid == kid:
            self._next_kid = None
        self._jwks_changed()

    def jwks(self) -> dict[str, Any]:
        """The key set MockPara publishes (whatever ``set_jwks`` serves instead)."""
        keys = [key.public_jwk() for kid, key in self._keys.items() if kid not in self._retired]
        return {"keys": keys + copy.deepcopy(self._extra_jwks)}

    def set_jwks(self, document: Mapping[str, Any] | bytes | str | None) -> None:
        """Serve ``document`` instead of the real key set; ``None`` restores it.

        A mapping is sent as JSON, ``str`` and ``bytes`` verbatim, so tests can
        serve anything: an empty set, keys without ``kid``, invalid JSON.
        """
        if document is None or isinstance(document, bytes):
            self._jwks_override = document
        elif isinstance(document, str):
            self._jwks_override = document.encode()
        else:
            self._jwks_override = _json_bytes(document)
        self._jwks_changed()

    def publish_jwk(self, jwk: Mapping[str, Any]) -> None:
        """Publish an arbitrary JWK next to the real keys (a hostile or broken one).

        MockPara cannot sign with it; ``retire(jwk["kid"])`` removes it again.
        """
        self._extra_jwks.append(copy.deepcopy(dict(jwk)))
        self._jwks_changed()

    def public_jwk(self, kid: str | None = None) -> dict[str, Any]:
        """A key's public JWK as published (default: the current key)."""
        return self._key(kid).public_jwk()

    def private_jwk(self, kid: str | None = None) -> dict[str, Any]:
        """A key's private JWK (default: the current key), to sign outside MockPara."""
        return self._key(kid).private_jwk()

    def _new_key(self, alg: str) -> SigningKey:
        key = SigningKey.generate(alg)
        self._keys[key.kid] = key
        self._jwks_changed()
        return key

    def _key(self, kid: str | None) -> SigningKey:
        return self._keys[self.current_kid if kid is None else kid]

    def _jwks_changed(self) -> None:
        self._jwks_changed_at = self._clock()

    # --- tokens --------------------------------------------------------------------------

    def issue_jwt(
        self,
        user_id: str | None = None,
        *,
        wallets: Any = _DEFAULT,
        connected_wallets: Any = None,
        auth_type: str | None = "email",
        email: str | _Default | None = _DEFAULT,
        identifier: str | _Default | None = _DEFAULT,
        phone: str | _Default | None = _DEFAULT,
        oauth_method: str | None = None,
        extra_data: Mapping[str, Any] | None = None,
        expires_in: float = 1800,
        issued_at: float | None = None,
        audience: Any = None,
        kid: str | None = None,
        alg: str | None = None,
        header: Mapping[str, Any] | bytes | None = None,
        **extra: Any,
    ) -> str:
        """A token shaped exactly like the ones Para's ``issueJwt()`` returns.

        Para's payload is ``{"data": {...}, "iat", "exp", "sub", "aud"}`` with
        ``data`` holding ``userId``, ``wallets``, ``email``, ``authType``,
        ``identifier`` and, when they apply, ``oAuthMethod``, ``phone`` and
        ``connectedWallets``, in that order. Any argument set to ``None`` leaves
        its member out.

        Args:
            user_id: ``data.userId`` and ``sub``. Default: a random UUID4.
            wallets: ``data.wallets``, sent as given (any value, for malformed
                claims). Default: one random EVM and one random SOLANA wallet. Wallets
                with a string ``id`` and ``address`` are registered for
                ``/wallets/verify``.
            connected_wallets: ``data.connectedWallets``. Default: absent.
            auth_type: ``data.authType``. Default ``"email"``.
            email: ``data.email``. Default: a random address for email logins,
                absent otherwise.
            identifier: ``data.identifier``. Default: what Para reports for the
                auth type (the email, the phone number, a wallet address, a handle).
            phone: ``data.phone``. Default: a fictional number for phone logins,
                absent otherwise.
            oauth_method: ``data.oAuthMethod``, e.g. ``"google"``. Default: absent.
            extra_data: Members added to (or, with ``OMIT``, removed from)
                ``data``, e.g. ``{"telegramUserId": 42}``.
            expires_in: ``exp - iat`` in seconds. Default 1800, Para's default.
                Negative values make tokens that expired already.
            issued_at: ``iat`` in epoch seconds. Default: the clock's now.
            audience: ``aud``; any JSON value, e.g. a list. Default: ``api_key_id``.
            kid: Sign with this published key. Default: the current key.
            alg: Sign with this JWS algorithm instead of the key's own (the key
                must fit it, e.g. PS256 with an RS256 key, or ``"none"``). The header
                says the same unless ``header`` overrides it.
            header: Members merged into ``{"alg", "typ": "JWT", "kid"}``
                (``OMIT`` removes one), or raw bytes used as the header verbatim.
                (``typ`` is what Node's JWT libraries send; Para's own is unverified.)
            extra: Top-level claims added or replaced, e.g. ``nbf=...``,
                ``sub="someone-else"``, ``exp=MockPara.OMIT``.
        """
        if user_id is None:
            user_id = _fakes.user_id()
        if wallets is _DEFAULT:
            wallets = [_fakes.make_wallet("EVM"), _fakes.make_wallet("SOLANA")]
        if email is _DEFAULT:
            email = _fakes.email() if auth_type == "email" else None
        if phone is _DEFAULT:
            phone = _fakes.phone() if auth_type in ("phone", "phoneLegacy") else None
        if identifier is _DEFAULT:
            identifier = (
                None
                if auth_type is None
                else _fakes.identifier(auth_type, email=email, phone=phone)
            )
        data = {
            "userId": user_id,
            "wallets": wallets,
            "email": email,
            "authType": auth_type,
            "identifier": identifier,
            "oAuthMethod": oauth_method,
            "phone": phone,
            "connectedWallets": connected_wallets,
        }
        data = _merged({name: v for name, v in data.items() if v is not None}, extra_data)
        issued = self._clock() if issued_at is None else issued_at
        claims = {
            "data": data,
            "iat": math.floor(issued),
            "exp": math.floor(issued + expires_in),
            "sub": user_id,
            "aud": self._api_key_id if audience is None else audience,
        }
        token = self.sign(_merged(claims, extra), header=header, kid=kid, alg=alg)
        self._register_token_wallets(wallets)
        return token

    def sign(
        self,
        payload: Mapping[str, Any] | bytes,
        *,
        header: Mapping[str, Any] | bytes | None = None,
        kid: str | None = None,
        alg: str | None = None,
    ) -> str:
        """Sign any payload as a compact JWS with a published key.

        Args:
            payload: A mapping (sent as compact JSON) or the exact payload bytes.
            header: As for ``issue_jwt``: merged into ``{"alg", "typ", "kid"}``
                or, as bytes, used verbatim.
            kid: The key to sign with. Default: the current key.
            alg: The algorithm to sign with. Default: the key's own.
        """
        key = self._key(kid)
        if key.kid in self._retired:
            raise ValueError(f"key {key.kid!r} was retired and can no longer sign")
        alg = key.alg if alg is None else alg
        if not isinstance(header, bytes):
            header = _json_bytes(_merged({"alg": alg, "typ": "JWT", "kid": key.kid}, header))
        body = payload if isinstance(payload, bytes) else _json_bytes(payload)
        return sign_compact(header, body, key.private, alg)

    @staticmethod
    def make_wallet(
        wallet_type: str = "EVM",
        *,
        address: str | None = None,
        wallet_id: str | None = None,
        public_key: str | None = None,
    ) -> dict[str, Any]:
        """A random wallet object in Para's shape, e.g. for ``connected_wallets``."""
        return _fakes.make_wallet(
            wallet_type, address=address, wallet_id=wallet_id, public_key=public_key
        )

    def _register_token_wallets(self, wallets: Any) -> None:
        if not isinstance(wallets, list):
            return
        for wallet in wallets:
            if isinstance(wallet, Mapping):
                address, wallet_id = wallet.get("address"), wallet.get("id")
                if isinstance(address, str) and isinstance(wallet_id, str):
                    self._wallets[address] = wallet_id

    # --- sessions and wallets ------------------------------------------------------------

    def issue_verification_token(
        self,
        *,
        auth_type: str = "email",
        identifier: str | None = None,
        oauth_method: str | None = None,
        expires_in: float | None = None,
    ) -> str:
        """Register a session and return its verification token.

        Like Para's ``getVerificationToken()`` (a ``sessionLookupId``), the token
        is an opaque UUID, not a JWT.

        Args:
            auth_type: ``authType`` in the answer. Default ``"email"``.
            identifier: ``identifier`` in the answer. Default: a random one
                fitting ``auth_type``.
            oauth_method: ``oAuthMethod`` in the answer. Default: absent.
            expires_in: Seconds (on the clock) until the session expires.
                Default ``None``: until ``expire_session``.
        """
        if identifier is None:
            identifier = _fakes.identifier(auth_type, email=_fakes.email(), phone=_fakes.phone())
        token = str(uuid.uuid4())
        expires_at = None if expires_in is None else self._clock() + expires_in
        self._sessions[token] = _Session(auth_type, identifier, oauth_method, expires_at)
        return token

    def expire_session(self, token: str) -> None:
        """From now on ``/sessions/verify`` answers 403 for ``token``."""
        self._sessions[token].expired = True

    def register_wallet(self, address: str, wallet_id: str | None = None) -> str:
        """Make ``/wallets/verify`` know ``address``; returns its wallet ID.

        Addresses match exactly as registered: Para's normalisation rules (EVM
        checksum case) are unknown, and exact matching shows what a client sends.
        """
        wallet_id = str(uuid.uuid4()) if wallet_id is None else wallet_id
        self._wallets[address] = wallet_id
        return wallet_id

    # --- clients wired to this mock ---------------------------------------------------------

    def verifier(self, **options: Any) -> ParaVerifier:
        """A ``ParaVerifier`` for this mock's tokens.

        Args:
            **options: Passed to ``ParaVerifier``; ``clock`` defaults to this
                mock's clock.

        Returns:
            A verifier bound to ``api_key_id`` and ``jwks_url``; close it after use.
        """
        options.setdefault("clock", self._clock)
        return ParaVerifier(self._api_key_id, jwks_url=self.jwks_url, **options)

    def api(self, **options: Any) -> ParaAPI:
        """A ``ParaAPI`` client calling this mock with its secret key.

        Args:
            **options: Passed to ``ParaAPI``.
        """
        return ParaAPI(self._secret_api_key, base_url=self.base_url, **options)

    def sync_verifier(self, **options: Any) -> SyncParaVerifier:
        """A ``SyncParaVerifier`` for this mock's tokens, as ``verifier()`` makes one."""
        options.setdefault("clock", self._clock)
        return SyncParaVerifier(self._api_key_id, jwks_url=self.jwks_url, **options)

    def sync_api(self, **options: Any) -> SyncParaAPI:
        """A ``SyncParaAPI`` client calling this mock with its secret key."""
        return SyncParaAPI(self._secret_api_key, base_url=self.base_url, **options)

    # --- fault injection -----------------------------------------------------------------

    def fail_next(
        self,
        status: int = 503,
        *,
        times: int = 1,
        endpoint: Endpoint = "jwks",
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` requests to ``endpoint`` with ``status``.

        Args:
            body: Sent verbatim. Default: ``{"message": ...}`` as JSON.
            headers: Extra headers, e.g. ``{"Retry-After": "30"}``. The
                ``Content-Type`` is ``application/json`` unless given here.
        """
        if not 200 <= status <= 599:
            raise ValueError(f"status must be a final HTTP status (200-599), not {status}")
        if body is None:
            answer = _message(status, f"mock failure {status}")
        else:
            raw = body.encode() if isinstance(body, str) else body
            answer = _Answer(status, raw, {"Content-Type": "application/json"})
        answer = _Answer(answer.status, answer.body, {**answer.headers, **(headers or {})})
        self._queue(endpoint, times, lambda _request, _answer: answer.response())

    def drop_next(self, times: int = 1, *, endpoint: Endpoint = "jwks") -> None:
        """Close the connection of the next ``times`` requests without answering.

        aiohttp's client retries an idempotent request (a GET, so a JWKS fetch)
        once after a disconnect, so to make one aiohttp fetch fail, drop two.
        """
        self._queue(endpoint, times, _drop)

    def malformed_next(self, times: int = 1, *, endpoint: Endpoint = "jwks") -> None:
        """Answer 200 with JSON cut in half (not parseable) the next ``times`` times."""
        self._queue(endpoint, times, _malformed)

    def oversized_next(self, size: int, times: int = 1, *, endpoint: Endpoint = "jwks") -> None:
        """Answer 200 with a ``size``-byte body the next ``times`` times.

        The body is the real answer padded with trailing whitespace: still valid
        JSON (for the JWKS, the real key set), so only a size limit refuses it.
        A real answer longer than ``size`` is sent unpadded.
        """
        if size < 0:
            raise ValueError("size must not be negative")

        def oversized(_request: web.Request, answer: _Answer) -> web.StreamResponse:
            return _Answer(200, answer.body.ljust(size), answer.headers).response()

        self._queue(endpoint, times, oversized)

    def redirect_next(self, location: str, times: int = 1, *, endpoint: Endpoint = "jwks") -> None:
        """Answer ``302 Found`` to ``location`` the next ``times`` times.

        Para's API does not redirect; a client following this could be sent to
        keys that are not Para's.
        """
        answer = _Answer(302, b"", {"Location": location})
        self._queue(endpoint, times, lambda _request, _answer: answer.response())

    def set_latency(self, seconds: float, *, endpoint: Endpoint = "jwks") -> None:
        """Delay every answer from ``endpoint`` by ``seconds`` of real time.

        For timeout tests only, with small values: everything else uses the clock.
        """
        if seconds < 0:
            raise ValueError("latency must not be negative")
        self._latency[_check_endpoint(endpoint)] = seconds

    def down(self, endpoint: Endpoint = "jwks") -> None:
        """Answer 503 to every request to ``endpoint`` until ``up``; queued faults wait."""
        self._down.add(_check_endpoint(endpoint))

    def up(self, endpoint: Endpoint = "jwks") -> None:
        """End an outage started by ``down``."""
        self._down.discard(_check_endpoint(endpoint))

    def _queue(self, endpoint: Endpoint, times: int, fault: _Fault) -> None:
        _check_times(times)
        self._faults[_check_endpoint(endpoint)].extend([fault] * times)

    # --- counters and logs ---------------------------------------------------------------

    @property
    def jwks_requests(self) -> int:
        """Requests that reached the JWKS endpoint, including faults and 304s."""
        return self._counts["jwks"]

    @property
    def sessions_requests(self) -> int:
        return self._counts["sessions"]

    @property
    def wallets_requests(self) -> int:
        return self._counts["wallets"]

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received since the start or ``reset_counters``, oldest first
        (a copy), including those to unknown paths."""
        return list(self._requests)

    def reset_counters(self) -> None:
        """Zero the counters and forget recorded requests (keys and faults stay)."""
        self._counts = dict.fromkeys(_ENDPOINTS, 0)
        self._requests.clear()

    # --- HTTP ----------------------------------------------------------------------------

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.read()
        self._requests.append(RecordedRequest(request.method, request.path, request.headers, body))
        return await handler(request)

    async def _serve(
        self,
        endpoint: Endpoint,
        request: web.Request,
        answer: Callable[[web.Request], Awaitable[_Answer]],
        finish: Callable[[web.Request, _Answer], web.StreamResponse] | None = None,
    ) -> web.StreamResponse:
        # Order: latency applies to everything, an outage hides queued faults
        # (they wait for up()), and a fault replaces the real answer.
        self._counts[endpoint] += 1
        if self._latency[endpoint]:
            await asyncio.sleep(self._latency[endpoint])
        if endpoint in self._down:
            return _message(503, "mock outage").response()
        real = await answer(request)
        faults = self._faults[endpoint]
        if faults:
            return faults.popleft()(request, real)
        return real.response() if finish is None else finish(request, real)

    async def _handle_jwks(self, request: web.Request) -> web.StreamResponse:
        return await self._serve("jwks", request, self._jwks_answer, self._revalidate)

    async def _handle_sessions(self, request: web.Request) -> web.StreamResponse:
        return await self._serve("sessions", request, self._sessions_answer)

    async def _handle_wallets(self, request: web.Request) -> web.StreamResponse:
        return await self._serve("wallets", request, self._wallets_answer)

    async def _jwks_answer(self, _request: web.Request) -> _Answer:
        body = self._jwks_override
        if body is None:
            body = _json_bytes(self.jwks())
        headers = {"Content-Type": "application/json", **self._cache_headers(body)}
        return _Answer(200, body, headers)

    def _cache_headers(self, body: bytes) -> dict[str, str]:
        headers = {"ETag": '"' + hashlib.sha256(body).hexdigest()[:32] + '"'}
        if self.cache_control is not None:
            headers["Cache-Control"] = self.cache_control
        if self.expires is not None:
            headers["Expires"] = self.expires
        if self.age is not None:
            headers["Age"] = str(self.age)
        headers["Last-Modified"] = (
            format_http_date(self._jwks_changed_at)
            if self.last_modified is None
            else self.last_modified
        )
        return headers

    def _revalidate(self, request: web.Request, answer: _Answer) -> web.StreamResponse:
        """304 if the client's copy is current (RFC 9110 §13.2.2), else the answer."""
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match is not None:
            fresh = _etag_matches(if_none_match, answer.headers["ETag"])
        else:
            fresh = self._unmodified_since(request.headers.get("If-Modified-Since"), answer)
        if not fresh:
            return answer.response()
        # A 304 repeats the caching headers, so the client can renew its copy's TTL.
        kept = {name: v for name, v in answer.headers.items() if name != "Content-Type"}
        return web.Response(status=304, headers=kept)

    @staticmethod
    def _unmodified_since(if_modified_since: str | None, answer: _Answer) -> bool:
        if if_modified_since is None:
            return False
        since = parse_http_date(if_modified_since)
        modified = parse_http_date(answer.headers["Last-Modified"])
        return since is not None and modified is not None and math.floor(modified) <= since

    async def _sessions_answer(self, request: web.Request) -> _Answer:
        try:
            self._check_api_key(request)
            token = await _string_field(request, "verificationToken")
        except _Refused as refused:
            return refused.answer
        session = self._sessions.get(token)
        if session is None or not session.is_live(self._clock()):
            return _message(403, "session expired or verification token invalid")
        return _json_answer(200, session.as_json())

    async def _wallets_answer(self, request: web.Request) -> _Answer:
        try:
            self._check_api_key(request)
            address = await _string_field(request, "address")
        except _Refused as refused:
            return refused.answer
        wallet_id = self._wallets.get(address)
        if wallet_id is None:
            return _message(404, "wallet not found")
        return _json_answer(200, {"walletId": wallet_id})

    def _check_api_key(self, request: web.Request) -> None:
        sent = request.headers.get("x-external-api-key", "")
        # Constant-time, as a real server must; the key is never echoed back.
        if not hmac.compare_digest(sent.encode(), self._secret_api_key.encode()):
            raise _Refused(_message(401, "missing or invalid x-external-api-key"))


async def _string_field(request: web.Request, name: str) -> str:
    """``body[name]`` of a JSON object body, or a 400 refusal naming what is wrong."""
    if request.content_type != "application/json":
        raise _Refused(_message(400, "Content-Type must be application/json"))
    try:
        body = json.loads(await request.read())
    except ValueError:
        raise _Refused(_message(400, "the body is not valid JSON")) from None
    value = body.get(name) if isinstance(body, dict) else None
    if not isinstance(value, str):
        raise _Refused(_message(400, f"the body must be a JSON object with a string {name!r}"))
    return value
