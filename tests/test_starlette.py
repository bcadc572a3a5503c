"""para_jwt.starlette: ParaMiddleware in front of real Starlette apps, driven by httpx
(HTTP, in the test's loop) and Starlette's TestClient (WebSocket, in its own thread),
with a real ParaVerifier against MockPara on loopback and the fake clock."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from para_jwt import ConfigurationError, ParaVerifier
from para_jwt.starlette import ParaMiddleware, get_claims, get_claims_or_none
from para_jwt.testing import FakeClock, MockPara


@pytest.fixture
async def para(clock: FakeClock) -> AsyncIterator[MockPara]:
    async with MockPara(clock=clock) as mock:
        yield mock


@pytest.fixture
async def verifier(para: MockPara) -> AsyncIterator[ParaVerifier]:
    async with para.verifier() as verifier:
        yield verifier


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse({"user_id": get_claims(request).user_id})


async def maybe_whoami(request: Request) -> JSONResponse:
    claims = get_claims_or_none(request)
    return JSONResponse({"user_id": claims.user_id if claims else None})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def echo_user(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"user_id": get_claims(websocket).user_id})
    await websocket.close()


def app(verifier: ParaVerifier, *, close: bool = False, **options: Any) -> Starlette:
    """The app; with ``close``, its lifespan closes the verifier (in the app's loop)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if close:
            await verifier.close()

    return Starlette(
        lifespan=lifespan,
        routes=[
            Route("/me", whoami),
            Route("/health", health),
            Route("/public/feed", maybe_whoami),
            Route("/files/{name:path}", health),
            WebSocketRoute("/ws", echo_user),
        ],
        middleware=[Middleware(ParaMiddleware, verifier=verifier, **options)],
    )


@contextlib.asynccontextmanager
async def client(asgi: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as http:
        yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_valid_token_reaches_the_handler_with_its_claims(
    para: MockPara, verifier: ParaVerifier
) -> None:
    async with client(app(verifier)) as http:
        response = await http.get("/me", headers=bearer(para.issue_jwt("user-1")))
        assert response.json() == {"user_id": "user-1"}
        assert (await http.get("/me")).status_code == 401


async def test_excluded_and_optional_paths_as_para_middleware_matches_them(
    para: MockPara, verifier: ParaVerifier
) -> None:
    asgi = app(verifier, exclude=["/health", "/files/public/*"], optional=["/public/*"])
    async with client(asgi) as http:
        assert (await http.get("/health")).status_code == 200
        assert (await http.get("/health?x=1")).status_code == 200  # the query is not the path
        assert (await http.get("/files/public/a.txt")).status_code == 200
        # The router decodes %2F, the pattern matches the path as sent: protected.
        assert (await http.get("/files%2Fpublic/a.txt")).status_code == 401
        assert (await http.get("/public/feed")).json() == {"user_id": None}
        signed_in = await http.get("/public/feed", headers=bearer(para.issue_jwt("user-2")))
        assert signed_in.json() == {"user_id": "user-2"}
        # A token that is sent but invalid is refused, even where anonymous is fine.
        expired = await http.get("/public/feed", headers=bearer(para.issue_jwt(expires_in=-60)))
        assert expired.status_code == 401
        assert expired.json()["error"] == "invalid_token"


async def test_exclude_if_decides_per_request(verifier: ParaVerifier) -> None:
    asgi = app(verifier, exclude_if=lambda request: request.method == "OPTIONS")
    async with client(asgi) as http:
        assert (await http.get("/me")).status_code == 401
        # Past the middleware: the route has no OPTIONS handler.
        assert (await http.options("/me")).status_code == 405


async def test_middleware_wide_requirements(para: MockPara, verifier: ParaVerifier) -> None:
    async with client(app(verifier, auth_types={"phone"})) as http:
        response = await http.get("/me", headers=bearer(para.issue_jwt(auth_type="email")))
        assert response.status_code == 403
        assert response.json() == {
            "error": "insufficient_scope",
            "error_description": "This route requires signing in with phone",
        }
        assert (
            await http.get("/me", headers=bearer(para.issue_jwt(auth_type="phone")))
        ).status_code == 200


async def test_get_claims_without_authentication_is_a_configuration_error(
    verifier: ParaVerifier,
) -> None:
    async def strict(request: Request) -> JSONResponse:
        get_claims(request)
        return JSONResponse({})  # pragma: no cover - get_claims raises

    asgi = Starlette(
        routes=[Route("/health", strict)],
        middleware=[Middleware(ParaMiddleware, verifier=verifier, exclude=["/health"])],
    )
    async with client(asgi) as http:
        with pytest.raises(ConfigurationError, match="no Para authentication ran"):
            await http.get("/health")


async def test_each_refusal_is_one_log_line_without_the_token(
    para: MockPara, verifier: ParaVerifier, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="para_jwt.starlette")
    token = para.issue_jwt(expires_in=-60)
    async with client(app(verifier)) as http:
        await http.get("/me?session=secret", headers=bearer(token))
    records = [r for r in caplog.records if r.name == "para_jwt.starlette"]
    assert [r.getMessage() for r in records] == ["GET /me: 401 invalid_token (expired)"]
    assert token not in caplog.text


@pytest.mark.parametrize(
    "options",
    [
        {"verifier": None},
        {"exclude": "/health"},
        {"optional": ["health"]},
        {"wallet_types": {"EMV"}},
        {"realm": 'a"b'},
        {"exclude_if": True},
    ],
)
def test_misconfiguration_fails_at_construction(
    options: dict[str, Any], verifier_options: dict[str, Any]
) -> None:
    settings = {**verifier_options, **options}
    with pytest.raises(ConfigurationError):
        ParaMiddleware(health, **settings)


@pytest.fixture
def verifier_options() -> dict[str, Any]:
    return {"verifier": ParaVerifier("00000000-0000-4000-8000-000000000000", environment="beta")}


# --- WebSocket: authenticated at the handshake --------------------------------------


def websocket_attempt(asgi: Starlette, headers: dict[str, str]) -> Any:
    """Connect through Starlette's TestClient; what the server sent, or the close."""
    with TestClient(asgi) as test_client:
        try:
            with test_client.websocket_connect("/ws", headers=headers) as websocket:
                return websocket.receive_json()
        except WebSocketDisconnect as closed:
            return closed


async def test_a_websocket_with_a_valid_token_is_accepted(para: MockPara) -> None:
    # The TestClient runs the app in its own thread and loop: the verifier is made
    # and closed there, and this loop stays free to serve MockPara.
    verifier = para.verifier()
    asgi = app(verifier, close=True)
    token = para.issue_jwt("user-ws")
    answer = await asyncio.to_thread(websocket_attempt, asgi, bearer(token))
    assert answer == {"user_id": "user-ws"}


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "This route requires a Para token"),
        ({"Authorization": "Bearer a b"}, "The Authorization header must be 'Bearer <token>'"),
        ("expired", "The token has expired"),
    ],
)
async def test_a_refused_websocket_is_closed_with_1008_before_accept(
    para: MockPara, headers: Any, reason: str
) -> None:
    if headers == "expired":
        headers = bearer(para.issue_jwt(expires_in=-60))
    asgi = app(para.verifier(), close=True)
    closed = await asyncio.to_thread(websocket_attempt, asgi, headers)
    assert isinstance(closed, WebSocketDisconnect)
    assert (closed.code, closed.reason) == (1008, reason)
