"""``para_session_required``: Para's ``/sessions/verify`` in front of aiohttp handlers.

Re-exported by ``para_jwt.aiohttp``; see its docstring for the answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, overload

from aiohttp import web

from ._aiohttp_base import SESSION_KEY, Config, Decorator, P, R, config_of, decorator
from ._http import (
    DEFAULT_MAX_BODY_SIZE,
    VERIFICATION_TOKEN_HEADER,
    Refused,
)
from ._http_options import (
    check_max_body_size,
    refuse_unknown,
)
from ._http_session import (
    check_session,
    is_json,
    read_capped,
    too_large,
    verification_token_body,
    verification_token_header,
)
from .api import SessionInfo
from .errors import ConfigurationError


def get_session(request: web.Request) -> SessionInfo:
    """The ``SessionInfo`` that ``para_session_required`` obtained from Para."""
    if SESSION_KEY not in request:
        raise ConfigurationError(
            "get_session(): no Para session check ran for this request: decorate the "
            "handler with @para_session_required"
        )
    return request[SESSION_KEY]


async def _verification_token(
    request: web.Request, config: Config, max_body_size: int
) -> str | None:
    """From the header, else a JSON body's ``verificationToken``."""
    values = request.headers.getall(VERIFICATION_TOKEN_HEADER, ())
    if values or not request.body_exists or not is_json(request.content_type):
        return verification_token_header(config.gate, values)
    if request.content_length is not None and request.content_length > max_body_size:
        raise Refused(too_large(max_body_size))
    # Chunk by chunk, so that a chunked body stops at the cap, unlike request.read().
    body = await read_capped(request.content.iter_any(), max_body_size)
    # Where request.read() keeps the body it read, so the handler can still read it.
    request._read_bytes = body
    return verification_token_body(config.gate, body)


async def _check_session(request: web.Request, max_body_size: int) -> None:
    config = config_of(request, "para_session_required")
    api = config.api
    if api is None:
        raise ConfigurationError(
            "para_session_required needs a ParaAPI, but para_jwt.aiohttp.setup() was given "
            "none: pass secret_api_key=... (or api=ParaAPI(...)) to setup()"
        )
    try:
        token = await _verification_token(request, config, max_body_size)
        request[SESSION_KEY] = await check_session(config.gate, api, token)
    except Refused as refused:
        rejection = refused.rejection
    else:
        return
    # Outside the except block: nothing that saw the verification token is chained.
    raise await config.reject(request, rejection)


@overload
def para_session_required(handler: Callable[P, Awaitable[R]], /) -> Callable[P, Awaitable[R]]: ...


@overload
def para_session_required(*, max_body_size: int = ...) -> Decorator: ...


def para_session_required(
    handler: Any = None,
    /,
    *,
    max_body_size: object = DEFAULT_MAX_BODY_SIZE,
    **unknown: object,
) -> Any:
    """Ask Para whether the request's verification token is an active session.

    The token is read from the ``X-Para-Verification-Token`` header or, for a JSON
    request, the body's ``verificationToken``; ``get_session(request)`` returns
    Para's ``SessionInfo``. Needs ``setup(app, secret_api_key=...)`` (or ``api=``).

    Args:
        handler: The handler, when used bare.
        max_body_size: A JSON body is read (to find ``verificationToken``) only up to
            this many bytes, chunk by chunk: a larger one, chunked or not, is
            refused with 413 as soon as it passes the cap. Default 64 KiB: far above
            a login request, far below what would make parsing costly.
        **unknown: Refused, with the nearest option's name.

    Returns:
        The guarded handler, or a decorator when called with options.

    Raises:
        ConfigurationError: For an unknown option or a bad ``max_body_size``.
    """
    refuse_unknown("para_session_required", unknown, ("max_body_size",))
    limit = check_max_body_size(max_body_size)

    async def check(request: web.Request) -> None:
        await _check_session(request, limit)
    return decorator("para_session_required", "max_body_size=...", check, handler)
