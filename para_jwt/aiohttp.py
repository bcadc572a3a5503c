"""Protect aiohttp routes with Para: ``setup``, ``@para_required``, ``para_middleware``.

::

    from para_jwt.aiohttp import get_claims, para_required, setup

    app = web.Application()
    setup(app, api_key_id="8c67b747-...", environment="prod")

    @routes.get("/me")
    @para_required
    async def me(request: web.Request) -> web.Response:
        return web.json_response({"user": get_claims(request).user_id})

The token is read from ``Authorization: Bearer <token>`` (or a ``token_getter``).
Refusals follow RFC 6750 §3, with a JSON body ``{"error", "error_description"}``,
byte for byte as in the other adapters:

=========================================  ======  ==========================  ====================
when                                       status  ``error``                   headers
=========================================  ======  ==========================  ====================
no token, or another scheme (``Basic``)    401     ``missing_token``           ``WWW-Authenticate``
``Authorization: Bearer`` malformed        400     ``invalid_request``         ``WWW-Authenticate``
``InvalidTokenError`` (expired, ...)       401     ``invalid_token``           ``WWW-Authenticate``
a route requirement not met                403     ``insufficient_scope``      ``WWW-Authenticate``
``JWKSError``: Para's keys unreachable     503     ``temporarily_unavailable`` ``Retry-After``
=========================================  ======  ==========================  ====================

``para_session_required`` answers the same way for its verification token (scheme
``ParaVerificationToken``), 413 for a JSON body over its ``max_body_size``, and
500 / 502 / 503 when Para refuses our secret key, answers unexpectedly, or is down.
Each refusal is logged as one line on the ``para_jwt.aiohttp`` logger. A token, a
verification token or a secret key never appears in an answer or a log record.

Not re-exported from ``para_jwt``: the core does not import ``aiohttp.web``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, Final, overload

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ._aiohttp_base import (
    ANONYMOUS_KEY,
    API_CLIENT_KEY,
    CLAIMS_KEY,
    CONFIG_KEY,
    SESSION_KEY,
    VERIFIER_KEY,
    Config,
    Decorator,
    ErrorHandler,
    P,
    R,
    TokenGetter,
    config_of,
    decorator,
    default_error_handler,
)
from ._aiohttp_session import get_session, para_session_required
from ._http import (
    Absent,
    Gate,
    Refused,
    Rejection,
    RejectionError,
    verify_bearer,
    verify_token,
)
from ._http_options import (
    Paths,
    check_callable,
    check_realm,
    refuse_unknown,
)
from ._requirements import Requirements
from .api import ParaAPI
from .claims import AuthType, ParaClaims, WalletType
from .errors import ConfigurationError
from .verifier import ParaVerifier

__all__ = [
    "API_CLIENT_KEY",
    "CLAIMS_KEY",
    "SESSION_KEY",
    "VERIFIER_KEY",
    "ErrorHandler",
    "Rejection",
    "RejectionError",
    "TokenGetter",
    "default_error_handler",
    "get_claims",
    "get_claims_or_none",
    "get_session",
    "para_middleware",
    "para_required",
    "para_session_required",
    "setup",
]

# --- setup --------------------------------------------------------------------------


def setup(
    app: web.Application,
    verifier: ParaVerifier | None = None,
    *,
    api: ParaAPI | None = None,
    secret_api_key: str | None = None,
    api_options: Mapping[str, Any] | None = None,
    realm: str = "para",
    token_getter: TokenGetter | None = None,
    error_handler: ErrorHandler | None = None,
    **verifier_options: Any,
) -> None:
    """Make Para available to ``app``'s handlers. Call it once, before the app starts.

    What ``setup`` builds, it builds now (so a wrong setting raises
    ``ConfigurationError`` here, not at the first request) and closes with the app
    (``app.cleanup_ctx``). Neither opens a connection before it is first used,
    inside the running app.

    Args:
        app: The application.
        verifier: A ``ParaVerifier`` (yours to close); or leave it out and pass its
            settings as ``verifier_options``.
        api: The ``ParaAPI`` ``para_session_required`` calls (yours to close).
        secret_api_key: Or the secret key to build one with.
        api_options: More ``ParaAPI`` options (``base_url``, ``timeout``,
            ``retries``...) with ``secret_api_key``. The verifier's
            ``environment``, if any, is passed on unless set here.
        realm: The ``WWW-Authenticate`` realm. ``"para"`` says whose token is wanted.
        token_getter: An app-wide token source instead of the ``Authorization``
            header (a cookie, say): ``request -> str | None``, sync or async.
            Default ``None``: ``Authorization: Bearer <token>`` only.
        error_handler: Builds the error answers from a ``Rejection``, sync or async.
            Default: ``default_error_handler`` (RFC 6750 JSON, as every adapter).
        **verifier_options: ``ParaVerifier``'s settings (``api_key_id=...``,
            ``environment="prod"``...), to build the verifier here.

    Raises:
        ConfigurationError: For a second call, a wrong type, or conflicting options.
    """
    if CONFIG_KEY in app:
        raise ConfigurationError(
            "para_jwt.aiohttp.setup() was already called for this app: call it once, "
            "with the verifier and the ParaAPI together"
        )
    if verifier is not None and not isinstance(verifier, ParaVerifier):
        raise ConfigurationError(
            f"verifier must be a ParaVerifier, not {type(verifier).__name__}; to build one "
            "here, pass its settings as keywords: setup(app, api_key_id=..., environment=...)"
        )
    if verifier is not None and verifier_options:
        raise ConfigurationError(
            "pass either a ParaVerifier or its settings, not both (got "
            f"{', '.join(sorted(verifier_options))} with a verifier)"
        )
    if api is not None and not isinstance(api, ParaAPI):
        raise ConfigurationError(f"api must be a ParaAPI, not {type(api).__name__}")
    if api is not None and secret_api_key is not None:
        raise ConfigurationError("pass either api=ParaAPI(...) or secret_api_key=..., not both")
    if api_options is not None and secret_api_key is None:
        raise ConfigurationError("api_options only apply with secret_api_key=...")
    gate = Gate(check_realm(realm))
    check_callable("token_getter", token_getter)
    check_callable("error_handler", error_handler)

    owned: list[ParaVerifier | ParaAPI] = []
    if verifier is None and verifier_options:
        verifier = ParaVerifier(**verifier_options)
        owned.append(verifier)
    if secret_api_key is not None:
        options = dict(api_options or {})
        if "environment" in verifier_options:
            options.setdefault("environment", verifier_options["environment"])
        api = ParaAPI(secret_api_key, **options)
        owned.append(api)
    if verifier is None and api is None:
        raise ConfigurationError(
            "setup() needs a verifier: setup(app, api_key_id=..., environment='prod'), or "
            "setup(app, ParaVerifier(...)); and/or a ParaAPI for para_session_required "
            "(api=... or secret_api_key=...)"
        )

    if verifier is not None:
        app[VERIFIER_KEY] = verifier
    if api is not None:
        app[API_CLIENT_KEY] = api
    app[CONFIG_KEY] = Config(
        verifier, api, gate, token_getter, error_handler or default_error_handler
    )
    if owned:

        async def close_owned(_app: web.Application) -> AsyncIterator[None]:
            # Every one is closed even if another's close() fails.
            async with contextlib.AsyncExitStack() as stack:
                for resource in owned:
                    stack.push_async_callback(resource.close)
                yield

        app.cleanup_ctx.append(close_owned)


# --- reading the results ------------------------------------------------------------


def get_claims(request: web.Request) -> ParaClaims:
    """The verified claims of the request's user.

    Raises ``ConfigurationError`` if no ``para_required`` / ``para_middleware``
    authenticated the request, or if it was let in anonymously (use
    ``get_claims_or_none`` on optional routes).
    """
    claims = get_claims_or_none(request)
    if claims is None:
        raise ConfigurationError(
            "get_claims(): this request was let in without a token (optional "
            "authentication); use get_claims_or_none() on routes that allow it"
        )
    return claims


def get_claims_or_none(request: web.Request) -> ParaClaims | None:
    """The verified claims, or ``None`` when optional authentication found no token.

    Raises ``ConfigurationError`` if the request was not authenticated at all
    (an excluded path, or a handler without ``para_required``).
    """
    if CLAIMS_KEY in request:
        return request[CLAIMS_KEY]
    if ANONYMOUS_KEY not in request:
        raise ConfigurationError(
            "no Para authentication ran for this request: decorate the handler with "
            "@para_required, or add para_middleware() and check the path is not excluded"
        )
    return None


# --- authentication -----------------------------------------------------------------


async def _token(request: web.Request, token_getter: TokenGetter) -> str | None:
    token = token_getter(request)
    if inspect.isawaitable(token):
        token = await token
    if token is not None and not isinstance(token, str):
        raise TypeError(f"token_getter returned {type(token).__name__}, not str | None")
    return token or None


async def _verify(
    request: web.Request,
    config: Config,
    user: str,
    token_getter: TokenGetter | None,
    optional: bool,
) -> ParaClaims | None:
    """The claims of the request's token, ``None`` if it has none, or raise ``Refused``."""
    verifier = config.verifier
    if verifier is None:
        raise ConfigurationError(
            f"{user} needs a verifier, but para_jwt.aiohttp.setup() was given none: call "
            "setup(app, api_key_id=..., environment=...) or setup(app, ParaVerifier(...))"
        )
    token_getter = token_getter or config.token_getter
    if token_getter is None:
        values = request.headers.getall("Authorization", ())
        return await verify_bearer(config.gate, verifier, values, optional=optional)
    token = await _token(request, token_getter)
    if token is None:
        if optional:
            return None
        raise Refused(config.gate.absent(Absent.NO_HEADER))
    return await verify_token(config.gate, verifier, token, from_header=False)


async def _authenticate(
    request: web.Request,
    *,
    user: str,
    requirements: Requirements,
    token_getter: TokenGetter | None,
    optional: bool,
) -> None:
    """Store the request's verified claims (``CLAIMS_KEY``) or raise the rejection."""
    config = config_of(request, user)
    try:
        # The middleware may have verified the token already; a decorator on the
        # same route then only adds its requirements.
        claims: ParaClaims | None = request.get(CLAIMS_KEY)
        if claims is None:
            claims = await _verify(request, config, user, token_getter, optional)
        if claims is None:
            request[ANONYMOUS_KEY] = True
            return
        requirements.enforce(config.gate, claims)
    except Refused as refused:
        rejection = refused.rejection
    else:
        request[CLAIMS_KEY] = claims
        return
    # Raised here, not in the except block: the Refused, whose frames hold the
    # Authorization header, must not be chained to what the app sees.
    raise await config.reject(request, rejection)


_REQUIRED_OPTIONS: Final = ("auth_types", "wallet_types", "require_wallet", "token_getter")


@overload
def para_required(handler: Callable[P, Awaitable[R]], /) -> Callable[P, Awaitable[R]]: ...


@overload
def para_required(
    *,
    auth_types: Iterable[AuthType | str] | None = None,
    wallet_types: Iterable[WalletType | str] | None = None,
    require_wallet: bool = False,
    token_getter: TokenGetter | None = None,
) -> Decorator: ...


def para_required(
    handler: Any = None,
    /,
    *,
    auth_types: Iterable[AuthType | str] | None = None,
    wallet_types: Iterable[WalletType | str] | None = None,
    require_wallet: bool = False,
    token_getter: TokenGetter | None = None,
    **unknown: object,
) -> Any:
    """Refuse requests without a valid Para token; ``get_claims(request)`` in the handler.

    Bare (``@para_required``) or with options (``@para_required(auth_types={"email"})``);
    on function handlers and on ``web.View`` methods. The refusals are in the
    module docstring.

    Args:
        handler: The handler, when used bare.
        auth_types: Accept only users who signed in this way, e.g.
            ``{"email", "phone"}``. Default ``None``: any way.
        wallet_types: Accept only users with a Para-custodied wallet of one of these
            chains, e.g. ``{"EVM"}``. Connected (external) wallets are not proof of
            custody, so they do not count. Default ``None``: any chain, or none.
        require_wallet: Accept only users with at least one Para-custodied wallet.
        token_getter: This route's token source, instead of ``setup()``'s.
        **unknown: Refused, with the nearest option's name.

    Returns:
        The guarded handler, or a decorator when called with options.

    Raises:
        ConfigurationError: At decoration time, for an unknown option or value (a
            typo in ``auth_types`` would otherwise refuse everyone).
    """
    refuse_unknown("para_required", unknown, _REQUIRED_OPTIONS)
    requirements = Requirements.build(auth_types, wallet_types, require_wallet)
    check_callable("token_getter", token_getter)

    check = functools.partial(
        _authenticate,
        user="para_required",
        requirements=requirements,
        token_getter=token_getter,
        optional=False,
    )
    return decorator("para_required", "auth_types={'email'}", check, handler)


def para_middleware(
    *,
    exclude: Iterable[str] = (),
    exclude_if: Callable[[web.Request], bool] | None = None,
    optional: Iterable[str] = (),
    auth_types: Iterable[AuthType | str] | None = None,
    wallet_types: Iterable[WalletType | str] | None = None,
    require_wallet: bool = False,
    token_getter: TokenGetter | None = None,
) -> Middleware:
    """``para_required`` for every route of the app, except the excluded ones.

    ``web.Application(middlewares=[para_middleware(exclude=["/health"])])``. A
    handler may still carry ``@para_required(...)`` to add requirements; the
    token is verified once.

    Args:
        exclude: Paths served without authentication: exact (``"/health"``) or
            prefixes ending in ``*`` (``"/public/*"``), matched against the path as
            sent (percent-encoded). Default: none.
        exclude_if: The same, decided per request: return ``True`` to let the
            request through without authentication (e.g. CORS preflights).
        optional: Paths (same patterns) open to anonymous users, with claims when a
            valid token is sent: ``get_claims_or_none(request)``. A token that is
            sent but invalid is still refused. Default: none.
        auth_types: As for ``para_required``, on every authenticated request.
        wallet_types: As for ``para_required``.
        require_wallet: As for ``para_required``.
        token_getter: Token source instead of ``setup()``'s.

    Returns:
        The middleware.

    Raises:
        ConfigurationError: For a bad pattern or option.
    """
    excluded = Paths("exclude", exclude)
    anonymous_allowed = Paths("optional", optional)
    check_callable("exclude_if", exclude_if)
    requirements = Requirements.build(auth_types, wallet_types, require_wallet)
    check_callable("token_getter", token_getter)

    @web.middleware
    async def para_authentication(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.rel_url.raw_path
        if excluded(path) or (exclude_if is not None and exclude_if(request)):
            return await handler(request)
        # In optional mode a token that is present but invalid is still a 401, not
        # an anonymous request: the client believes it is signed in, and serving it
        # as nobody would hide its expired session (and let it act anonymously,
        # e.g. post as a guest) instead of telling it to sign in again.
        await _authenticate(
            request,
            user="para_middleware",
            requirements=requirements,
            token_getter=token_getter,
            optional=anonymous_allowed(path),
        )
        return await handler(request)

    return para_authentication
