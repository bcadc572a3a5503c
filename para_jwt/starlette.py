"""Protect a Starlette (or any ASGI) app with Para: ``ParaMiddleware``, ``get_claims``.

::

    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from para_jwt.starlette import ParaMiddleware, get_claims

    app = Starlette(
        routes=[...],
        middleware=[Middleware(ParaMiddleware, verifier=verifier, exclude=["/health"])],
    )

A pure ASGI middleware: HTTP requests are refused as ``para_jwt.aiohttp`` refuses
them (same status, ``WWW-Authenticate``, ``Retry-After`` and JSON body); a
WebSocket connection is authenticated at its handshake and, when refused, closed
with code 1008 (policy violation) before it is accepted. Each refusal is logged as
one line on the ``para_jwt.starlette`` logger, never with the token.

Needs the ``starlette`` extra: ``pip install 'para-jwt[starlette]'``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Final
from urllib.parse import quote

try:
    from starlette.requests import HTTPConnection, Request
    from starlette.types import ASGIApp, Receive, Scope, Send
    from starlette.websockets import WebSocket
except ImportError as exc:  # pragma: no cover - tested in a subprocess
    raise ImportError(
        "para_jwt.starlette needs Starlette: pip install 'para-jwt[starlette]'"
    ) from exc

from ._http import (
    Gate,
    Refused,
    Rejection,
    log_rejection,
    verify_bearer,
)
from ._http_options import (
    Paths,
    check_callable,
    check_realm,
)
from ._requirements import Requirements
from .claims import AuthType, ParaClaims, WalletType
from .errors import ConfigurationError
from .verifier import ParaVerifier

__all__ = ["CLAIMS_SCOPE_KEY", "ParaMiddleware", "get_claims", "get_claims_or_none"]

logger = logging.getLogger("para_jwt.starlette")

#: Where ``ParaMiddleware`` leaves the verified claims in the ASGI scope (``None``
#: for an anonymous request on an ``optional`` path).
CLAIMS_SCOPE_KEY: Final = "para_jwt.claims"

# RFC 6455 §7.4.1: "a message that violates its policy".
_POLICY_VIOLATION: Final = 1008


class ParaMiddleware:
    """Refuse HTTP requests and WebSocket handshakes without a valid Para token.

    The handlers read the claims with ``get_claims(request)`` (or
    ``get_claims_or_none`` on optional paths). Paths are matched as in
    ``para_jwt.aiohttp.para_middleware``: against the path as sent, still
    percent-encoded, so an encoded variant of an excluded path stays protected.
    The verifier is not closed here: close it in the app's lifespan.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: ParaVerifier,
        exclude: Iterable[str] = (),
        exclude_if: Callable[[HTTPConnection], bool] | None = None,
        optional: Iterable[str] = (),
        auth_types: Iterable[AuthType | str] | None = None,
        wallet_types: Iterable[WalletType | str] | None = None,
        require_wallet: bool = False,
        realm: str = "para",
    ) -> None:
        """Wrap ``app``.

        Args:
            app: The ASGI app to protect.
            verifier: Verifies the tokens; yours to close.
            exclude: Paths served without authentication: exact (``"/health"``) or
                prefixes ending in ``*`` (``"/public/*"``). Default: none.
            exclude_if: The same, decided per request: given the ``Request`` (or the
                ``WebSocket``), return ``True`` to let it through without
                authentication (e.g. CORS preflights).
            optional: Paths (same patterns) open to anonymous users, with claims when
                a valid token is sent. A token that is sent but invalid is still
                refused. Default: none.
            auth_types: Accept only users who signed in this way, e.g.
                ``{"email", "phone"}``. Default ``None``: any way.
            wallet_types: Accept only users with a Para-custodied wallet of one of
                these chains, e.g. ``{"EVM"}``. Default ``None``: any chain, or none.
            require_wallet: Accept only users with a Para-custodied wallet.
            realm: The ``WWW-Authenticate`` realm. Default ``"para"``.

        Raises:
            ConfigurationError: For a missing verifier or a bad option.
        """
        if not isinstance(verifier, ParaVerifier):
            raise ConfigurationError(
                f"ParaMiddleware(verifier=...) must be a ParaVerifier, not "
                f"{type(verifier).__name__}"
            )
        check_callable("exclude_if", exclude_if)
        self.app = app
        self._verifier = verifier
        self._excluded = Paths("exclude", exclude)
        self._exclude_if = exclude_if
        self._optional = Paths("optional", optional)
        self._requirements = Requirements.build(auth_types, wallet_types, require_wallet)
        self._gate = Gate(check_realm(realm))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Authenticate an HTTP request or WebSocket handshake, then pass it on."""
        kind = scope["type"]
        if kind != "http" and kind != "websocket":  # the lifespan, say
            await self.app(scope, receive, send)
            return
        path = raw_path(scope)
        if self._excluded(path) or (
            self._exclude_if is not None and self._exclude_if(_connection(scope, receive))
        ):
            await self.app(scope, receive, send)
            return
        try:
            claims = await verify_bearer(
                self._gate,
                self._verifier,
                authorization(scope),
                optional=self._optional(path),
            )
            if claims is not None:
                self._requirements.enforce(self._gate, claims)
        except Refused as refused:
            log_rejection(logger, scope.get("method", "GET"), path, refused.rejection)
            if kind == "websocket":
                await _close(receive, send, refused.rejection)
            else:
                await respond(send, refused.rejection)
            return
        scope[CLAIMS_SCOPE_KEY] = claims
        await self.app(scope, receive, send)


def _connection(scope: Scope, receive: Receive) -> HTTPConnection:
    return (
        Request(scope, receive) if scope["type"] == "http" else WebSocket(scope, receive, _no_send)
    )


async def _no_send(message: Any) -> None:  # pragma: no cover - exclude_if only reads
    raise RuntimeError("exclude_if must not answer the request")


def authorization(scope: Scope) -> list[str]:
    """The values of the request's ``Authorization`` headers, in order."""
    # ASGI servers lower-case header names.
    return [value.decode("latin-1") for name, value in scope["headers"] if name == b"authorization"]


def raw_path(scope: Scope) -> str:
    """The path as the client sent it, percent-encoded, without the query string."""
    raw: bytes | None = scope.get("raw_path")
    if raw is None:
        return quote(scope.get("root_path", "") + scope["path"])
    # Some servers keep the query string in raw_path.
    return raw.partition(b"?")[0].decode("latin-1")


async def respond(send: Send, rejection: Rejection) -> None:
    """Send ``rejection`` as the HTTP answer."""
    body = rejection.body
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    headers += [
        (name.lower().encode(), value.encode()) for name, value in rejection.headers.items()
    ]
    await send({"type": "http.response.start", "status": rejection.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _close(receive: Receive, send: Send, rejection: Rejection) -> None:
    # The server answers a close before accept with 403; the reason is one of the
    # fixed sentences of _http, never the token.
    message = await receive()
    if message["type"] == "websocket.connect":
        await send(
            {"type": "websocket.close", "code": _POLICY_VIOLATION, "reason": rejection.description}
        )


def get_claims(request: HTTPConnection) -> ParaClaims:
    """The verified claims of the request's user.

    Args:
        request: A Starlette ``Request`` or ``WebSocket``.

    Returns:
        The claims ``ParaMiddleware`` verified.

    Raises:
        ConfigurationError: If ``ParaMiddleware`` did not authenticate the request,
            or let it in anonymously (use ``get_claims_or_none`` on optional paths).
    """
    claims = get_claims_or_none(request)
    if claims is None:
        raise ConfigurationError(
            "get_claims(): this request was let in without a token (optional "
            "authentication); use get_claims_or_none() on paths that allow it"
        )
    return claims


def get_claims_or_none(request: HTTPConnection) -> ParaClaims | None:
    """The verified claims, or ``None`` when an optional path was visited anonymously.

    Args:
        request: A Starlette ``Request`` or ``WebSocket``.

    Returns:
        The claims, or ``None``.

    Raises:
        ConfigurationError: If ``ParaMiddleware`` did not authenticate the request
            (no middleware, or an excluded path).
    """
    try:
        claims: ParaClaims | None = request.scope[CLAIMS_SCOPE_KEY]
    except KeyError:
        raise ConfigurationError(
            "no Para authentication ran for this request: add ParaMiddleware to the app "
            "and check the path is not excluded"
        ) from None
    return claims
