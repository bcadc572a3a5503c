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
Refusals follow RFC 6750 §3, with a JSON body ``{"error", "error_description"}``:

=========================================  ======  ==========================  ====================
when                                       status  ``error``                   headers
=========================================  ======  ==========================  ====================
no token                                   401     ``missing_token``           ``WWW-Authenticate``
Authorization not ``Bearer <one token>``   400     ``invalid_request``         ``WWW-Authenticate``
``InvalidTokenError`` (expired, ...)       401     ``invalid_token``           ``WWW-Authenticate``
a route requirement not met                403     ``insufficient_scope``      ``WWW-Authenticate``
``JWKSError``: Para's keys unreachable     503     ``temporarily_unavailable`` ``Retry-After``
=========================================  ======  ==========================  ====================

``para_session_required`` answers the same way for its verification token (scheme
``ParaVerificationToken``), and 500 / 502 / 503 when Para refuses our secret key,
answers unexpectedly, or is down. Each refusal is logged as one line on the
``para_jwt.aiohttp`` logger. A token, a verification token or a secret key never
appears in an answer or a log record.

Not re-exported from ``para_jwt``: the core does not import ``aiohttp.web``.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import inspect
import json
import logging
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, ParamSpec, Protocol, Self, TypeVar, overload
from urllib.parse import quote

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from .api import ParaAPI, SessionInfo
from .claims import AuthType, ParaClaims, WalletType
from .errors import (
    ConfigurationError,
    InvalidTokenError,
    InvalidVerificationTokenError,
    JWKSError,
    MalformedTokenError,
    ParaAPIError,
    ParaAuthenticationError,
    ParaJWTError,
    ParaUnavailableError,
    SessionExpiredError,
)
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

logger = logging.getLogger("para_jwt.aiohttp")

_P = ParamSpec("_P")
_R = TypeVar("_R", bound=web.StreamResponse)

#: Where the token comes from when not ``Authorization: Bearer``: a cookie, another
#: header. Sync or async; ``None`` (or ``""``) means the request carries none.
TokenGetter = Callable[[web.Request], str | Awaitable[str | None] | None]

#: Turns a rejection into the exception aiohttp answers with (sync or async). The
#: default is ``default_error_handler``; see ``setup(error_handler=...)``.
ErrorHandler = Callable[
    [web.Request, "Rejection"], web.HTTPException | Awaitable[web.HTTPException]
]

# --- typed storage ------------------------------------------------------------------

#: The verifier ``para_required`` and ``para_middleware`` use: ``app[VERIFIER_KEY]``.
VERIFIER_KEY: Final = web.AppKey("para_jwt.verifier", ParaVerifier)
#: The ``ParaAPI`` client ``para_session_required`` uses: ``app[API_CLIENT_KEY]``.
API_CLIENT_KEY: Final = web.AppKey("para_jwt.api_client", ParaAPI)

# Request keys: web.RequestKey exists from aiohttp 3.14, which also starts warning
# about string keys; older versions only have string keys. Type checkers see the
# typed keys either way, and get_claims() / get_session() are typed on every version.
if TYPE_CHECKING or hasattr(web, "RequestKey"):
    #: The verified claims, set by ``para_required`` / ``para_middleware``.
    CLAIMS_KEY: Final = web.RequestKey("para_jwt.claims", ParaClaims)
    #: The ``SessionInfo``, set by ``para_session_required``.
    SESSION_KEY: Final = web.RequestKey("para_jwt.session", SessionInfo)
    # Set when optional authentication found no token: the request *was* checked.
    _ANONYMOUS_KEY: Final = web.RequestKey("para_jwt.anonymous", bool)
else:  # pragma: no cover - aiohttp < 3.14
    CLAIMS_KEY: Final = "para_jwt.claims"
    SESSION_KEY: Final = "para_jwt.session"
    _ANONYMOUS_KEY: Final = "para_jwt.anonymous"


# --- rejections ---------------------------------------------------------------------


#: The ``error`` member of a rejection's JSON body. RFC 6750 §3.1 gives a request
#: without credentials no code: ``missing_token`` names that case. RFC 6749
#: §4.1.2.1 gives ``temporarily_unavailable`` and ``server_error``.
RejectionError = Literal[
    "missing_token",
    "invalid_request",
    "invalid_token",
    "insufficient_scope",
    "temporarily_unavailable",
    "server_error",
]


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a request was refused, handed to the ``error_handler``.

    Nothing in it comes from the request: ``description`` is one of this module's
    fixed sentences, so it is safe to show to the caller.
    """

    #: The HTTP status: 400, 401, 403, 500, 502 or 503.
    status: int
    #: The JSON body's ``error``: see ``RejectionError``.
    error: RejectionError
    #: One short sentence for the caller, e.g. "The token has expired".
    description: str
    #: A short stable code for logs and handlers: ``InvalidTokenError.reason``
    #: (``expired``, ``invalid_signature``...), ``no_token``, ``auth_type``...
    reason: str
    #: Headers the response must carry: ``WWW-Authenticate``, ``Retry-After``.
    headers: Mapping[str, str] = field(default_factory=dict)
    #: The para_jwt exception behind it, if any (its message holds no secret).
    cause: ParaJWTError | None = field(default=None, repr=False)


# aiohttp's exception class for each status a Rejection can have.
_HTTP_EXCEPTIONS: Final[Mapping[int, type[web.HTTPException]]] = {
    400: web.HTTPBadRequest,
    401: web.HTTPUnauthorized,
    403: web.HTTPForbidden,
    500: web.HTTPInternalServerError,
    502: web.HTTPBadGateway,
    503: web.HTTPServiceUnavailable,
}


def default_error_handler(request: web.Request, rejection: Rejection) -> web.HTTPException:
    """The JSON answer: ``{"error": ..., "error_description": ...}`` with the
    rejection's status and headers. Call it from your own handler to keep it for
    some routes."""
    body = {"error": rejection.error, "error_description": rejection.description}
    return _HTTP_EXCEPTIONS[rejection.status](
        text=json.dumps(body), content_type="application/json", headers=rejection.headers
    )


# Short sentences for InvalidTokenError.reason. Fixed text, never the exception's
# message: that names claims and keys, which only the server's logs need.
_INVALID_TOKEN_DESCRIPTIONS: Final[Mapping[str, str]] = {
    "malformed": "The token is malformed",
    "unsupported_algorithm": "The token's signing algorithm is not accepted",
    "unknown_key": "The token was signed with an unknown key",
    "invalid_signature": "The token's signature is invalid",
    "expired": "The token has expired",
    "not_yet_valid": "The token is not valid yet",
    "invalid_audience": "The token was issued for another application",
    "invalid_claims": "The token's claims are invalid",
}

# RFC 6750 §3: a b64token after "Bearer" and one or more spaces.
# RFC 6750 §2.1's b64token. Matched case-sensitively on the token alone: with
# re.IGNORECASE over the whole header it cost 9 µs a request on a Para token.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# A Retry-After when the error does not know when to retry: long enough not to
# hammer a recovering Para, short enough that users barely notice.
_DEFAULT_RETRY_AFTER: Final = 5
# Not RFC 6750's Bearer: a verification token is sent in its own header.
_SESSION_SCHEME: Final = "ParaVerificationToken"
_VERIFICATION_TOKEN_HEADER: Final = "X-Para-Verification-Token"  # noqa: S105


# Rejections are the caller's business (INFO), except those that are ours: a 500
# (our configuration is wrong: someone must act) and a 502 (Para misbehaves).
_LOG_LEVELS: Final[Mapping[int, int]] = {500: logging.ERROR, 502: logging.WARNING}


@dataclass(frozen=True, slots=True)
class _Config:
    # The verifier and API client travel here too, so a request looks up one key:
    # every request.config_dict access rebuilds the chain of (sub-)apps.
    verifier: ParaVerifier | None
    api: ParaAPI | None
    realm: str
    token_getter: TokenGetter | None
    error_handler: ErrorHandler

    def refuse(
        self,
        status: int,
        error: RejectionError,
        description: str,
        reason: str,
        cause: ParaJWTError | None = None,
        *,
        scheme: str = "Bearer",
    ) -> Rejection:
        """A rejection that challenges the caller (``WWW-Authenticate``, RFC 6750 §3)."""
        challenge = f'{scheme} realm="{self.realm}"'
        # Without credentials, no error code (§3.1): there was nothing to judge.
        if error != "missing_token":
            challenge += f', error="{error}", error_description="{description}"'
        return Rejection(
            status, error, description, reason, {"WWW-Authenticate": challenge}, cause
        )

    async def reject(self, request: web.Request, rejection: Rejection) -> web.HTTPException:
        """Log the rejection and return the exception to raise for it."""
        # One line, never the token. The path without the query string, which may
        # hold secrets; raw (percent-encoded), so a decoded newline cannot forge lines.
        logger.log(
            _LOG_LEVELS.get(rejection.status, logging.INFO),
            "%s %s: %d %s (%s)",
            request.method,
            request.rel_url.raw_path,
            rejection.status,
            rejection.error,
            rejection.reason,
        )
        answer = self.error_handler(request, rejection)
        if inspect.isawaitable(answer):
            answer = await answer
        return answer

    def token_rejection(self, exc: InvalidTokenError | JWKSError) -> Rejection:
        if isinstance(exc, JWKSError):
            return _unavailable(exc.retry_after, "jwks_unavailable", exc)
        description = _INVALID_TOKEN_DESCRIPTIONS.get(exc.reason, "The token is invalid")
        return self.refuse(401, "invalid_token", description, exc.reason, exc)


_CONFIG_KEY: Final = web.AppKey("para_jwt.aiohttp_config", _Config)


def _unavailable(retry_after: float | None, reason: str, cause: ParaJWTError) -> Rejection:
    # Para's fault, not the caller's: no WWW-Authenticate, which would blame the token.
    seconds = _DEFAULT_RETRY_AFTER
    if retry_after is not None and math.isfinite(retry_after):
        seconds = max(1, math.ceil(retry_after))
    return Rejection(
        503,
        "temporarily_unavailable",
        "Para is unavailable; try again later",
        reason,
        {"Retry-After": str(seconds)},
        cause,
    )


# --- setup --------------------------------------------------------------------------


def setup(
    app: web.Application,
    verifier: ParaVerifier | None = None,
    *,
    # The ParaAPI para_session_required calls, or the secret key to make one with.
    api: ParaAPI | None = None,
    secret_api_key: str | None = None,
    # More ParaAPI options (base_url, timeout, retries...) when secret_api_key is
    # given. The verifier's `environment`, if any, is passed on unless set here.
    api_options: Mapping[str, Any] | None = None,
    # The WWW-Authenticate realm. "para" says whose token is wanted.
    realm: str = "para",
    # App-wide token source instead of the Authorization header (a cookie, say).
    # Default None: `Authorization: Bearer <token>` only.
    token_getter: TokenGetter | None = None,
    # Builds the error answers. Default: `default_error_handler` (RFC 6750 JSON).
    error_handler: ErrorHandler | None = None,
    **verifier_options: Any,
) -> None:
    """Make Para available to ``app``'s handlers. Call it once, before the app starts.

    Pass a ``ParaVerifier`` (yours to close), or the settings to build one with,
    as keyword arguments of ``ParaVerifier`` (``api_key_id=...``,
    ``environment="prod"``...). Likewise ``api=`` or ``secret_api_key=`` for
    ``para_session_required``. What ``setup`` builds, it builds now (so a wrong
    setting raises ``ConfigurationError`` here, not at the first request) and
    closes with the app (``app.cleanup_ctx``). Neither opens a connection
    before it is first used, inside the running app.
    """
    if _CONFIG_KEY in app:
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
    if not isinstance(realm, str) or not re.fullmatch(r"[ !#-\[\]-~]+", realm):
        raise ConfigurationError(
            "realm must be a non-empty string of printable ASCII without '\"' or '\\'"
        )
    _check_callable("token_getter", token_getter)
    _check_callable("error_handler", error_handler)

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
    app[_CONFIG_KEY] = _Config(
        verifier, api, realm, token_getter, error_handler or default_error_handler
    )
    if owned:

        async def close_owned(_app: web.Application) -> AsyncIterator[None]:
            # Every one is closed even if another's close() fails.
            async with contextlib.AsyncExitStack() as stack:
                for resource in owned:
                    stack.push_async_callback(resource.close)
                yield

        app.cleanup_ctx.append(close_owned)


def _check_callable(name: str, value: object) -> None:
    if value is not None and not callable(value):
        raise ConfigurationError(f"{name} must be callable, not {type(value).__name__}")


def _config(request: web.Request, user: str) -> _Config:
    # The handler's own app first (a dict lookup); then config_dict, so that a
    # setup() on a parent app covers its sub-apps (it rebuilds the app chain).
    config = request.app.get(_CONFIG_KEY) or request.config_dict.get(_CONFIG_KEY)
    if config is None:
        raise ConfigurationError(
            f"{user} is used on an app without Para: call para_jwt.aiohttp.setup(app, ...) "
            "before the app starts, with api_key_id=... and environment=... for "
            "para_required and para_middleware, secret_api_key=... for para_session_required"
        )
    return config


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
    if _ANONYMOUS_KEY not in request:
        raise ConfigurationError(
            "no Para authentication ran for this request: decorate the handler with "
            "@para_required, or add para_middleware() and check the path is not excluded"
        )
    return None


def get_session(request: web.Request) -> SessionInfo:
    """The ``SessionInfo`` that ``para_session_required`` obtained from Para."""
    if SESSION_KEY not in request:
        raise ConfigurationError(
            "get_session(): no Para session check ran for this request: decorate the "
            "handler with @para_session_required"
        )
    return request[SESSION_KEY]


# --- options ------------------------------------------------------------------------

_E = TypeVar("_E", AuthType, WalletType)


@dataclass(frozen=True, slots=True)
class _Requirements:
    # Only Para-custodied wallets (claims.wallets) count: connected wallets are not
    # proof of custody.
    auth_types: frozenset[AuthType] | None = None
    wallet_types: frozenset[WalletType] | None = None
    require_wallet: bool = False

    @classmethod
    def build(cls, auth_types: object, wallet_types: object, require_wallet: bool) -> Self:
        if type(require_wallet) is not bool:
            raise ConfigurationError(
                f"require_wallet must be True or False, not {type(require_wallet).__name__}"
            )
        return cls(
            _members("auth_types", auth_types, AuthType),
            _members("wallet_types", wallet_types, WalletType),
            require_wallet,
        )

    def unmet(self, claims: ParaClaims) -> tuple[str, str] | None:
        """(reason, description) of the first requirement ``claims`` fail, or None."""
        if self.auth_types is not None and claims.auth_type not in self.auth_types:
            names = " or ".join(sorted(self.auth_types))
            return "auth_type", f"This route requires signing in with {names}"
        if self.wallet_types is not None and not any(
            wallet.type in self.wallet_types for wallet in claims.wallets
        ):
            names = " or ".join(sorted(self.wallet_types))
            return "wallet_type", f"This route requires a Para {names} wallet"
        if self.require_wallet and not claims.wallets:
            return "no_wallet", "This route requires a Para wallet"
        return None


def _members(option: str, values: object, enum: type[_E]) -> frozenset[_E] | None:
    if values is None:
        return None
    known = ", ".join(member.value for member in enum)
    # A lone string is iterable too: {"e", "m", "a", "i", "l"} would lock everyone out.
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise ConfigurationError(
            f"{option} must be a collection of strings such as {{{next(iter(enum)).value!r}}}, "
            f"not {type(values).__name__}"
        )
    members: set[_E] = set()
    for value in values:
        member = enum(value) if isinstance(value, str) else None
        # The enums keep values they do not know (Para adds some); a route
        # requirement with one is far more likely a typo that would refuse everyone.
        if member is None or not member.is_known:
            raise ConfigurationError(f"{option}: {value!r} is not one of {known}")
        members.add(member)
    if not members:
        raise ConfigurationError(f"{option} is empty, so nobody could pass: leave it out instead")
    return frozenset(members)


def _refuse_unknown(user: str, unknown: Mapping[str, object], known: tuple[str, ...]) -> None:
    # Python would raise TypeError; this also says which option was meant.
    if unknown:
        name = next(iter(unknown))
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"the options are {', '.join(known)}"
        raise ConfigurationError(f"{user}() got an unknown option {name!r}: {hint}")


class _Paths:
    """``exact`` and ``prefix*`` path patterns, matched against the raw request path.

    The raw (still percent-encoded) path is what a client sent, so a pattern only
    matches the requests it spells out; an encoded variant (``/a%2Fb`` for
    ``/a/*``), which the router may resolve differently, is *not* matched and so
    stays protected.
    """

    def __init__(self, option: str, patterns: object) -> None:
        if isinstance(patterns, str | bytes) or not isinstance(patterns, Iterable):
            raise ConfigurationError(
                f"{option} must be a list of paths such as ['/health', '/public/*'], "
                f"not {type(patterns).__name__}"
            )
        exact: set[str] = set()
        prefixes: list[str] = []
        for pattern in patterns:
            if (
                not isinstance(pattern, str)
                or not pattern.startswith("/")
                or "*" in pattern[:-1]
                or "?" in pattern
            ):
                raise ConfigurationError(
                    f"{option}: {pattern!r} is not a path pattern: use an exact path "
                    "('/health') or a prefix ending in '*' ('/public/*'), without a query"
                )
            if pattern.endswith("*"):
                prefixes.append(_quote_path(pattern[:-1]))
            else:
                exact.add(_quote_path(pattern))
        self._exact = frozenset(exact)
        self._prefixes = tuple(prefixes)

    def __call__(self, request: web.Request) -> bool:
        path = request.rel_url.raw_path
        return path in self._exact or path.startswith(self._prefixes)


def _quote_path(path: str) -> str:
    # As a client encodes it: RFC 3986 pchar and '/' stay, the rest is %-encoded.
    return quote(path, safe="/:@!$&'()*+,;=-._~")


# --- authentication -----------------------------------------------------------------


class _MalformedAuthorization(Exception):
    pass


async def _token(request: web.Request, token_getter: TokenGetter) -> str | None:
    token = token_getter(request)
    if inspect.isawaitable(token):
        token = await token
    if token is not None and not isinstance(token, str):
        raise TypeError(f"token_getter returned {type(token).__name__}, not str | None")
    return token or None


def _bearer_token(request: web.Request) -> str | None:
    headers = request.headers.getall("Authorization", [])
    if not headers:
        return None
    # Two Authorization headers: which one did a proxy in front of us look at?
    scheme, _, token = headers[0].partition(" ") if len(headers) == 1 else ("", "", "")
    token = token.lstrip(" ")
    # RFC 6750 §2.1: "Bearer" 1*SP b64token, the scheme in any case. The b64token
    # characters are checked only if verification fails (_verify): a token that
    # verifies is a compact JWS, made of them alone, and the check costs ~1.4 µs.
    if scheme.lower() != "bearer" or not token or " " in token:
        raise _MalformedAuthorization
    return token


def _malformed_header(config: _Config) -> Rejection:
    return config.refuse(
        400,
        "invalid_request",
        "The Authorization header must be 'Bearer <token>'",
        "malformed_header",
    )


async def _verify(
    request: web.Request, config: _Config, user: str, token_getter: TokenGetter | None
) -> ParaClaims | None:
    """The claims of the request's token, ``None`` if it has none, or raise the rejection."""
    verifier = config.verifier
    if verifier is None:
        raise ConfigurationError(
            f"{user} needs a verifier, but para_jwt.aiohttp.setup() was given none: call "
            "setup(app, api_key_id=..., environment=...) or setup(app, ParaVerifier(...))"
        )
    token_getter = token_getter or config.token_getter
    try:
        if token_getter is None:
            token = _bearer_token(request)
        else:
            token = await _token(request, token_getter)
    except _MalformedAuthorization:
        raise await config.reject(request, _malformed_header(config)) from None
    if token is None:
        return None
    try:
        return await verifier.verify(token)
    except (InvalidTokenError, JWKSError) as exc:
        if (
            token_getter is None
            and isinstance(exc, MalformedTokenError)
            and _B64TOKEN.fullmatch(token) is None
        ):
            rejection = _malformed_header(config)
        else:
            rejection = config.token_rejection(exc)
        raise await config.reject(request, rejection) from None


async def _authenticate(
    request: web.Request,
    *,
    user: str,
    requirements: _Requirements,
    token_getter: TokenGetter | None,
    optional: bool,
) -> None:
    """Store the request's verified claims (``CLAIMS_KEY``) or raise the rejection."""
    config = _config(request, user)
    # The middleware may have verified the token already; a decorator on the same
    # route then only adds its requirements.
    claims: ParaClaims | None = request.get(CLAIMS_KEY)
    if claims is None:
        claims = await _verify(request, config, user, token_getter)
    if claims is None:
        if optional:
            request[_ANONYMOUS_KEY] = True
            return
        rejection = config.refuse(
            401, "missing_token", "This route requires a Para token", "no_token"
        )
        raise await config.reject(request, rejection)
    unmet = requirements.unmet(claims)
    if unmet is not None:
        reason, description = unmet
        rejection = config.refuse(403, "insufficient_scope", description, reason)
        raise await config.reject(request, rejection)
    request[CLAIMS_KEY] = claims


def _request_of(args: tuple[object, ...], user: str) -> web.Request:
    # A function handler gets the request; a web.View method gets the view, whose
    # .request it is; a method of a plain class gets (self, request).
    if args and type(args[0]) is web.Request:  # the usual case, without isinstance
        return args[0]
    for arg in args[:2]:
        if isinstance(arg, web.View):
            return arg.request
        if isinstance(arg, web.Request):
            return arg
    raise TypeError(f"{user}: the handler was called without a web.Request or web.View")


class _Decorator(Protocol):
    def __call__(self, handler: Callable[_P, Awaitable[_R]], /) -> Callable[_P, Awaitable[_R]]: ...


def _guard(
    handler: Callable[_P, Awaitable[_R]],
    user: str,
    check: Callable[[web.Request], Awaitable[None]],
) -> Callable[_P, Awaitable[_R]]:
    """``handler``, running ``check`` on its request first."""
    if inspect.isclass(handler):
        raise ConfigurationError(
            f"@{user} decorates handlers and web.View methods (get, post...), not classes"
        )
    if not (
        inspect.iscoroutinefunction(handler)
        or inspect.iscoroutinefunction(getattr(handler, "__call__", None))  # noqa: B004
    ):
        raise ConfigurationError(f"@{user} needs an async handler (async def)")

    @functools.wraps(handler)
    async def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        await check(_request_of(args, user))
        return await handler(*args, **kwargs)

    return guarded


_REQUIRED_OPTIONS: Final = ("auth_types", "wallet_types", "require_wallet", "token_getter")


@overload
def para_required(handler: Callable[_P, Awaitable[_R]], /) -> Callable[_P, Awaitable[_R]]: ...


@overload
def para_required(
    *,
    auth_types: Iterable[AuthType | str] | None = None,
    wallet_types: Iterable[WalletType | str] | None = None,
    require_wallet: bool = False,
    token_getter: TokenGetter | None = None,
) -> _Decorator: ...


def para_required(
    handler: Any = None,
    /,
    *,
    # Accept only users who signed in this way, e.g. {"email", "phone"}. Unknown
    # values are refused here: a typo would otherwise refuse everyone. Default None:
    # any way.
    auth_types: Iterable[AuthType | str] | None = None,
    # Accept only users with a Para-custodied wallet of one of these chains, e.g.
    # {"EVM"}. Connected (external) wallets are not proof of custody, so they do
    # not count. Default None: any chain, or none.
    wallet_types: Iterable[WalletType | str] | None = None,
    # Accept only users with at least one Para-custodied wallet. Default False.
    require_wallet: bool = False,
    # This route's token source, instead of setup()'s. Default None: setup()'s.
    token_getter: TokenGetter | None = None,
    **unknown: object,
) -> Any:
    """Refuse requests without a valid Para token; ``get_claims(request)`` in the handler.

    Bare (``@para_required``) or with options (``@para_required(auth_types={"email"})``);
    on function handlers and on ``web.View`` methods. Options are checked here, at
    decoration time (``ConfigurationError``). The refusals are in the module docstring.
    """
    _refuse_unknown("para_required", unknown, _REQUIRED_OPTIONS)
    requirements = _Requirements.build(auth_types, wallet_types, require_wallet)
    _check_callable("token_getter", token_getter)

    check = functools.partial(
        _authenticate,
        user="para_required",
        requirements=requirements,
        token_getter=token_getter,
        optional=False,
    )

    def decorate(handler: Callable[_P, Awaitable[_R]]) -> Callable[_P, Awaitable[_R]]:
        return _guard(handler, "para_required", check)

    if handler is None:
        return decorate
    if not callable(handler):
        raise ConfigurationError(
            "para_required's options are keywords: @para_required(auth_types={'email'})"
        )
    return decorate(handler)


def para_middleware(
    *,
    # Paths served without authentication: exact ("/health") or prefixes ending in
    # "*" ("/public/*"), matched against the path as sent. Default: none.
    exclude: Iterable[str] = (),
    # The same, decided per request: return True to let the request through
    # without authentication (e.g. CORS preflights). Default None.
    exclude_if: Callable[[web.Request], bool] | None = None,
    # Paths (same patterns) open to anonymous users, with claims when a valid token
    # is sent: get_claims_or_none(request). A token that is sent but invalid is
    # still refused. Default: none.
    optional: Iterable[str] = (),
    # Requirements on every authenticated request, as for para_required.
    auth_types: Iterable[AuthType | str] | None = None,
    wallet_types: Iterable[WalletType | str] | None = None,
    require_wallet: bool = False,
    # Token source instead of setup()'s. Default None: setup()'s.
    token_getter: TokenGetter | None = None,
) -> Middleware:
    """``para_required`` for every route of the app, except the excluded ones.

    ``web.Application(middlewares=[para_middleware(exclude=["/health"])])``. A
    handler may still carry ``@para_required(...)`` to add requirements; the
    token is verified once.
    """
    excluded = _Paths("exclude", exclude)
    anonymous_allowed = _Paths("optional", optional)
    _check_callable("exclude_if", exclude_if)
    requirements = _Requirements.build(auth_types, wallet_types, require_wallet)
    _check_callable("token_getter", token_getter)

    @web.middleware
    async def para_authentication(
        request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        if excluded(request) or (exclude_if is not None and exclude_if(request)):
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
            optional=anonymous_allowed(request),
        )
        return await handler(request)

    return para_authentication


# --- Para's session check -----------------------------------------------------------


async def _verification_token(
    request: web.Request, config: _Config, max_body_size: int
) -> str | None:
    """From the header, else a JSON body's ``verificationToken``; 400 if unreadable."""
    headers = request.headers.getall(_VERIFICATION_TOKEN_HEADER, [])
    if len(headers) > 1:
        raise await _bad_session_request(request, config, f"Send one {_VERIFICATION_TOKEN_HEADER}")
    if headers:
        return headers[0] or None
    content_type = request.content_type
    if not request.body_exists or not (
        content_type == "application/json" or content_type.endswith("+json")
    ):
        return None
    too_large = f"The request body is larger than {max_body_size} bytes"
    if request.content_length is not None and request.content_length > max_body_size:
        raise await _bad_session_request(request, config, too_large)
    # read() keeps the body, so the handler can still read it.
    body = await request.read()
    if len(body) > max_body_size:
        raise await _bad_session_request(request, config, too_large)
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        # Raised below, outside this block: the decoder's error holds the body,
        # verification token included.
        document = _NOT_JSON
    if document is _NOT_JSON:
        raise await _bad_session_request(request, config, "The body is not valid JSON")
    token = document.get("verificationToken") if isinstance(document, dict) else None
    if token is not None and not isinstance(token, str):
        raise await _bad_session_request(request, config, "verificationToken must be a string")
    return token or None


_NOT_JSON: Final = object()


async def _bad_session_request(
    request: web.Request, config: _Config, description: str, cause: ParaJWTError | None = None
) -> web.HTTPException:
    rejection = config.refuse(
        400,
        "invalid_request",
        description,
        "bad_verification_request",
        cause,
        scheme=_SESSION_SCHEME,
    )
    return await config.reject(request, rejection)


def _session_rejection(config: _Config, exc: ParaAPIError) -> Rejection:
    if isinstance(exc, SessionExpiredError):
        return config.refuse(
            401,
            "invalid_token",
            "The session has expired or the verification token is invalid",
            "session_expired",
            exc,
            scheme=_SESSION_SCHEME,
        )
    if isinstance(exc, ParaUnavailableError):
        return _unavailable(None, "para_unavailable", exc)
    if isinstance(exc, ParaAuthenticationError):
        # Our configuration's fault, not Para's or the caller's: 500, logged at
        # ERROR. The caller is not told why; the reason names what to fix.
        return Rejection(
            500,
            "server_error",
            "The server could not check the session",
            "para_refused_our_secret_api_key",
            {},
            exc,
        )
    # Para answered, but not as documented: a bad gateway.
    return Rejection(
        502, "server_error", "Para answered unexpectedly", "para_api_error", {}, exc
    )


async def _check_session(request: web.Request, max_body_size: int) -> None:
    config = _config(request, "para_session_required")
    api = config.api
    if api is None:
        raise ConfigurationError(
            "para_session_required needs a ParaAPI, but para_jwt.aiohttp.setup() was given "
            "none: pass secret_api_key=... (or api=ParaAPI(...)) to setup()"
        )
    token = await _verification_token(request, config, max_body_size)
    if token is None:
        description = (
            f"This route requires a Para verification token ({_VERIFICATION_TOKEN_HEADER} "
            "header or 'verificationToken' in a JSON body)"
        )
        rejection = config.refuse(
            401, "missing_token", description, "no_verification_token", scheme=_SESSION_SCHEME
        )
        raise await config.reject(request, rejection)
    try:
        session = await api.verify_session(token)
    except InvalidVerificationTokenError as exc:
        raise await _bad_session_request(
            request, config, "This is not a Para verification token", exc
        ) from None
    except ParaAPIError as exc:
        raise await config.reject(request, _session_rejection(config, exc)) from None
    request[SESSION_KEY] = session


@overload
def para_session_required(
    handler: Callable[_P, Awaitable[_R]], /
) -> Callable[_P, Awaitable[_R]]: ...


@overload
def para_session_required(*, max_body_size: int = ...) -> _Decorator: ...


def para_session_required(
    handler: Any = None,
    /,
    *,
    # A JSON body is read (to find verificationToken) only up to this size; larger
    # ones are refused (400). 64 KiB: far above a login request, far below what
    # would make parsing costly.
    max_body_size: object = 64 * 1024,
    **unknown: object,
) -> Any:
    """Ask Para whether the request's verification token is an active session.

    The token is read from the ``X-Para-Verification-Token`` header or, for a JSON
    request, the body's ``verificationToken``; ``get_session(request)`` returns
    Para's ``SessionInfo``. Needs ``setup(app, secret_api_key=...)`` (or ``api=``).
    """
    _refuse_unknown("para_session_required", unknown, ("max_body_size",))
    if type(max_body_size) is not int or max_body_size < 1:
        raise ConfigurationError("max_body_size must be a positive integer (bytes)")
    limit = max_body_size

    async def check(request: web.Request) -> None:
        await _check_session(request, limit)

    def decorate(handler: Callable[_P, Awaitable[_R]]) -> Callable[_P, Awaitable[_R]]:
        return _guard(handler, "para_session_required", check)

    if handler is None:
        return decorate
    if not callable(handler):
        raise ConfigurationError(
            "para_session_required's options are keywords: "
            "@para_session_required(max_body_size=...)"
        )
    return decorate(handler)
