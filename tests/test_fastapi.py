"""para_jwt.fastapi: ParaAuth dependencies in real FastAPI apps, driven by httpx in
the test's loop (and Starlette's TestClient, in its thread, for the lifespan), with
a real ParaVerifier / ParaAPI against MockPara on loopback and the fake clock.

No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations,
which name dependencies local to each test."""

import asyncio
import contextlib
import json
import re
import subprocess
import sys
import traceback
import tracemalloc
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from starlette.testclient import TestClient

from para_jwt import (
    ConfigurationError,
    JWKSUnavailableError,
    ParaAPI,
    ParaClaims,
    ParaUnavailableError,
    ParaVerifier,
    SessionInfo,
)
from para_jwt.fastapi import ParaAuth, ParaRefusal, refusal_handler
from para_jwt.testing import FakeClock, MockPara


@pytest.fixture
async def para(clock: FakeClock) -> AsyncIterator[MockPara]:
    async with MockPara(clock=clock) as mock:
        yield mock


@pytest.fixture
async def verifier(para: MockPara) -> AsyncIterator[ParaVerifier]:
    async with para.verifier() as verifier:
        yield verifier


@pytest.fixture
async def api(para: MockPara) -> AsyncIterator[ParaAPI]:
    async with para.api() as api:
        yield api


@contextlib.asynccontextmanager
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as http:
        yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def protected_app(auth: ParaAuth, *, install: bool = True) -> FastAPI:
    app = FastAPI()
    if install:
        auth.install(app)

    @app.get("/me")
    async def me(claims: Annotated[ParaClaims, Depends(auth)]) -> dict[str, str]:
        return {"user_id": claims.user_id}

    @app.get("/maybe")
    async def maybe(claims: Annotated[ParaClaims | None, Depends(auth.optional)]) -> dict:
        return {"user_id": claims.user_id if claims else None}

    @app.get("/phone")
    async def phone(
        claims: Annotated[ParaClaims, Depends(auth.require(auth_types={"phone"}))],
    ) -> dict[str, str]:
        return {"user_id": claims.user_id}

    @app.get("/open")
    async def open_route() -> dict[str, bool]:
        return {"ok": True}

    return app


async def test_depends_auth_yields_the_verified_claims(
    para: MockPara, verifier: ParaVerifier
) -> None:
    async with client(protected_app(ParaAuth(verifier))) as http:
        response = await http.get("/me", headers=bearer(para.issue_jwt("user-1")))
        assert response.json() == {"user_id": "user-1"}
        missing = await http.get("/me")
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"] == 'Bearer realm="para"'
        assert missing.json() == {
            "error": "missing_token",
            "error_description": "This route requires a Para token",
        }


async def test_optional_yields_none_without_credentials_and_refuses_bad_ones(
    para: MockPara, verifier: ParaVerifier
) -> None:
    async with client(protected_app(ParaAuth(verifier))) as http:
        assert (await http.get("/maybe")).json() == {"user_id": None}
        basic = await http.get("/maybe", headers={"Authorization": "Basic dXNlcjpwYXNz"})
        assert basic.json() == {"user_id": None}  # another scheme: no Para credentials
        signed_in = await http.get("/maybe", headers=bearer(para.issue_jwt("user-2")))
        assert signed_in.json() == {"user_id": "user-2"}
        expired = await http.get("/maybe", headers=bearer(para.issue_jwt(expires_in=-60)))
        assert expired.status_code == 401
        assert expired.json()["error"] == "invalid_token"


async def test_require_takes_para_required_s_options(
    para: MockPara, verifier: ParaVerifier
) -> None:
    async with client(protected_app(ParaAuth(verifier))) as http:
        email = await http.get("/phone", headers=bearer(para.issue_jwt(auth_type="email")))
        assert email.status_code == 403
        assert email.headers["WWW-Authenticate"] == (
            'Bearer realm="para", error="insufficient_scope", '
            'error_description="This route requires signing in with phone"'
        )
        phone = await http.get("/phone", headers=bearer(para.issue_jwt("u", auth_type="phone")))
        assert phone.json() == {"user_id": "u"}


async def test_without_install_fastapi_s_own_handler_keeps_status_and_headers(
    para: MockPara, verifier: ParaVerifier
) -> None:
    async with client(protected_app(ParaAuth(verifier, realm="shop"), install=False)) as http:
        response = await http.get("/me", headers=bearer(para.issue_jwt(expires_in=-60)))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="shop", error="invalid_token", error_description="The token has expired"'
    )
    assert response.json() == {
        "detail": {"error": "invalid_token", "error_description": "The token has expired"}
    }


async def test_the_openapi_schema_declares_the_bearer_scheme_and_the_padlocks(
    verifier: ParaVerifier,
) -> None:
    async with client(protected_app(ParaAuth(verifier))) as http:
        schema = (await http.get("/openapi.json")).json()
    assert schema["components"]["securitySchemes"] == {
        "ParaBearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A Para session JWT: Authorization: Bearer <token>",
        }
    }
    paths = schema["paths"]
    for path in ("/me", "/maybe", "/phone"):
        assert paths[path]["get"]["security"] == [{"ParaBearer": []}], path
    assert "security" not in paths["/open"]["get"]
    # No parameter leaks from the dependencies into the operations.
    assert all("parameters" not in paths[path]["get"] for path in paths)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda v: ParaAuth(None), "ParaAuth(verifier) must be a ParaVerifier"),
        (lambda v: ParaAuth(v, api="secret"), "ParaAuth(api=...) must be a ParaAPI"),
        (lambda v: ParaAuth(v, realm='a"b'), "realm"),
        (lambda v: ParaAuth(v, max_body_size=0), "max_body_size"),
        (lambda v: ParaAuth(v, warm_up="yes"), "warm_up"),
        (lambda v: ParaAuth(v).require(wallet_type={"EVM"}), "did you mean 'wallet_types'"),
        (lambda v: ParaAuth(v).require(wallet_types={"EMV"}), "wallet_types"),
        (lambda v: ParaAuth(v).require(auth_types="email"), "auth_types"),
    ],
)
def test_misconfiguration_fails_at_construction(call: Any, message: str) -> None:
    verifier = ParaVerifier("00000000-0000-4000-8000-000000000000", environment="beta")
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        call(verifier)


async def test_a_refusal_is_an_http_exception_carrying_the_rejection(
    para: MockPara, verifier: ParaVerifier
) -> None:
    caught: list[ParaRefusal] = []
    auth = ParaAuth(verifier)
    app = protected_app(auth)

    @app.exception_handler(ParaRefusal)
    async def mine(request: Request, exc: ParaRefusal) -> Any:
        caught.append(exc)
        return await refusal_handler(request, exc)

    async with client(app) as http:
        response = await http.get("/me", headers=bearer("a b"))
    [refusal] = caught
    assert (refusal.status_code, refusal.rejection.reason) == (400, "malformed_header")
    assert response.content == refusal.rejection.body


# --- Para sessions --------------------------------------------------------------------


def session_app(auth: ParaAuth) -> FastAPI:
    app = FastAPI()
    auth.install(app)

    @app.post("/login")
    async def login(
        request: Request, session: Annotated[SessionInfo, Depends(auth.session)]
    ) -> dict[str, Any]:
        body = await request.body()  # still readable after the dependency read it
        return {"identifier": session.identifier, "body": json.loads(body) if body else None}

    return app


async def test_session_from_the_header_or_a_json_body(
    para: MockPara, verifier: ParaVerifier, api: ParaAPI
) -> None:
    token = para.issue_verification_token(identifier="ada@example.com")
    async with client(session_app(ParaAuth(verifier, api=api))) as http:
        by_header = await http.post("/login", headers={"X-Para-Verification-Token": token})
        assert by_header.json() == {"identifier": "ada@example.com", "body": None}
        document = {"verificationToken": token, "remember": True}
        by_body = await http.post("/login", json=document)
        assert by_body.json() == {"identifier": "ada@example.com", "body": document}
        missing = await http.post("/login", json={"other": 1})
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"] == 'ParaVerificationToken realm="para"'
    assert para.sessions_requests == 2


async def test_the_session_scheme_is_in_the_openapi_schema(
    verifier: ParaVerifier, api: ParaAPI
) -> None:
    async with client(session_app(ParaAuth(verifier, api=api))) as http:
        schema = (await http.get("/openapi.json")).json()
    scheme = schema["components"]["securitySchemes"]["ParaVerificationToken"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == (
        "apiKey",
        "header",
        "X-Para-Verification-Token",
    )
    assert schema["paths"]["/login"]["post"]["security"] == [{"ParaVerificationToken": []}]


async def test_a_streamed_body_past_the_cap_is_refused_with_memory_bounded_by_it(
    para: MockPara, verifier: ParaVerifier, api: ParaAPI
) -> None:
    # 64 MiB offered in 256 KiB chunks without Content-Length; the cap is 64 KiB.
    chunk = b" " * (256 * 1024)
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"verificationToken": "x", "padding": "'
        for _ in range(256):
            sent += len(chunk)
            yield chunk

    auth = ParaAuth(verifier, api=api, max_body_size=64 * 1024)
    async with client(session_app(auth)) as http:
        tracemalloc.start()
        try:
            response = await http.post(
                "/login", content=body(), headers={"Content-Type": "application/json"}
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert response.status_code == 413
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "The request body is larger than 65536 bytes",
    }
    assert sent <= 2 * len(chunk)  # reading stopped at the cap
    assert peak < 4 * 1024 * 1024
    assert para.sessions_requests == 0


async def test_a_declared_length_past_the_cap_is_refused_before_reading(
    verifier: ParaVerifier, api: ParaAPI
) -> None:
    auth = ParaAuth(verifier, api=api, max_body_size=100)
    async with client(session_app(auth)) as http:
        response = await http.post("/login", json={"verificationToken": "x" * 200})
    assert response.status_code == 413


async def test_a_session_dependency_without_an_api_is_a_configuration_error(
    verifier: ParaVerifier,
) -> None:
    async with client(session_app(ParaAuth(verifier))) as http:
        with pytest.raises(ConfigurationError, match=re.escape("ParaAuth.session needs a ParaAPI")):
            await http.post("/login", headers={"X-Para-Verification-Token": "x"})


# --- the lifespan ---------------------------------------------------------------------


def serve(app: FastAPI, requests: list[tuple[str, dict[str, str]]]) -> list[int]:
    """Start the app (lifespan included) in TestClient's thread, send, stop it."""
    with TestClient(app) as test_client:
        return [test_client.get(path, headers=headers).status_code for path, headers in requests]


async def test_the_lifespan_warms_up_the_keys_and_closes_the_verifier_and_the_api(
    para: MockPara,
) -> None:
    # Made here but used only in the app's own loop (TestClient's thread).
    verifier, api = para.verifier(), para.api()
    auth = ParaAuth(verifier, api=api, warm_up=True)
    app = protected_app(auth)
    app.router.lifespan_context = auth.lifespan

    statuses = await asyncio.to_thread(serve, app, [("/me", bearer(para.issue_jwt()))])

    assert statuses == [200]
    assert para.jwks_requests == 1  # at startup: the request found the keys cached
    with pytest.raises(JWKSUnavailableError, match="closed"):
        await verifier.refresh()
    with pytest.raises(ParaUnavailableError, match="closed"):
        await api.verify_session(para.issue_verification_token())


async def test_a_warm_up_that_fails_is_logged_and_the_app_starts(
    para: MockPara, caplog: pytest.LogCaptureFixture
) -> None:
    para.down()
    auth = ParaAuth(para.verifier(), warm_up=True)
    app = protected_app(auth)
    app.router.lifespan_context = auth.lifespan

    statuses = await asyncio.to_thread(serve, app, [("/open", {})])

    assert statuses == [200]
    assert "Para's keys could not be fetched at startup" in caplog.text


# --- imports --------------------------------------------------------------------------


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - this interpreter, our own code
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_importing_para_jwt_imports_no_web_framework() -> None:
    result = run_python(
        "import sys, para_jwt\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette')"
        " or m.startswith('aiohttp.web')]\n"
        "print(loaded)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("module", "missing", "extra"),
    [
        ("para_jwt.fastapi", "fastapi", "fastapi"),
        ("para_jwt.starlette", "starlette", "starlette"),
        ("para_jwt.fastapi", "starlette", "fastapi"),
    ],
)
def test_an_adapter_without_its_extra_names_the_pip_command(
    module: str, missing: str, extra: str
) -> None:
    # sys.modules[name] = None makes `import name` fail as if it were not installed.
    result = run_python(
        f"import sys\nsys.modules[{missing!r}] = None\n"
        f"try:\n    import {module}\nexcept ImportError as exc:\n    print(exc)\n"
    )
    assert result.returncode == 0, result.stderr
    assert f"pip install 'para-jwt[{extra}]'" in result.stdout


# --- the example ----------------------------------------------------------------------


async def test_the_example_app_runs_against_mock_para(para: MockPara, clock: FakeClock) -> None:
    from examples.fastapi_app import create_app

    async with para.verifier() as verifier, para.api() as api:
        app = create_app(verifier, api)
        evm = MockPara.make_wallet("EVM")
        token = para.issue_jwt("user-11", wallets=[evm])
        telegram = para.issue_jwt(auth_type="telegram", identifier="@ada")
        async with client(app) as http:
            assert (await http.get("/health")).json() == {"ok": True}
            assert (await http.get("/me")).status_code == 401
            me = await http.get("/me", headers=bearer(token))
            assert me.json() == {"user_id": "user-11", "evm": evm["address"]}
            assert (await http.get("/public/greeting")).json() == {"hello": "stranger"}
            greeting = await http.get("/public/greeting", headers=bearer(token))
            assert greeting.json() == {"hello": "user-11"}
            assert (await http.post("/trades", headers=bearer(token))).status_code == 201
            assert (await http.post("/trades", headers=bearer(telegram))).status_code == 403
            login_token = para.issue_verification_token(identifier="ada@example.com")
            login = await http.post("/login", json={"verificationToken": login_token})
            assert login.json() == {"signed_in_as": "ada@example.com"}


# --- secret hygiene -------------------------------------------------------------------


def everything_an_error_reporter_sees(error: BaseException) -> str:
    """Each exception of the chain, and the locals of para_jwt's frames in their
    tracebacks (FastAPI's own frames hold the ASGI scope, headers included, in any
    dependency's traceback: not ours to hide)."""
    texts = []
    current: BaseException | None = error
    while current is not None:
        texts += [str(current), repr(current), repr(vars(current))]
        report = traceback.TracebackException.from_exception(current, capture_locals=True)
        texts += [f"{f.name} {f.locals}" for f in report.stack if "/para_jwt/" in f.filename]
        current = current.__cause__ or current.__context__
    return "\n".join(texts)


async def test_no_token_is_reachable_from_a_refusal(para: MockPara, verifier: ParaVerifier) -> None:
    caught: list[ParaRefusal] = []
    reports: list[str] = []
    auth = ParaAuth(verifier)
    app = protected_app(auth)

    @app.exception_handler(ParaRefusal)
    async def keep(request: Request, exc: ParaRefusal) -> Any:
        caught.append(exc)
        reports.append(everything_an_error_reporter_sees(exc))
        return await refusal_handler(request, exc)

    token = para.issue_jwt(expires_in=-60)
    requests = [bearer(token), bearer(f"{token} {token}"), {"Authorization": f"Basic {token}"}]
    async with client(app) as http:
        for headers in requests:
            await http.get("/me", headers=headers)
        para.down()
        fresh = para.issue_jwt()
        await http.get("/me", headers=bearer(fresh))
    assert [refusal.status_code for refusal in caught] == [401, 400, 401, 503]
    shown = "\n".join(reports)
    assert "_claims" in shown  # the frames' locals were captured
    for secret in (token, fresh, token.split(".")[2], fresh.split(".")[2]):
        assert secret not in shown
