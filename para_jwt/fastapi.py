"""Protect FastAPI routes with Para: ``ParaAuth`` dependencies.

::

    from typing import Annotated
    from fastapi import Depends, FastAPI
    from para_jwt import ParaClaims, ParaVerifier
    from para_jwt.fastapi import ParaAuth

    auth = ParaAuth(ParaVerifier(api_key_id="...", environment="prod"))
    app = FastAPI(lifespan=auth.lifespan)
    auth.install(app)

    @app.get("/me")
    async def me(claims: Annotated[ParaClaims, Depends(auth)]) -> dict[str, str]:
        return {"user_id": claims.user_id}

A refusal is raised as ``ParaRefusal``, an ``HTTPException`` with the status and
headers (``WWW-Authenticate``, ``Retry-After``) of ``para_jwt.aiohttp``'s. With
``auth.install(app)`` its body is also the same bytes: ``{"error": ...,
"error_description": ...}``; without it FastAPI's own handler wraps that object in
``{"detail": ...}``. The dependencies are OpenAPI security schemes, so ``/docs``
shows the Authorize button and a padlock on each protected operation. Each refusal
is logged as one line on the ``para_jwt.fastapi`` logger, never with the token.

Needs the ``fastapi`` extra: ``pip install 'para-jwt[fastapi]'``.
"""

# No `from __future__ import annotations`: FastAPI reads the annotations of the
# dependencies' __call__ at run time, and an instance has no __globals__ to
# resolve strings in.

import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Final

try:
    from fastapi import FastAPI, HTTPException
    from fastapi.openapi.models import APIKey, APIKeyIn
    from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
    from fastapi.security.base import SecurityBase
    from starlette.requests import HTTPConnection, Request
    from starlette.responses import Response
except ImportError as exc:  # pragma: no cover - tested in a subprocess
    raise ImportError("para_jwt.fastapi needs FastAPI: pip install 'para-jwt[fastapi]'") from exc

from ._http import (
    DEFAULT_MAX_BODY_SIZE,
    VERIFICATION_TOKEN_HEADER,
    Gate,
    Refused,
    Rejection,
    log_rejection,
    verify_bearer,
)
from ._http_options import (
    check_max_body_size,
    check_realm,
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
from ._requirements import Requirements
from .api import ParaAPI, SessionInfo
from .claims import AuthType, ParaClaims, WalletType
from .errors import ConfigurationError, ParaJWTError
from .starlette import CLAIMS_SCOPE_KEY, authorization, raw_path
from .verifier import ParaVerifier

__all__ = ["ParaAuth", "ParaRefusal", "refusal_handler"]

logger = logging.getLogger("para_jwt.fastapi")

_BEARER_MODEL: Final = HTTPBearerModel(
    bearerFormat="JWT", description="A Para session JWT: Authorization: Bearer <token>"
)
_SESSION_MODEL: Final = APIKey.model_validate(
    {
        "in": APIKeyIn.header,
        "name": VERIFICATION_TOKEN_HEADER,
        "description": "A Para verification token, checked with Para's /sessions/verify",
    }
)
_REQUIRE_OPTIONS: Final = ("auth_types", "wallet_types", "require_wallet")


class ParaRefusal(HTTPException):
    """A request para_jwt refuses; ``rejection`` says why.

    Its ``detail`` is the JSON body ``{"error": ..., "error_description": ...}``.
    """

    def __init__(self, rejection: Rejection) -> None:
        """Carry ``rejection``'s status, headers and body."""
        super().__init__(
            rejection.status,
            detail={"error": rejection.error, "error_description": rejection.description},
            headers=dict(rejection.headers),
        )
        self.rejection = rejection


async def refusal_handler(request: Request, exc: Exception) -> Response:
    """The answer to a ``ParaRefusal``: the same bytes as every para_jwt adapter.

    ``ParaAuth.install(app)`` registers it; call it from your own handler to keep it.
    """
    if not isinstance(exc, ParaRefusal):  # pragma: no cover - registered for ParaRefusal
        raise exc
    rejection = exc.rejection
    return Response(
        rejection.body,
        status_code=rejection.status,
        headers=dict(rejection.headers),
        media_type="application/json",
    )


def _refuse(connection: HTTPConnection, rejection: Rejection) -> ParaRefusal:
    scope = connection.scope
    log_rejection(logger, scope.get("method", "GET"), raw_path(scope), rejection)
    return ParaRefusal(rejection)


class _Claims(SecurityBase):
    """A dependency that verifies the bearer token (an OpenAPI HTTP bearer scheme)."""

    def __init__(
        self, verifier: ParaVerifier, gate: Gate, requirements: Requirements, optional: bool
    ) -> None:
        self.model = _BEARER_MODEL
        self.scheme_name = "ParaBearer"
        self._verifier = verifier
        self._gate = gate
        self._requirements = requirements
        self._optional = optional

    async def _claims(self, connection: HTTPConnection) -> ParaClaims | None:
        try:
            # ParaMiddleware may have verified the token already.
            claims: ParaClaims | None = connection.scope.get(CLAIMS_SCOPE_KEY)
            if claims is None:
                claims = await verify_bearer(
                    self._gate,
                    self._verifier,
                    authorization(connection.scope),
                    optional=self._optional,
                )
            if claims is not None:
                self._requirements.enforce(self._gate, claims)
        except Refused as refused:
            rejection = refused.rejection
        else:
            return claims
        # Outside the except block: the Refused, whose frames hold the Authorization
        # header, is not chained to the ParaRefusal an error reporter may record.
        raise _refuse(connection, rejection)


class _RequiredClaims(_Claims):
    async def __call__(self, connection: HTTPConnection) -> ParaClaims:
        claims = await self._claims(connection)
        if claims is None:  # pragma: no cover - not optional: refused before
            raise ConfigurationError("a required Para dependency let a request through")
        return claims


class _OptionalClaims(_Claims):
    async def __call__(self, connection: HTTPConnection) -> ParaClaims | None:
        return await self._claims(connection)


class _Session(SecurityBase):
    """A dependency that asks Para about the request's verification token."""

    def __init__(self, auth: "ParaAuth", max_body_size: int) -> None:
        self.model = _SESSION_MODEL
        self.scheme_name = "ParaVerificationToken"
        self._auth = auth
        self._max_body_size = max_body_size

    async def __call__(self, request: Request) -> SessionInfo:
        api = self._auth.api
        if api is None:
            raise ConfigurationError(
                "ParaAuth.session needs a ParaAPI: ParaAuth(verifier, api=ParaAPI(secret_api_key))"
            )
        gate = self._auth.gate
        try:
            token = await self._token(request, gate)
            return await check_session(gate, api, token)
        except Refused as refused:
            rejection = refused.rejection
        raise _refuse(request, rejection)  # outside the except block, as above

    async def _token(self, request: Request, gate: Gate) -> str | None:
        values = request.headers.getlist(VERIFICATION_TOKEN_HEADER)
        content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if values or not is_json(content_type):
            return verification_token_header(gate, values)
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self._max_body_size:
            raise Refused(too_large(self._max_body_size))
        # Chunk by chunk, so that a chunked body stops at the cap.
        body = await read_capped(request.stream(), self._max_body_size)
        # Where request.body() keeps the body it read, so the endpoint can still read it.
        request._body = body
        return verification_token_body(gate, body)


class ParaAuth(_RequiredClaims):
    """Para authentication for a FastAPI app.

    ``Depends(auth)`` yields the verified ``ParaClaims``;
    ``Depends(auth.require(wallet_types={"EVM"}))`` adds requirements;
    ``Depends(auth.optional)`` yields ``ParaClaims | None`` (no credentials:
    ``None``; bad ones: refused); ``Depends(auth.session)`` yields Para's
    ``SessionInfo`` for a verification token.
    """

    def __init__(
        self,
        verifier: ParaVerifier,
        *,
        api: ParaAPI | None = None,
        realm: str = "para",
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        warm_up: bool = False,
    ) -> None:
        """Set up the dependencies.

        Args:
            verifier: Verifies the tokens. ``lifespan`` closes it.
            api: The ``ParaAPI`` for ``auth.session``; ``lifespan`` closes it.
                Default ``None``: no session checks.
            realm: The ``WWW-Authenticate`` realm. Default ``"para"``.
            max_body_size: ``auth.session`` reads a JSON body (to find
                ``verificationToken``) only up to this many bytes, chunk by chunk;
                a larger one is refused with 413. Default 64 KiB.
            warm_up: ``lifespan`` fetches Para's keys at startup, so the first
                request does not wait for them; a failure is logged and the keys
                are fetched on demand. Default ``False``.

        Raises:
            ConfigurationError: For a wrong type or value.
        """
        if not isinstance(verifier, ParaVerifier):
            raise ConfigurationError(
                f"ParaAuth(verifier) must be a ParaVerifier, not {type(verifier).__name__}"
            )
        if api is not None and not isinstance(api, ParaAPI):
            raise ConfigurationError(
                f"ParaAuth(api=...) must be a ParaAPI, not {type(api).__name__}"
            )
        if type(warm_up) is not bool:
            raise ConfigurationError("ParaAuth(warm_up=...) must be True or False")
        self.gate = Gate(check_realm(realm))
        super().__init__(verifier, self.gate, Requirements(), optional=False)
        self.verifier = verifier
        self.api = api
        self._warm_up = warm_up
        self.optional = _OptionalClaims(verifier, self.gate, Requirements(), optional=True)
        self.session = _Session(self, check_max_body_size(max_body_size))

    def require(
        self,
        *,
        auth_types: Iterable[AuthType | str] | None = None,
        wallet_types: Iterable[WalletType | str] | None = None,
        require_wallet: bool = False,
        **unknown: object,
    ) -> _RequiredClaims:
        """A dependency yielding the claims of users who meet these requirements.

        Args:
            auth_types: Accept only users who signed in this way, e.g.
                ``{"email", "phone"}``. Default ``None``: any way.
            wallet_types: Accept only users with a Para-custodied wallet of one of
                these chains, e.g. ``{"EVM"}``. Connected wallets do not count.
                Default ``None``: any chain, or none.
            require_wallet: Accept only users with a Para-custodied wallet.
            **unknown: Refused, with the nearest option's name.

        Returns:
            The dependency: ``Depends(auth.require(...))``.

        Raises:
            ConfigurationError: For an unknown option or value (a typo would
                otherwise refuse everyone).
        """
        refuse_unknown("ParaAuth.require", unknown, _REQUIRE_OPTIONS)
        requirements = Requirements.build(auth_types, wallet_types, require_wallet)
        return _RequiredClaims(self.verifier, self.gate, requirements, optional=False)

    def install(self, app: FastAPI) -> None:
        """Answer ``ParaRefusal`` with ``refusal_handler``: the JSON body of every
        para_jwt adapter, instead of FastAPI's ``{"detail": ...}``."""
        app.add_exception_handler(ParaRefusal, refusal_handler)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        """``FastAPI(lifespan=auth.lifespan)``: warm up (if asked), close at shutdown.

        Args:
            app: The app (unused; FastAPI passes it).

        Yields:
            While the app runs.
        """
        async with contextlib.AsyncExitStack() as stack:
            # Both are closed even if the other's close() fails.
            stack.push_async_callback(self.verifier.close)
            if self.api is not None:
                stack.push_async_callback(self.api.close)
            if self._warm_up:
                await self._fetch_keys()
            yield

    async def _fetch_keys(self) -> None:
        try:
            await self.verifier.refresh()
        except ParaJWTError as exc:
            logger.warning("Para's keys could not be fetched at startup: %s", exc)

    def __repr__(self) -> str:
        return f"ParaAuth({self.verifier!r}, realm={self.gate.realm!r})"
