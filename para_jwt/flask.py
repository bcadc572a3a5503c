"""Protect Flask routes with Para: ``ParaJWT``, ``@para_required``, ``get_claims()``.

::

    app = Flask(__name__)
    app.config.update(PARA_API_KEY_ID="8c67b747-...", PARA_ENVIRONMENT="prod")
    ParaJWT(app)

    @app.get("/me")
    @para_required
    def me():
        return {"user": get_claims().user_id}

Flask runs views in worker threads without an event loop, so verification goes
through ``SyncParaVerifier``: a cache hit or a known key costs no thread hop. The
refusals (statuses, ``WWW-Authenticate``, ``Retry-After``, JSON bodies) are those of
every para_jwt adapter; ``para_jwt._http`` has the table. Each refusal is logged as
one line on the ``para_jwt.flask`` logger, never with a token.

Needs the extra: ``pip install 'para-jwt[flask]'``.
"""

from __future__ import annotations

try:
    import flask
except ImportError as _missing:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "para_jwt.flask needs Flask: install the extra with pip install 'para-jwt[flask]'"
    ) from _missing

import atexit
import contextlib
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, ParamSpec, Protocol, TypeVar, overload
from urllib.parse import quote

from werkzeug.exceptions import RequestEntityTooLarge

from . import SyncParaAPI, SyncParaVerifier
from ._http import (
    DEFAULT_MAX_BODY_SIZE,
    VERIFICATION_TOKEN_HEADER,
    Gate,
    Refused,
    Rejection,
    log_rejection,
)
from ._http_options import check_max_body_size, check_realm, refuse_unknown
from ._http_session import (
    is_json,
    too_large,
    verification_token_body,
    verification_token_header,
)
from ._http_sync import check_session, verify_bearer
from ._requirements import Requirements
from .api import SessionInfo
from .claims import AuthType, ParaClaims, WalletType
from .errors import ConfigurationError

__all__ = [
    "ParaJWT",
    "get_claims",
    "get_session",
    "para_required",
    "para_session_required",
]

logger = logging.getLogger("para_jwt.flask")

_P = ParamSpec("_P")
_R = TypeVar("_R")

# Where the extension keeps its state: app.extensions[_EXTENSION].
_EXTENSION: Final = "para_jwt"
# Where a request's results are kept: attributes of flask.g.
_CLAIMS_ATTRIBUTE: Final = "para_jwt_claims"
_SESSION_ATTRIBUTE: Final = "para_jwt_session"
# ParaVerifier's settings that the app config gives, by config key.
_VERIFIER_CONFIG: Final = {"PARA_ENVIRONMENT": "environment", "PARA_JWKS_URL": "jwks_url"}


@dataclass(frozen=True, slots=True)
class _State:
    verifier: SyncParaVerifier | None
    api: SyncParaAPI | None
    gate: Gate

    def refuse(self, rejection: Rejection) -> flask.Response:
        """Log ``rejection`` and return the answer for it."""
        request = flask.request
        # The path re-encoded, without the query string (which may hold secrets).
        log_rejection(logger, request.method, quote(request.path), rejection)
        return flask.Response(
            rejection.body,
            status=rejection.status,
            headers=dict(rejection.headers),
            content_type="application/json",
        )


class ParaJWT:
    """The Flask extension: gives an app's views a verifier and a Para API client.

    ``ParaJWT(app)``, or ``para = ParaJWT()`` then ``para.init_app(app)`` in an app
    factory. Without ``verifier=``, ``init_app`` builds a ``SyncParaVerifier`` from
    the app's config: ``PARA_API_KEY_ID`` (your API key ID) and one key source,
    ``PARA_ENVIRONMENT`` (``"prod"``, ``"beta"``, ``"sandbox"``) or ``PARA_JWKS_URL``;
    ``PARA_VERIFIER_OPTIONS``, a dict, passes more ``SyncParaVerifier`` options
    (``leeway``, ``clock``...). Without ``api=``, ``PARA_SECRET_API_KEY`` makes the
    ``SyncParaAPI`` that ``para_session_required`` uses (in ``PARA_ENVIRONMENT``).
    What ``init_app`` builds it closes at interpreter exit, or on ``close()``; what
    you pass in stays yours to close.

    Args:
        app: The app to set up now; ``None`` to call ``init_app`` later.
        verifier: The verifier for ``para_required``. Default: built from the config.
        api: The client for ``para_session_required``. Default: built from the
            config when ``PARA_SECRET_API_KEY`` is set, else none.
        realm: The ``WWW-Authenticate`` realm. Default ``"para"``: whose token is wanted.

    Raises:
        ConfigurationError: For a wrong argument or config value, naming the key.
    """

    def __init__(
        self,
        app: flask.Flask | None = None,
        *,
        verifier: SyncParaVerifier | None = None,
        api: SyncParaAPI | None = None,
        realm: str = "para",
    ) -> None:
        if verifier is not None and not isinstance(verifier, SyncParaVerifier):
            raise ConfigurationError(
                f"ParaJWT(verifier=...) must be a SyncParaVerifier, not {type(verifier).__name__}"
                " (Flask views run without an event loop)"
            )
        if api is not None and not isinstance(api, SyncParaAPI):
            raise ConfigurationError(
                f"ParaJWT(api=...) must be a SyncParaAPI, not {type(api).__name__}"
            )
        self._verifier = verifier
        self._api = api
        self._gate = Gate(check_realm(realm))
        # What init_app built, closed by close() or at exit.
        self._owned: list[SyncParaVerifier | SyncParaAPI] = []
        if app is not None:
            self.init_app(app)

    def init_app(self, app: flask.Flask) -> None:
        """Set up ``app``: build what the config asks for, now, so errors show at startup.

        Raises:
            ConfigurationError: ``init_app`` was already called for ``app``, or a
                config value is missing or wrong.
        """
        if _EXTENSION in app.extensions:
            raise ConfigurationError(f"ParaJWT.init_app(): app {app.name!r} is already set up")
        verifier = self._verifier or _verifier_from(app.config)
        api = self._api or _api_from(app.config)
        if verifier is None and api is None:
            raise ConfigurationError(
                "ParaJWT needs app.config['PARA_API_KEY_ID'] (with PARA_ENVIRONMENT or "
                "PARA_JWKS_URL) for para_required, or PARA_SECRET_API_KEY for "
                "para_session_required; or pass ParaJWT(verifier=SyncParaVerifier(...))"
            )
        built = [
            made
            for made, given in ((verifier, self._verifier), (api, self._api))
            if made is not None and given is None
        ]
        if built and not self._owned:
            atexit.register(self.close)
        self._owned.extend(built)
        app.extensions[_EXTENSION] = _State(verifier, api, self._gate)

    def close(self) -> None:
        """Close the verifiers and API clients ``init_app`` built (not those passed in).

        Runs at interpreter exit by itself; call it to close them earlier.
        """
        owned, self._owned = self._owned, []
        atexit.unregister(self.close)
        # Every one is closed even if another's close() fails.
        with contextlib.ExitStack() as stack:
            for resource in owned:
                stack.callback(resource.close)


def _verifier_from(config: Mapping[str, Any]) -> SyncParaVerifier | None:
    api_key_id = config.get("PARA_API_KEY_ID")
    if api_key_id is None:
        return None
    # None is unset: app.config.update(PARA_ENVIRONMENT=os.environ.get(...)) is usual.
    sources = {
        option: config[key]
        for key, option in _VERIFIER_CONFIG.items()
        if config.get(key) is not None
    }
    if len(sources) != 1:
        raise ConfigurationError(
            "ParaJWT: set exactly one of app.config['PARA_ENVIRONMENT'] ('prod', 'beta', "
            f"'sandbox') and app.config['PARA_JWKS_URL'] (got {len(sources)})"
        )
    options = config.get("PARA_VERIFIER_OPTIONS") or {}
    if not isinstance(options, Mapping):
        raise ConfigurationError(
            "ParaJWT: app.config['PARA_VERIFIER_OPTIONS'] must be a dict of SyncParaVerifier "
            f"options, not {type(options).__name__}"
        )
    try:
        return SyncParaVerifier(api_key_id, **sources, **options)
    except (ConfigurationError, TypeError) as exc:
        raise ConfigurationError(
            f"ParaJWT: app.config['PARA_API_KEY_ID'], PARA_ENVIRONMENT / PARA_JWKS_URL or "
            f"PARA_VERIFIER_OPTIONS: {exc}"
        ) from None


def _api_from(config: Mapping[str, Any]) -> SyncParaAPI | None:
    secret_api_key = config.get("PARA_SECRET_API_KEY")
    if secret_api_key is None:
        return None
    environment = config.get("PARA_ENVIRONMENT")
    try:
        if environment is None:
            return SyncParaAPI(secret_api_key)
        return SyncParaAPI(secret_api_key, environment=environment)
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"ParaJWT: app.config['PARA_SECRET_API_KEY'] or PARA_ENVIRONMENT: {exc}"
        ) from None


def _state(user: str) -> _State:
    state: _State | None = flask.current_app.extensions.get(_EXTENSION)
    if state is None:
        raise ConfigurationError(
            f"{user} is used on an app without Para: call ParaJWT(app) or "
            "ParaJWT().init_app(app) when creating the app"
        )
    return state


# --- reading the results ------------------------------------------------------------


def get_claims() -> ParaClaims:
    """The verified claims of the current request's user.

    Raises:
        ConfigurationError: No ``para_required`` authenticated this request.
    """
    claims: ParaClaims | None = flask.g.get(_CLAIMS_ATTRIBUTE)
    if claims is None:
        raise ConfigurationError(
            "get_claims(): no Para authentication ran for this request: decorate the "
            "view with @para_required"
        )
    return claims


def get_session() -> SessionInfo:
    """The ``SessionInfo`` that ``para_session_required`` obtained from Para.

    Raises:
        ConfigurationError: No ``para_session_required`` ran for this request.
    """
    session: SessionInfo | None = flask.g.get(_SESSION_ATTRIBUTE)
    if session is None:
        raise ConfigurationError(
            "get_session(): no Para session check ran for this request: decorate the "
            "view with @para_session_required"
        )
    return session


# --- decorators ---------------------------------------------------------------------


class _Decorator(Protocol):
    def __call__(self, view: Callable[_P, _R], /) -> Callable[_P, _R]: ...


def _guard(view: Callable[_P, Any], check: Callable[[], flask.Response | None]) -> Any:
    """``view``, answering ``check()``'s refusal instead when it has one."""
    if inspect.iscoroutinefunction(view):
        # Flask runs an async view in its own event loop on the worker thread, so
        # the blocking check holds up nobody else.
        coroutine_view: Callable[_P, Awaitable[Any]] = view

        @functools.wraps(view)
        async def guarded_async(*args: _P.args, **kwargs: _P.kwargs) -> Any:
            refusal = check()
            if refusal is not None:
                return refusal
            return await coroutine_view(*args, **kwargs)

        return guarded_async

    @functools.wraps(view)
    def guarded(*args: _P.args, **kwargs: _P.kwargs) -> Any:
        refusal = check()
        if refusal is not None:
            return refusal
        return view(*args, **kwargs)

    return guarded


def _authenticate(requirements: Requirements) -> flask.Response | None:
    """Store the request's verified claims on ``flask.g``, or return the refusal."""
    state = _state("para_required")
    if state.verifier is None:
        raise ConfigurationError(
            "para_required needs a verifier, but ParaJWT has none: set "
            "app.config['PARA_API_KEY_ID'] and PARA_ENVIRONMENT (or PARA_JWKS_URL)"
        )
    try:
        claims = verify_bearer(
            state.gate, state.verifier, flask.request.headers.getlist("Authorization")
        )
        requirements.enforce(state.gate, claims)
    except Refused as refused:
        return state.refuse(refused.rejection)
    setattr(flask.g, _CLAIMS_ATTRIBUTE, claims)
    return None


_REQUIRED_OPTIONS: Final = ("auth_types", "wallet_types", "require_wallet")


@overload
def para_required(view: Callable[_P, _R], /) -> Callable[_P, _R]: ...


@overload
def para_required(
    *,
    auth_types: Iterable[AuthType | str] | None = None,
    wallet_types: Iterable[WalletType | str] | None = None,
    require_wallet: bool = False,
) -> _Decorator: ...


def para_required(
    view: Any = None,
    /,
    *,
    auth_types: Iterable[AuthType | str] | None = None,
    wallet_types: Iterable[WalletType | str] | None = None,
    require_wallet: bool = False,
    **unknown: object,
) -> Any:
    """Refuse requests without a valid Para token; ``get_claims()`` in the view.

    Bare (``@para_required``) or with options (``@para_required(wallet_types={"EVM"})``),
    under the route decorator; on sync and async views, and in a ``MethodView``'s
    ``decorators`` list. The options are those of every para_jwt adapter.

    Args:
        view: The view, when used bare.
        auth_types: Accept only users who signed in this way, e.g. ``{"email"}``.
            Default ``None``: any way.
        wallet_types: Accept only users with a Para-custodied wallet of one of these
            chains, e.g. ``{"EVM"}``. Default ``None``: any chain, or none.
        require_wallet: Accept only users with a Para-custodied wallet. Default False.
        **unknown: Refused: a misspelt option must not pass silently.

    Returns:
        The protected view, or a decorator making one.

    Raises:
        ConfigurationError: For a wrong option, at decoration time.
    """
    refuse_unknown("para_required", unknown, _REQUIRED_OPTIONS)
    requirements = Requirements.build(auth_types, wallet_types, require_wallet)
    check = functools.partial(_authenticate, requirements)
    return _decorator("para_required", "wallet_types={'EVM'}", check, view)


def _decorator(
    user: str, example: str, check: Callable[[], flask.Response | None], view: object
) -> Any:
    """What a bare ``@user`` (``view`` given) or ``@user(...)`` (``view`` is ``None``)
    returns: the guarded view, or the decorator making one.

    Args:
        user: The decorator's name, for error messages.
        example: Its options as they would be written, for error messages.
        check: Answers a request's refusal, or ``None`` to let it in.
        view: The view when used bare, else ``None``.

    Returns:
        The guarded view, or the decorator.

    Raises:
        ConfigurationError: ``view`` is a class, or options were passed positionally.
    """

    def decorate(view: Callable[_P, _R]) -> Callable[_P, _R]:
        if inspect.isclass(view):
            raise ConfigurationError(
                f"@{user} decorates view functions; for a View class, list it in its "
                f"decorators: decorators = [{user}]"
            )
        guarded: Callable[_P, _R] = _guard(view, check)
        return guarded

    if view is None:
        return decorate
    if not callable(view):
        raise ConfigurationError(f"{user}'s options are keywords: @{user}({example})")
    return decorate(view)


def _verification_token(state: _State, max_body_size: int) -> str | None:
    """From the header, else a JSON body's ``verificationToken``."""
    request = flask.request
    token = verification_token_header(
        state.gate, request.headers.getlist(VERIFICATION_TOKEN_HEADER)
    )
    if token is not None or not is_json(request.mimetype):
        return token
    # Read at most max_body_size bytes, whatever Content-Length says (or if the
    # body is chunked); cached, so the view can still read it.
    previous_limit = request.max_content_length
    request.max_content_length = (
        max_body_size if previous_limit is None else min(previous_limit, max_body_size)
    )
    body: bytes | None = None
    try:
        body = request.get_data(cache=True)
    except RequestEntityTooLarge:
        pass  # refused below, outside this block: nothing chained to the refusal
    finally:
        request.max_content_length = previous_limit
    if body is None:
        raise Refused(too_large(max_body_size))
    return verification_token_body(state.gate, body)


def _check_session(max_body_size: int) -> flask.Response | None:
    state = _state("para_session_required")
    if state.api is None:
        raise ConfigurationError(
            "para_session_required needs a SyncParaAPI, but ParaJWT has none: set "
            "app.config['PARA_SECRET_API_KEY'] or pass ParaJWT(api=SyncParaAPI(...))"
        )
    try:
        session = check_session(state.gate, state.api, _verification_token(state, max_body_size))
    except Refused as refused:
        return state.refuse(refused.rejection)
    setattr(flask.g, _SESSION_ATTRIBUTE, session)
    return None


@overload
def para_session_required(view: Callable[_P, _R], /) -> Callable[_P, _R]: ...


@overload
def para_session_required(*, max_body_size: int = ...) -> _Decorator: ...


def para_session_required(
    view: Any = None,
    /,
    *,
    max_body_size: object = DEFAULT_MAX_BODY_SIZE,
    **unknown: object,
) -> Any:
    """Ask Para whether the request's verification token is an active session.

    The token is read from the ``X-Para-Verification-Token`` header or, for a JSON
    request, the body's ``verificationToken``; ``get_session()`` returns Para's
    ``SessionInfo``. Needs ``PARA_SECRET_API_KEY`` (or ``ParaJWT(api=...)``).

    Args:
        view: The view, when used bare.
        max_body_size: A JSON body is read (to find ``verificationToken``) only up to
            this many bytes; a larger one is refused (413). Default 64 KiB: far above
            a login request, far below what would make parsing costly.
        **unknown: Refused: a misspelt option must not pass silently.

    Returns:
        The protected view, or a decorator making one.

    Raises:
        ConfigurationError: For a wrong option, at decoration time.
    """
    refuse_unknown("para_session_required", unknown, ("max_body_size",))
    check = functools.partial(_check_session, check_max_body_size(max_body_size))
    return _decorator("para_session_required", "max_body_size=...", check, view)
