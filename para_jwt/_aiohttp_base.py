"""The aiohttp adapter's plumbing: typed keys, the per-app configuration, the
error answer, and the handler guard that ``para_jwt.aiohttp``'s decorators share."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, ParamSpec, Protocol, TypeVar

from aiohttp import web

from ._http import (
    Gate,
    Rejection,
    log_rejection,
)
from .api import ParaAPI, SessionInfo
from .claims import ParaClaims
from .errors import ConfigurationError
from .verifier import ParaVerifier

# The public module's name: its users configure this logger.
logger = logging.getLogger("para_jwt.aiohttp")

P = ParamSpec("P")
R = TypeVar("R", bound=web.StreamResponse)

#: Where the token comes from when not ``Authorization: Bearer``: a cookie, another
#: header. Sync or async; ``None`` (or ``""``) means the request carries none.
TokenGetter = Callable[[web.Request], str | Awaitable[str | None] | None]

#: Turns a rejection into the exception aiohttp answers with (sync or async). The
#: default is ``default_error_handler``; see ``setup(error_handler=...)``.
ErrorHandler = Callable[[web.Request, Rejection], web.HTTPException | Awaitable[web.HTTPException]]

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
    #: Set when optional authentication found no token: the request *was* checked.
    ANONYMOUS_KEY: Final = web.RequestKey("para_jwt.anonymous", bool)
else:  # pragma: no cover - aiohttp < 3.14
    CLAIMS_KEY: Final = "para_jwt.claims"
    SESSION_KEY: Final = "para_jwt.session"
    ANONYMOUS_KEY: Final = "para_jwt.anonymous"


# --- rejections ---------------------------------------------------------------------


class _PayloadTooLarge(web.HTTPClientError):
    # web.HTTPRequestEntityTooLarge wants the body's actual size, which a capped
    # read never learns.
    status_code = 413


# aiohttp's exception class for each status a Rejection can have.
_HTTP_EXCEPTIONS: Final[Mapping[int, type[web.HTTPException]]] = {
    400: web.HTTPBadRequest,
    401: web.HTTPUnauthorized,
    403: web.HTTPForbidden,
    413: _PayloadTooLarge,
    500: web.HTTPInternalServerError,
    502: web.HTTPBadGateway,
    503: web.HTTPServiceUnavailable,
}


def default_error_handler(request: web.Request, rejection: Rejection) -> web.HTTPException:
    """The JSON answer every para_jwt adapter gives.

    Call it from your own handler to keep it for some routes.

    Args:
        request: The refused request.
        rejection: Why it is refused.

    Returns:
        ``{"error": ..., "error_description": ...}`` with the rejection's status
        and headers.
    """
    return _HTTP_EXCEPTIONS[rejection.status](
        text=rejection.body.decode(), content_type="application/json", headers=rejection.headers
    )


@dataclass(frozen=True, slots=True)
class Config:
    # The verifier and API client travel here too, so a request looks up one key:
    # every request.config_dict access rebuilds the chain of (sub-)apps.
    verifier: ParaVerifier | None
    api: ParaAPI | None
    gate: Gate
    token_getter: TokenGetter | None
    error_handler: ErrorHandler

    async def reject(self, request: web.Request, rejection: Rejection) -> web.HTTPException:
        """Log the rejection and return the exception to raise for it."""
        log_rejection(logger, request.method, request.rel_url.raw_path, rejection)
        answer = self.error_handler(request, rejection)
        if inspect.isawaitable(answer):
            answer = await answer
        return answer


CONFIG_KEY: Final = web.AppKey("para_jwt.aiohttp_config", Config)


def config_of(request: web.Request, user: str) -> Config:
    # The handler's own app first (a dict lookup); then config_dict, so that a
    # setup() on a parent app covers its sub-apps (it rebuilds the app chain).
    config = request.app.get(CONFIG_KEY) or request.config_dict.get(CONFIG_KEY)
    if config is None:
        raise ConfigurationError(
            f"{user} is used on an app without Para: call para_jwt.aiohttp.setup(app, ...) "
            "before the app starts, with api_key_id=... and environment=... for "
            "para_required and para_middleware, secret_api_key=... for para_session_required"
        )
    return config


# --- the handler guard ---------------------------------------------------------------


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


class Decorator(Protocol):
    def __call__(self, handler: Callable[P, Awaitable[R]], /) -> Callable[P, Awaitable[R]]: ...


def decorator(
    user: str,
    example: str,
    check: Callable[[web.Request], Awaitable[None]],
    handler: object,
) -> Any:
    """What a bare ``@user`` (``handler`` given) or ``@user(...)`` (``handler`` is
    ``None``) returns: the guarded handler, or the decorator making one.

    Args:
        user: The decorator's name, for error messages.
        example: Its options as they would be written, for error messages.
        check: Runs on the request first; raises to refuse it.
        handler: The handler when used bare, else ``None``.

    Returns:
        The guarded handler, or the decorator.

    Raises:
        ConfigurationError: Options passed positionally, or what ``guard`` refuses.
    """

    def decorate(handler: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        return guard(handler, user, check)

    if handler is None:
        return decorate
    if not callable(handler):
        raise ConfigurationError(f"{user}'s options are keywords: @{user}({example})")
    return decorate(handler)


def guard(
    handler: Callable[P, Awaitable[R]],
    user: str,
    check: Callable[[web.Request], Awaitable[None]],
) -> Callable[P, Awaitable[R]]:
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
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        await check(_request_of(args, user))
        return await handler(*args, **kwargs)

    return guarded
