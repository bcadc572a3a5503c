"""Every framework adapter refuses alike: one request matrix, sent to an aiohttp, a
Starlette and a FastAPI app, each with its own ParaVerifier against its own MockPara
on loopback and the fake clock; status, WWW-Authenticate, Retry-After and the body
must be the same bytes.

A new adapter joins by adding its app factory to ``APPS``: an async context manager
that serves ``/me`` (any valid token) and ``/evm`` (a Para EVM wallet required) and
yields a ``Send``. The synchronous frameworks (Flask, Django over WSGI, DRF) are
driven from a worker thread: their verifier fetches keys from the MockPara that
this test's event loop serves, which must stay free meanwhile.
"""

import asyncio
import contextlib
import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import flask
import httpx
import para_django_project
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from django.test import AsyncClient, Client, override_settings
from fastapi import Depends, FastAPI
from multidict import CIMultiDict
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, request_response

from para_jwt import ParaClaims
from para_jwt.aiohttp import para_required, setup
from para_jwt.fastapi import ParaAuth
from para_jwt.flask import ParaJWT
from para_jwt.flask import para_required as flask_para_required
from para_jwt.starlette import ParaMiddleware
from para_jwt.testing import FakeClock, MockPara

para_django_project.configure()

Headers = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Answer:
    status: int
    www_authenticate: str | None
    retry_after: str | None
    body: bytes


Send = Callable[[str, Headers], Awaitable[Answer]]
AppFactory = Callable[[MockPara], contextlib.AbstractAsyncContextManager[Send]]


# --- the apps -------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def aiohttp_app(para: MockPara) -> AsyncIterator[Send]:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async with para.verifier() as verifier:
        app = web.Application()
        setup(app, verifier)
        app.router.add_get("/me", para_required(ok))
        app.router.add_get("/evm", para_required(wallet_types={"EVM"})(ok))
        async with TestClient(TestServer(app)) as client:

            async def send(path: str, headers: Headers) -> Answer:
                response = await client.get(path, headers=CIMultiDict(headers))
                return Answer(
                    response.status,
                    response.headers.get("WWW-Authenticate"),
                    response.headers.get("Retry-After"),
                    await response.read(),
                )

            yield send


@contextlib.asynccontextmanager
async def asgi_client(app: Any) -> AsyncIterator[Send]:
    """An ASGI app driven by httpx in the test's own event loop."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as client:

        async def send(path: str, headers: Headers) -> Answer:
            response = await client.get(path, headers=list(headers))
            return Answer(
                response.status_code,
                response.headers.get("WWW-Authenticate"),
                response.headers.get("Retry-After"),
                response.content,
            )

        yield send


@contextlib.asynccontextmanager
async def starlette_app(para: MockPara) -> AsyncIterator[Send]:
    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async with para.verifier() as verifier:
        # Per-route requirements: each route's ASGI app wrapped in its own middleware.
        app = Starlette(
            routes=[
                Route("/me", ParaMiddleware(request_response(ok), verifier=verifier)),
                Route(
                    "/evm",
                    ParaMiddleware(request_response(ok), verifier=verifier, wallet_types={"EVM"}),
                ),
            ]
        )
        async with asgi_client(app) as send:
            yield send


@contextlib.asynccontextmanager
async def fastapi_app(para: MockPara) -> AsyncIterator[Send]:
    async with para.verifier() as verifier:
        auth = ParaAuth(verifier)
        app = FastAPI()
        auth.install(app)

        @app.get("/me", response_class=PlainTextResponse)
        async def me(claims: Annotated[ParaClaims, Depends(auth)]) -> str:
            return "ok"

        @app.get("/evm", response_class=PlainTextResponse)
        async def evm(
            claims: Annotated[ParaClaims, Depends(auth.require(wallet_types={"EVM"}))],
        ) -> str:
            return "ok"

        async with asgi_client(app) as send:
            yield send


def joined(headers: Headers) -> dict[str, str]:
    """``headers`` as a WSGI environ (gunicorn, wsgiref) or Django's ASGI handler has
    them: a repeated header is one value, comma-joined."""
    values: dict[str, list[str]] = {}
    for name, value in headers:
        values.setdefault(name, []).append(value)
    return {name: ",".join(parts) for name, parts in values.items()}


@contextlib.asynccontextmanager
async def flask_app(para: MockPara) -> AsyncIterator[Send]:
    def ok() -> str:
        return "ok"

    verifier = para.sync_verifier()
    app = flask.Flask("refusals")
    ParaJWT(app, verifier=verifier)
    app.add_url_rule("/me", "me", flask_para_required(ok))
    app.add_url_rule("/evm", "evm", flask_para_required(wallet_types={"EVM"})(ok))
    client = app.test_client()

    async def send(path: str, headers: Headers) -> Answer:
        response = await asyncio.to_thread(client.get, path, headers=joined(headers))
        return Answer(
            response.status_code,
            response.headers.get("WWW-Authenticate"),
            response.headers.get("Retry-After"),
            response.get_data(),
        )

    try:
        yield send
    finally:
        await close_in_thread(verifier.close)


async def close_in_thread(close: Callable[[], None]) -> None:
    # SyncParaVerifier.close() stops its background loop with run_until_complete,
    # which raises in a thread whose own event loop runs (this test's): a thread
    # without one closes it. (Overriding PARA_JWT closes the verifier it replaces.)
    await asyncio.to_thread(close)


@contextlib.asynccontextmanager
async def para_jwt_setting(para: MockPara) -> AsyncIterator[None]:
    override = override_settings(PARA_JWT=para_django_project.para_jwt_for(para))
    override.enable()
    try:
        yield
    finally:
        await close_in_thread(override.disable)


def django_answer(response: Any) -> Answer:
    return Answer(
        response.status_code,
        response.headers.get("WWW-Authenticate"),
        response.headers.get("Retry-After"),
        response.content,
    )


def django_wsgi(prefix: str) -> AppFactory:
    """Sync views under ``prefix`` of the test project, through Django's WSGI Client."""

    @contextlib.asynccontextmanager
    async def app(para: MockPara) -> AsyncIterator[Send]:
        async with para_jwt_setting(para):
            client = Client()

            async def send(path: str, headers: Headers) -> Answer:
                get = functools.partial(client.get, prefix + path, headers=joined(headers))
                return django_answer(await asyncio.to_thread(get))

            yield send

    return app


@contextlib.asynccontextmanager
async def django_asgi_app(para: MockPara) -> AsyncIterator[Send]:
    """Async views, through Django's ASGI handler in this test's event loop."""
    async with para_jwt_setting(para):
        client = AsyncClient()

        async def send(path: str, headers: Headers) -> Answer:
            return django_answer(await client.get("/async" + path, headers=joined(headers)))

        yield send


APPS: dict[str, AppFactory] = {
    "aiohttp": aiohttp_app,
    "starlette": starlette_app,
    "fastapi": fastapi_app,
    "flask": flask_app,
    "django": django_wsgi("/sync"),
    "django-asgi": django_asgi_app,
    # DRF views with para_jwt's documented EXCEPTION_HANDLER (test_drf.py shows DRF's
    # own handler: the same JSON, written compactly).
    "drf": django_wsgi("/matrix"),
}


# --- the requests ---------------------------------------------------------------------


def bearer(token: str) -> Headers:
    return [("Authorization", f"Bearer {token}")]


def spliced(token: str, other: str) -> str:
    """``token``'s header and payload with ``other``'s signature (same key)."""
    return token.rsplit(".", 1)[0] + "." + other.rsplit(".", 1)[1]


async def keys_stale_past_max_stale(para: MockPara, clock: FakeClock, send: Send) -> Headers:
    # Keys fetched, then Para goes down: the last good set serves for max_stale
    # (an hour by default) past its expiry, then the verifier fails closed.
    assert (await send("/me", bearer(para.issue_jwt(expires_in=86_400)))).status == 200
    para.down()
    clock.advance(600)
    stale = await send("/me", bearer(para.issue_jwt(expires_in=86_400)))
    assert stale.status == 200
    clock.advance(3600 + 1)
    # A token not seen before, so no verified-token cache can answer for it.
    return bearer(para.issue_jwt(expires_in=86_400))


async def keys_unreachable(para: MockPara, clock: FakeClock, send: Send) -> Headers:
    para.down()
    return bearer(para.issue_jwt())


Scenario = Callable[[MockPara, FakeClock, Send], Awaitable[Headers]]


def static(make: Callable[[MockPara, FakeClock], Headers]) -> Scenario:
    async def scenario(para: MockPara, clock: FakeClock, send: Send) -> Headers:
        return make(para, clock)

    return scenario


def challenge(error: str, description: str) -> str:
    return f'Bearer realm="para", error="{error}", error_description="{description}"'


def body(error: str, description: str) -> bytes:
    return f'{{"error": "{error}", "error_description": "{description}"}}'.encode()


NO_TOKEN = Answer(
    401, 'Bearer realm="para"', None, body("missing_token", "This route requires a Para token")
)
MALFORMED = Answer(
    400,
    challenge("invalid_request", "The Authorization header must be 'Bearer <token>'"),
    None,
    body("invalid_request", "The Authorization header must be 'Bearer <token>'"),
)
UNAVAILABLE = body("temporarily_unavailable", "Para is unavailable; try again later")


def invalid(description: str) -> Answer:
    return Answer(
        401, challenge("invalid_token", description), None, body("invalid_token", description)
    )


MATRIX: dict[str, tuple[str, Scenario, Answer]] = {
    "no header": ("/me", static(lambda para, clock: []), NO_TOKEN),
    "Basic": (
        "/me",
        static(lambda para, clock: [("Authorization", "Basic dXNlcjpwYXNz")]),
        NO_TOKEN,
    ),
    "Bearer with two tokens": ("/me", static(lambda para, clock: bearer("a b")), MALFORMED),
    "two Authorization headers": (
        "/me",
        static(lambda para, clock: [*bearer(para.issue_jwt()), *bearer(para.issue_jwt())]),
        MALFORMED,
    ),
    "expired": (
        "/me",
        static(lambda para, clock: bearer(para.issue_jwt(issued_at=clock.now - 3600))),
        invalid("The token has expired"),
    ),
    "wrong aud": (
        "/me",
        static(lambda para, clock: bearer(para.issue_jwt(audience=str(uuid.uuid4())))),
        invalid("The token was issued for another application"),
    ),
    "bad signature": (
        "/me",
        static(lambda para, clock: bearer(spliced(para.issue_jwt("a"), para.issue_jwt("b")))),
        invalid("The token's signature is invalid"),
    ),
    "missing wallet type": (
        "/evm",
        static(lambda para, clock: bearer(para.issue_jwt(wallets=[]))),
        Answer(
            403,
            challenge("insufficient_scope", "This route requires a Para EVM wallet"),
            None,
            body("insufficient_scope", "This route requires a Para EVM wallet"),
        ),
    ),
    "keys unreachable": ("/me", keys_unreachable, Answer(503, None, "1", UNAVAILABLE)),
    "keys stale past max_stale": (
        "/me",
        keys_stale_past_max_stale,
        # The second failed fetch of the outage: the cache's backoff is now 2 s.
        Answer(503, None, "2", UNAVAILABLE),
    ),
}


@pytest.mark.parametrize("case", list(MATRIX))
async def test_every_adapter_refuses_with_the_same_bytes(case: str) -> None:
    path, scenario, expected = MATRIX[case]
    answers: dict[str, Answer] = {}
    for name, factory in APPS.items():
        clock = FakeClock(1_800_000_000.0)
        async with MockPara(clock=clock) as para, factory(para) as send:
            headers = await scenario(para, clock, send)
            answers[name] = await send(path, headers)
    assert answers == dict.fromkeys(APPS, expected)


async def test_every_adapter_lets_a_valid_token_through() -> None:
    for name, factory in APPS.items():
        async with MockPara(clock=FakeClock(1_800_000_000.0)) as para, factory(para) as send:
            for path in ("/me", "/evm"):
                answer = await send(path, bearer(para.issue_jwt()))
                assert (name, answer.status, answer.body) == (name, 200, b"ok")
