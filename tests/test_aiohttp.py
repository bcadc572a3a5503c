"""para_jwt.aiohttp over real HTTP: an aiohttp test server in front of a real
ParaVerifier / ParaAPI, both talking to MockPara on loopback, with the fake clock."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict
from pytest_aiohttp import AiohttpClient

from para_jwt import ConfigurationError, JWKSUnavailableError, ParaAPI, ParaVerifier
from para_jwt.aiohttp import (
    API_CLIENT_KEY,
    CLAIMS_KEY,
    VERIFIER_KEY,
    Rejection,
    default_error_handler,
    get_claims,
    get_claims_or_none,
    get_session,
    para_middleware,
    para_required,
    para_session_required,
    setup,
)
from para_jwt.testing import FakeClock, MockPara

Client = Any  # aiohttp.test_utils.TestClient[web.Request, web.Application]


@pytest.fixture
async def para(clock: FakeClock) -> AsyncIterator[MockPara]:
    async with MockPara(clock=clock) as mock:
        yield mock


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="para_jwt.aiohttp")
    return caplog


def messages(logs: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in logs.records if r.name == "para_jwt.aiohttp"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def para_app(
    para: MockPara,
    clock: FakeClock,
    *routes: web.RouteDef,
    middlewares: tuple[Any, ...] = (),
    **setup_options: Any,
) -> web.Application:
    """An app whose verifier setup() builds from settings, pointed at ``para``."""
    app = web.Application(middlewares=middlewares)
    setup(app, api_key_id=para.api_key_id, jwks_url=para.jwks_url, clock=clock, **setup_options)
    app.add_routes(routes)
    return app


async def whoami(request: web.Request) -> web.Response:
    claims = get_claims(request)
    return web.json_response({"user_id": claims.user_id, "auth_type": claims.auth_type})


async def maybe_whoami(request: web.Request) -> web.Response:
    claims = get_claims_or_none(request)
    return web.json_response({"user_id": claims.user_id if claims else None})


def challenge(error: str, description: str) -> str:
    return f'Bearer realm="para", error="{error}", error_description="{description}"'


async def assert_rejected(
    response: aiohttp.ClientResponse,
    status: int,
    error: str,
    *,
    www_authenticate: str | None,
    secret: str | None = None,
) -> str:
    """Assert the status, the JSON body and WWW-Authenticate; return the description."""
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "application/json"
    body = json.loads(text)
    assert set(body) == {"error", "error_description"}
    assert body["error"] == error
    assert response.headers.get("WWW-Authenticate") == www_authenticate
    if secret is not None:
        assert secret not in text
        assert secret not in str(response.headers)
    description: str = body["error_description"]
    return description


# --- the happy path ------------------------------------------------------------------


async def test_bare_decorator_lets_a_valid_token_through_with_typed_claims(
    para: MockPara, clock: FakeClock, aiohttp_client: AiohttpClient
) -> None:
    seen: list[Any] = []

    @para_required
    async def handler(request: web.Request) -> web.Response:
        seen.append(get_claims(request))
        seen.append(request[CLAIMS_KEY])
        return web.Response(text="ok")

    client = await aiohttp_client(para_app(para, clock, web.get("/me", handler)))
    token = para.issue_jwt("user-1", auth_type="phone")

    response = await client.get("/me", headers=bearer(token))

    assert response.status == 200
    claims, stored = seen
    assert claims is stored
    assert (claims.user_id, claims.auth_type) == ("user-1", "phone")
    assert para.jwks_requests == 1


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
async def test_the_scheme_is_case_insensitive(
    para: MockPara, clock: FakeClock, aiohttp_client: AiohttpClient, scheme: str
) -> None:
    client = await aiohttp_client(para_app(para, clock, web.get("/me", para_required(whoami))))
    response = await client.get("/me", headers={"Authorization": f"{scheme} {para.issue_jwt()}"})
    assert response.status == 200


async def test_parametrised_decorator_without_options_is_the_bare_one(
    para: MockPara, clock: FakeClock, aiohttp_client: AiohttpClient
) -> None:
    client = await aiohttp_client(para_app(para, clock, web.get("/me", para_required()(whoami))))
    assert (await client.get("/me")).status == 401
    response = await client.get("/me", headers=bearer(para.issue_jwt("user-2")))
    assert (await response.json())["user_id"] == "user-2"


async def test_class_based_views(
    para: MockPara, clock: FakeClock, aiohttp_client: AiohttpClient
) -> None:
    class Profile(web.View):
        @para_required
        async def get(self) -> web.Response:
            return web.json_response({"user_id": get_claims(self.request).user_id})

        @para_required(require_wallet=True)
        async def post(self) -> web.Response:
            return web.json_response({"wallets": len(get_claims(self.request).wallets)})

        async def delete(self) -> web.Response:  # not decorated: open
            return web.Response(text="open")

    client = await aiohttp_client(para_app(para, clock, web.view("/profile", Profile)))

    assert (await client.get("/profile")).status == 401
    response = await client.get("/profile", headers=bearer(para.issue_jwt("user-3")))
    assert await response.json() == {"user_id": "user-3"}
    response = await client.post("/profile", headers=bearer(para.issue_jwt()))
    assert await response.json() == {"wallets": 2}
    response = await client.post("/profile", headers=bearer(para.issue_jwt(wallets=[])))
    assert response.status == 403
    assert (await client.delete("/profile")).status == 200


async def test_methods_of_a_plain_handler_class(
    para: MockPara, clock: FakeClock, aiohttp_client: AiohttpClient
) -> None:
    class Handlers:
        @para_required
        async def me(self, request: web.Request) -> web.Response:
            return web.Response(text=get_claims(request).user_id)

    app = para_app(para, clock, web.get("/me", Handlers().me))
    client = await aiohttp_client(app)
    assert (await client.get("/me")).status == 401
    response = await client.get("/me", headers=bearer(para.issue_jwt("user-4")))
    assert await response.text() == "user-4"


async def test_a_setup_on_the_parent_app_covers_its_sub_apps(
    para: MockPara, clock: FakeClock, aiohttp_client: AiohttpClient
) -> None:
    app = para_app(para, clock)
    api = web.Application()
    api.router.add_get("/me", para_required(whoami))
    app.add_subapp("/api", api)
    client = await aiohttp_client(app)
    assert (await client.get("/api/me")).status == 401
    assert (await client.get("/api/me", headers=bearer(para.issue_jwt()))).status == 200


# --- the error mapping ----------------------------------------------------------------


async def test_no_credentials_is_a_401_challenge_without_an_error_code(
    para: MockPara, clock: FakeClock, aiohttp_client: AiohttpClient, logs: pytest.LogCaptureFixture
) -> None:
    client = await aiohttp_client(para_app(para, clock, web.get("/me", para_required(whoami))))

    response = await client.get("/me?session=secret-value")

    description = await assert_rejected(
        response, 401, "missing_token", www_authenticate='Bearer realm="para"'
    )
    assert description == "This route requires a Para token"
    [record] = [r for r in logs.records if r.name == "para_jwt.aiohttp"]
    assert record.levelno == logging.INFO
    assert record.getMessage() == "GET /me: 401 missing_token (no_token)"
    assert para.jwks_requests == 0


@pytest.mark.parametrize(
    "authorization",
    [
        ["Bearer"],
        ["bearer "],
        ["Bearer a b"],
        ["Bearer a,b"],
        ["Bearer {token} extra"],
        ["Basic dXNlcjpwYXNzd29yZA=="],
        ["Token {token}"],
        ["{token}"],
        [""],
        ["Bearer {token}", "Bearer {token}"],
    ],
)
async def test_a_malformed_authorization_header_is_a_400_invalid_request(
    para: MockPara,
    clock: FakeClock,
    aiohttp_client: AiohttpClient,
    logs: pytest.LogCaptureFixture,
    authorization: list[str],
) -> None:
    token = para.issue_jwt()
    client = await aiohttp_client(para_app(para, clock, web.get("/me", para_required(whoami))))
    headers = CIMultiDict(("Authorization", value.format(token=token)) for value in authorization)

    response = await client.get("/me", headers=headers)

    description = "The Authorization header must be 'Bearer <token>'"
    await assert_rejected(
        response,
        400,
        "invalid_request",
        www_authenticate=challenge("invalid_request", description),
        secret=token,
    )
    assert messages(logs) == [
        "GET /me: 400 invalid_request (malformed_header)"
    ]
    assert para.jwks_requests == 0


def spliced(token: str, other: str) -> str:
    """``token``'s header and payload with ``other``'s signature (same key)."""
    return token.rsplit(".", 1)[0] + "." + other.rsplit(".", 1)[1]


def retire_and_sign(para: MockPara) -> str:
    """A token signed by a key Para no longer publishes."""
    kid = para.publish_next()
    token = para.issue_jwt(kid=kid)
    para.retire(kid)
    return token


INVALID_TOKENS: dict[str, tuple[Callable[[MockPara, FakeClock], str], str]] = {
    "expired": (
        lambda para, clock: para.issue_jwt(issued_at=clock.now - 3600, expires_in=1800),
        "The token has expired",
    ),
    "not_yet_valid": (
        lambda para, clock: para.issue_jwt(nbf=int(clock.now) + 600),
        "The token is not valid yet",
    ),
    "invalid_audience": (
        lambda para, clock: para.issue_jwt(audience=str(uuid.uuid4())),
        "The token was issued for another application",
    ),
    "invalid_signature": (
        lambda para, clock: spliced(para.issue_jwt("user-a"), para.issue_jwt("user-b")),
        "The token's signature is invalid",
    ),
    "unknown_key": (
        lambda para, clock: retire_and_sign(para),
        "The token was signed with an unknown key",
    ),
    "malformed": (lambda para, clock: "not-a.jwt.at-all", "The token is malformed"),
    "unsupported_algorithm": (
        lambda para, clock: para.issue_jwt(alg="PS256"),
        "The token's signing algorithm is not accepted",
    ),
    "invalid_claims": (
        lambda para, clock: para.issue_jwt(sub="someone-else"),
        "The token's claims are invalid",
    ),
}


@pytest.mark.parametrize("reason", list(INVALID_TOKENS))
async def test_an_invalid_token_is_a_401_invalid_token_with_a_short_reason(
    para: MockPara,
    clock: FakeClock,
    aiohttp_client: AiohttpClient,
    logs: pytest.LogCaptureFixture,
    reason: str,
) -> None:
    make_token, description = INVALID_TOKENS[reason]
    client = await aiohttp_client(para_app(para, clock, web.get("/me", para_required(whoami))))
    await client.get("/me", headers=bearer(para.issue_jwt()))  # the keys are cached
    logs.clear()
    token = make_token(para, clock)

    response = await client.get("/me", headers=bearer(token))

    await assert_rejected(
        response,
        401,
        "invalid_token",
        www_authenticate=challenge("invalid_token", description),
        secret=token,
    )
    assert messages(logs) == [f"GET /me: 401 invalid_token ({reason})"]
    assert token not in logs.text


@pytest.mark.parametrize(
    ("options", "login", "description", "reason"),
    [
        (
            {"auth_types": {"email", "phone"}},
            {"auth_type": "telegram", "identifier": "@ada"},
            "This route requires signing in with email or phone",
            "auth_type",
        ),
        (
            {"wallet_types": {"EVM"}},
            {"wallets": [MockPara.make_wallet("SOLANA")]},
            "This route requires a Para EVM wallet",
            "wallet_type",
        ),
        (  # a connected (external) wallet is not a Para wallet
            {"wallet_types": {"evm"}},
            {"wallets": [], "connected_wallets": [MockPara.make_wallet("EVM")]},
            "This route requires a Para EVM wallet",
            "wallet_type",
        ),
        (
            {"require_wallet": True},
            {"wallets": []},
            "This route requires a Para wallet",
            "no_wallet",
        ),
    ],
)
async def test_unmet_requirements_are_a_403_insufficient_scope(
    para: MockPara,
    clock: FakeClock,
    aiohttp_client: AiohttpClient,
    logs: pytest.LogCaptureFixture,
    options: dict[str, Any],
    login: dict[str, Any],
    description: str,
    reason: str,
) -> None:
    client = await aiohttp_client(
        para_app(para, clock, web.get("/me", para_required(**options)(whoami)))
    )
    token = para.issue_jwt(**login)

    response = await client.get("/me", headers=bearer(token))

    await assert_rejected(
        response,
        403,
        "insufficient_scope",
        www_authenticate=challenge("insufficient_scope", description),
        secret=token,
    )
    assert messages(logs) == [
        f"GET /me: 403 insufficient_scope ({reason})"
    ]


@pytest.mark.parametrize(
    ("options", "login"),
    [
        ({"auth_types": {"email", "phone"}}, {"auth_type": "phone"}),
        ({"auth_types": ["email"]}, {"auth_type": "email"}),
        ({"wallet_types": {"EVM", "SOLANA"}}, {"wallets": [MockPara.make_wallet("SOLANA")]}),
        ({"require_wallet": True}, {}),
        (
            {"auth_types": {"email"}, "wallet_types": {"EVM"}, "require_wallet": True},
            {"auth_type": "email"},
        ),
    ],
)
async def test_met_requirements_pass(
    para: MockPara,
    clock: FakeClock,
    aiohttp_client: AiohttpClient,
    options: dict[str, Any],
    login: dict[str, Any],
) -> None:
    client = await aiohttp_client(
        para_app(para, clock, web.get("/me", para_required(**options)(whoami)))
    )
    response = await client.get("/me", headers=bearer(para.issue_jwt(**login)))
    assert response.status == 200


async def test_para_keys_unreachable_on_a_cold_cache_is_a_503_with_retry_after(
    para: MockPara, clock: FakeClock, aiohttp_client: AiohttpClient, logs: pytest.LogCaptureFixture
) -> None:
    client = await aiohttp_client(para_app(para, clock, web.get("/me", para_required(whoami))))
    para.down()
    token = para.issue_jwt()

    for _ in range(2):  # the fetch that fails, then the backoff window
        response = await client.get("/me", headers=bearer(token))
        await assert_rejected(
            response, 503, "temporarily_unavailable", www_authenticate=None, secret=token
        )
        assert response.headers["Retry-After"] == "1"  # the cache's first backoff step

    assert para.jwks_requests == 1
    assert messages(logs) == [
        "GET /me: 503 temporarily_unavailable (jwks_unavailable)"
    ] * 2
    clock.advance(1)  # the second fetch fails too: the cache now waits 2 s
    assert (await client.get("/me", headers=bearer(token))).headers["Retry-After"] == "2"
    clock.advance(0.5)  # 1.5 s left: rounded up, never down to a too-early retry
    assert (await client.get("/me", headers=bearer(token))).headers["Retry-After"] == "2"
    assert para.jwks_requests == 2
    para.up()
    clock.advance(1.5)
    assert (await client.get("/me", headers=bearer(token))).status == 200


# --- the middleware ---------------------------------------------------------------------


async def open_handler(request: web.Request) -> web.Response:
    return web.Response(text="open")


async def test_middleware_protects_everything_but_exact_and_prefix_exclusions(
    para: MockPara, clock: FakeClock, aiohttp_client: AiohttpClient
) -> None:
    app = para_app(
        para,
        clock,
        web.get("/health", open_handler),
        web.get("/health/deep", open_handler),
        web.get("/public/{name}", open_handler),
        web.get("/publicity", open_handler),
        web.get("/me", whoami),
        middlewares=(para_middleware(exclude=["/health", "/public/*"]),),
    )
    client = await aiohttp_client(app)

    for path in ["/health", "/public/a", "/public/a%20b"]:
        assert (await client.get(path)).status == 200, path
    for path in ["/health/deep", "/publicity", "/me", "/nowhere"]:
        assert (await client.get(path)).status == 401, path
    response = await client.get("/me", headers=bearer(para.issue_jwt("user-5")))
    assert (await response.json())["user_id"] == "user-5"


async def test_an_encoded_path_the_router_resolves_elsewhere_is_not_excluded(
    para: MockPara, clock: FakeClock, aiohttp_client: AiohttpClient
) -> None:
    # The router sends /public%2Fsecret to /{name}; its decoded path looks like
    # /public/secret, but the exclusion is matched on the path as sent.
    app = para_app(
        para,
        clock,
        web.get("/public/{name}", open_handler),
        web.get("/{name}", whoami),
        middlewares=(para_middleware(exclude=["/public/*"]),),
    )
    client = await aiohttp_client(app)
    assert (await client.get("/public/secret")).status == 200
    assert (await client.get("/public%2Fsecret")).status == 401


async def test_middleware_exclude_if_decides_per_request(
    para: MockPara, clock: FakeClock, aiohttp_client: AiohttpClient
) -> None:
    def preflight(request: web.Request) -> bool:
        return request.method == "OPTIONS"

    app = para_app(
        para,
        clock,
        web.options("/me", open_handler),
        web.get("/me", whoami),
        middlewares=(para_middleware(exclude_if=preflight),),
    )
    client = await aiohttp_client(app)
    assert (await client.options("/me")).status == 200
    assert (await client.get("/me")).status == 401


async def test_optional_paths_serve_anonymous_and_signed_in_users_but_refuse_bad_tokens(
    para: MockPara, clock: FakeClock, aiohttp_client: AiohttpClient, logs: pytest.LogCaptureFixture
) -> None:
    app = para_app(
        para,
        clock,
        web.get("/feed", maybe_whoami),
        web.get("/me", whoami),
        middlewares=(para_middleware(optional=["/feed"]),),
    )
    client = await aiohttp_client(app)

    anonymous = await client.get("/feed")
    assert await anonymous.json() == {"user_id": None}
    signed_in = await client.get("/feed", headers=bearer(para.issue_jwt("user-6")))
    assert await signed_in.json() == {"user_id": "user-6"}
    assert (await client.get("/me")).status == 401  # only /feed is optional

    logs.clear()
    expired = para.issue_jwt(expires_in=-60)
    response = await client.get("/feed", headers=bearer(expired))
    await assert_rejected(
        response,
        401,
        "invalid_token",
        www_authenticate=challenge("invalid_token", "The token has expired"),
        secret=expired,
    )
    response = await client.get("/feed", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert response.status == 400
    assert len(messages(logs)) == 2


async def test_middleware_requirements_and_a_decorator_on_top(
    para: MockPara, clock: FakeClock, aiohttp_client: AiohttpClient
) -> None:
    app = para_app(
        para,
        clock,
        web.get("/me", whoami),
        web.get("/email-only", para_required(auth_types={"email"})(whoami)),
        middlewares=(para_middleware(require_wallet=True),),
    )
    client = await aiohttp_client(app)

    assert (await client.get("/me", headers=bearer(para.issue_jwt(wallets=[])))).status == 403
    phone = bearer(para.issue_jwt(auth_type="phone"))
    assert (await client.get("/me", headers=phone)).status == 200
    assert (await client.get("/email-only", headers=phone)).status == 403
    email = bearer(para.issue_jwt(auth_type="email"))
    assert (await client.get("/email-only", headers=email)).status == 200


async def test_get_claims_outside_authentication_says_what_is_wrong(
    para: MockPara, clock: FakeClock, aiohttp_client: AiohttpClient
) -> None:
    async def report(request: web.Request) -> web.Response:
        messages = []
        for reader in (get_claims, get_claims_or_none, get_session):
            try:
                reader(request)
            except ConfigurationError as exc:
                messages.append(str(exc))
        return web.json_response(messages)

    app = para_app(
        para,
        clock,
        web.get("/health", report),
        web.get("/feed", report),
        middlewares=(para_middleware(exclude=["/health"], optional=["/feed"]),),
    )
    client = await aiohttp_client(app)

    unprotected, _, no_session = await (await client.get("/health")).json()
    assert "no Para authentication ran for this request" in unprotected
    assert "@para_session_required" in no_session
    [anonymous, _] = await (await client.get("/feed")).json()
    assert "use get_claims_or_none()" in anonymous


# --- token_getter ------------------------------------------------------------------------


def cookie_token(request: web.Request) -> str | None:
    return request.cookies.get("para_jwt")


async def test_token_getter_on_setup_reads_a_cookie(
    para: MockPara, clock: FakeClock, aiohttp_client: AiohttpClient
) -> None:
    app = para_app(
        para, clock, web.get("/me", para_required(whoami)), token_getter=cookie_token
    )
    client = await aiohttp_client(app)
    token = para.issue_jwt("user-7")

    response = await client.get("/me", headers={"Cookie": f"para_jwt={token}"})
    assert await response.json() == {"user_id": "user-7", "auth_type": "email"}
    # The getter replaces the Authorization header.
    response = await client.get("/me", headers=bearer(token))
    await assert_rejected(
        response, 401, "missing_token", www_authenticate='Bearer realm="para"'
    )
    response = await client.get("/me", headers={"Cookie": "para_jwt="})
    assert response.status == 401
    response = await client.get("/me", headers={"Cookie": f"para_jwt={token}x"})
    assert response.status == 401


async def test_an_async_token_getter_on_the_decorator_overrides_setup(
    para: MockPara, clock: FakeClock, aiohttp_client: AiohttpClient
) -> None:
    async def custom_header(request: web.Request) -> str | None:
        await asyncio.sleep(0)
        return request.headers.get("X-Para-JWT")

    app = para_app(
        para,
        clock,
        web.get("/me", para_required(token_getter=custom_header)(whoami)),
        token_getter=cookie_token,
    )
    client = await aiohttp_client(app)
    token = para.issue_jwt("user-8")

    assert (await client.get("/me", headers={"X-Para-JWT": token})).status == 200
    assert (await client.get("/me", headers={"Cookie": f"para_jwt={token}"})).status == 401


# --- customising the answer -------------------------------------------------------------


async def test_error_handler_can_redirect_and_delegate_to_the_default(
    para: MockPara, clock: FakeClock, aiohttp_client: AiohttpClient, logs: pytest.LogCaptureFixture
) -> None:
    seen: list[Rejection] = []

    async def to_login(request: web.Request, rejection: Rejection) -> web.HTTPException:
        seen.append(rejection)
        if rejection.error == "missing_token":
            return web.HTTPFound("/login")
        return default_error_handler(request, rejection)

    app = para_app(
        para, clock, web.get("/me", para_required(whoami)), error_handler=to_login, realm="shop"
    )
    client = await aiohttp_client(app)

    response = await client.get("/me", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "/login"
    response = await client.get("/me", headers=bearer(para.issue_jwt(expires_in=-1)))
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="shop", ')
    assert [(r.status, r.reason) for r in seen] == [(401, "no_token"), (401, "expired")]
    assert len(messages(logs)) == 2  # logged whatever the handler answers


# --- setup -------------------------------------------------------------------------------


async def test_setup_twice_is_refused(para: MockPara) -> None:
    app = web.Application()
    setup(app, para.verifier())
    with pytest.raises(ConfigurationError, match=r"setup\(\) was already called for this app"):
        setup(app, api_key_id=para.api_key_id, jwks_url=para.jwks_url)
    await app[VERIFIER_KEY].close()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "setup() needs a verifier"),
        ({"api_key_id": "prod_0123456789abcdef"}, "looks like an API key, not its ID"),
        ({"verifier": "8c67b747-0c1e-4a3b-9f6d-2a6b3c1d4e5f"}, "must be a ParaVerifier"),
        ({"api": "key"}, "api must be a ParaAPI"),
        ({"api_options": {"retries": 0}}, "api_options only apply with secret_api_key"),
        ({"realm": 'say "hi"'}, "realm must be"),
        ({"token_getter": "para_jwt"}, "token_getter must be callable"),
        ({"error_handler": 401}, "error_handler must be callable"),
    ],
)
def test_setup_refuses_wrong_settings_at_once(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as error:
        setup(web.Application(), **arguments)
    assert message in str(error.value)


async def test_setup_refuses_a_verifier_and_settings_together(para: MockPara) -> None:
    async with para.verifier() as verifier:
        with pytest.raises(ConfigurationError, match="either a ParaVerifier or its settings"):
            setup(web.Application(), verifier, leeway=5)


@pytest.mark.parametrize("decorator", [para_required, para_session_required])
async def test_decorators_on_an_app_without_setup_fail_with_what_to_do(
    aiohttp_client: AiohttpClient,
    caplog: pytest.LogCaptureFixture,
    decorator: Callable[[Any], Any],
) -> None:
    app = web.Application()
    app.router.add_get("/me", decorator(whoami))
    client = await aiohttp_client(app)

    assert (await client.get("/me")).status == 500
    assert "call para_jwt.aiohttp.setup(app, ...) before the app starts" in caplog.text


async def test_middleware_on_an_app_without_setup_fails_with_what_to_do(
    aiohttp_client: AiohttpClient, caplog: pytest.LogCaptureFixture
) -> None:
    app = web.Application(middlewares=[para_middleware(exclude=["/health"])])
    app.router.add_get("/health", open_handler)
    app.router.add_get("/me", whoami)
    client = await aiohttp_client(app)

    assert (await client.get("/health")).status == 200
    assert (await client.get("/me")).status == 500
    assert "para_middleware is used on an app without Para: call para_jwt.aiohttp.setup" in (
        caplog.text
    )


async def test_para_required_with_an_api_only_setup_asks_for_a_verifier(
    para: MockPara, aiohttp_client: AiohttpClient, caplog: pytest.LogCaptureFixture
) -> None:
    app = web.Application()
    setup(app, secret_api_key=para.secret_api_key, api_options={"base_url": para.base_url})
    app.router.add_get("/me", para_required(whoami))
    client = await aiohttp_client(app)
    assert (await client.get("/me", headers=bearer(para.issue_jwt()))).status == 500
    assert "para_required needs a verifier" in caplog.text


async def test_shutdown_closes_what_setup_built(
    para: MockPara, clock: FakeClock, aiohttp_client: AiohttpClient
) -> None:
    app = para_app(
        para,
        clock,
        web.get("/me", para_required(whoami)),
        web.post("/login", para_session_required(open_handler)),
        secret_api_key=para.secret_api_key,
        api_options={"base_url": para.base_url},
    )
    verifier, api = app[VERIFIER_KEY], app[API_CLIENT_KEY]
    client = await aiohttp_client(app)
    assert (await client.get("/me", headers=bearer(para.issue_jwt()))).status == 200
    headers = {"X-Para-Verification-Token": para.issue_verification_token()}
    assert (await client.post("/login", headers=headers)).status == 200
    assert verifier.jwks is not None
    # The key cache holds no session between fetches (one per fetch); closed, it fetches no more.
    await verifier.refresh()

    await client.close()  # runs the app's cleanup

    with pytest.raises(JWKSUnavailableError, match="closed"):
        await verifier.refresh()
    with pytest.raises(RuntimeError, match="closed"):
        await api.verify_session(para.issue_verification_token())


async def test_shutdown_leaves_what_the_caller_passed_open(
    para: MockPara, clock: FakeClock, aiohttp_client: AiohttpClient
) -> None:
    async with para.verifier(clock=clock) as verifier, para.api() as api:
        app = web.Application()
        setup(app, verifier, api=api)
        app.router.add_get("/me", para_required(whoami))
        client = await aiohttp_client(app)
        assert (await client.get("/me", headers=bearer(para.issue_jwt()))).status == 200

        await client.close()

        para.rotate()  # a new kid: verifying needs a fetch through the verifier's session
        assert (await verifier.verify(para.issue_jwt("user-9"))).user_id == "user-9"
        assert (await api.verify_session(para.issue_verification_token())).auth_type == "email"


# --- options are checked when decorating ------------------------------------------------


async def handler_for_options(request: web.Request) -> web.Response:
    return web.Response()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"auth_types": "email"}, "auth_types must be a collection of strings such as {'email'}"),
        ({"auth_types": {"emial"}}, "auth_types: 'emial' is not one of email, phone"),
        ({"auth_types": [1]}, "auth_types: 1 is not one of"),
        ({"auth_types": set()}, "auth_types is empty"),
        ({"wallet_types": {"BTC"}}, "wallet_types: 'BTC' is not one of EVM, SOLANA"),
        ({"wallet_types": "EVM"}, "wallet_types must be a collection"),
        ({"require_wallet": "yes"}, "require_wallet must be True or False"),
        ({"require_wallet": 1}, "require_wallet must be True or False"),
        ({"token_getter": "para_jwt"}, "token_getter must be callable"),
        ({"auth_type": {"email"}}, "unknown option 'auth_type': did you mean 'auth_types'?"),
        ({"scopes": ["read"]}, "unknown option 'scopes': the options are auth_types,"),
    ],
)
def test_para_required_checks_its_options_at_decoration_time(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError) as error:
        para_required(**options)
    assert message in str(error.value)


def test_para_required_refuses_what_it_cannot_protect() -> None:
    def sync_handler(request: web.Request) -> web.Response:
        return web.Response()

    class Profile(web.View):
        pass

    with pytest.raises(ConfigurationError, match="needs an async handler"):
        para_required(sync_handler)  # type: ignore[type-var]
    with pytest.raises(ConfigurationError, match="not classes"):
        para_required(Profile)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="options are keywords"):
        para_required({"email"})  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match="max_body_size must be a positive integer"):
        para_session_required(max_body_size=0)
    with pytest.raises(ConfigurationError, match="did you mean 'max_body_size'"):
        para_session_required(max_body=10)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"exclude": "/health"}, "exclude must be a list of paths"),
        ({"exclude": ["health"]}, "exclude: 'health' is not a path pattern"),
        ({"optional": ["/a*b"]}, "optional: '/a*b' is not a path pattern"),
        ({"exclude": ["/search?q=1"]}, "without a query"),
        ({"exclude_if": True}, "exclude_if must be callable"),
        ({"wallet_types": {"evm", "BTC"}}, "'BTC' is not one of"),
    ],
)
def test_para_middleware_checks_its_options_at_once(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError) as error:
        para_middleware(**options)
    assert message in str(error.value)


# --- concurrency --------------------------------------------------------------------------


async def test_300_parallel_requests_with_distinct_tokens_make_one_jwks_fetch(
    para: MockPara, clock: FakeClock, aiohttp_client: AiohttpClient
) -> None:
    client = await aiohttp_client(para_app(para, clock, web.get("/me", para_required(whoami))))
    users = [f"user-{i}" for i in range(300)]
    tokens = [para.issue_jwt(user) for user in users]

    async def call(token: str) -> tuple[int, Any]:
        response = await client.get("/me", headers=bearer(token))
        return response.status, await response.json()

    results = await asyncio.gather(*(call(token) for token in tokens))

    assert [status for status, _ in results] == [200] * 300
    assert [body["user_id"] for _, body in results] == users
    assert para.jwks_requests == 1


# --- Para's session check --------------------------------------------------------------------


def session_app(
    para: MockPara, *, api: ParaAPI | None = None, **api_options: Any
) -> web.Application:
    async def login(request: web.Request) -> web.Response:
        session = get_session(request)
        body = await request.json() if request.body_exists else None
        return web.json_response(
            {"auth_type": session.auth_type, "identifier": session.identifier, "body": body}
        )

    app = web.Application()
    if api is None:
        api_options.setdefault("base_url", para.base_url)
        setup(app, secret_api_key=para.secret_api_key, api_options=api_options)
    else:
        setup(app, api=api)
    app.router.add_post("/login", para_session_required(login))
    app.router.add_post("/small", para_session_required(max_body_size=100)(login))
    return app


SESSION_CHALLENGE = 'ParaVerificationToken realm="para"'


def session_challenge(error: str, description: str) -> str:
    return f'{SESSION_CHALLENGE}, error="{error}", error_description="{description}"'


async def test_session_from_the_header_or_a_json_body(
    para: MockPara, aiohttp_client: AiohttpClient
) -> None:
    client = await aiohttp_client(session_app(para))
    token = para.issue_verification_token(identifier="ada@example.com")

    response = await client.post("/login", headers={"X-Para-Verification-Token": token})
    assert await response.json() == {
        "auth_type": "email",
        "identifier": "ada@example.com",
        "body": None,
    }
    body = {"verificationToken": token, "remember": True}
    response = await client.post("/login", json=body)
    assert (await response.json())["body"] == body  # the handler can still read it
    assert para.sessions_requests == 2


@pytest.mark.parametrize(
    ("request_options", "status", "error", "www_authenticate"),
    [
        ({}, 401, "missing_token", SESSION_CHALLENGE),
        ({"json": {"other": 1}}, 401, "missing_token", SESSION_CHALLENGE),
        ({"json": ["verificationToken"]}, 401, "missing_token", SESSION_CHALLENGE),
        (
            {"json": {"verificationToken": 7}},
            400,
            "invalid_request",
            session_challenge("invalid_request", "verificationToken must be a string"),
        ),
        (
            {"data": b"{not json", "headers": {"Content-Type": "application/json"}},
            400,
            "invalid_request",
            session_challenge("invalid_request", "The body is not valid JSON"),
        ),
        (
            {"headers": {"X-Para-Verification-Token": "a.b.c"}},
            400,
            "invalid_request",
            session_challenge("invalid_request", "This is not a Para verification token"),
        ),
    ],
)
async def test_session_requests_without_a_usable_token(
    para: MockPara,
    aiohttp_client: AiohttpClient,
    request_options: dict[str, Any],
    status: int,
    error: str,
    www_authenticate: str,
) -> None:
    client = await aiohttp_client(session_app(para))
    token = para.issue_verification_token()

    response = await client.post("/login", **request_options)

    await assert_rejected(
        response, status, error, www_authenticate=www_authenticate, secret=token
    )
    assert para.sessions_requests == 0


async def test_only_a_json_body_is_read_for_the_session_token(
    para: MockPara, aiohttp_client: AiohttpClient
) -> None:
    client = await aiohttp_client(session_app(para))
    token = para.issue_verification_token()
    response = await client.post("/login", data={"verificationToken": token})
    await assert_rejected(response, 401, "missing_token", www_authenticate=SESSION_CHALLENGE)
    assert para.sessions_requests == 0


async def test_session_body_size_is_bounded(
    para: MockPara, aiohttp_client: AiohttpClient
) -> None:
    client = await aiohttp_client(session_app(para))
    token = para.issue_verification_token()
    small = {"verificationToken": token}
    assert (await client.post("/small", json=small)).status == 200

    padded = {"verificationToken": token, "padding": "x" * 100}
    description = "The request body is larger than 100 bytes"
    response = await client.post("/small", json=padded)
    await assert_rejected(
        response,
        400,
        "invalid_request",
        www_authenticate=session_challenge("invalid_request", description),
    )

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: read, then measured
        yield json.dumps(padded).encode()

    response = await client.post(
        "/small", data=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert para.sessions_requests == 1


async def test_an_expired_session_is_a_401(
    para: MockPara, clock: FakeClock, aiohttp_client: AiohttpClient, logs: pytest.LogCaptureFixture
) -> None:
    client = await aiohttp_client(session_app(para))
    token = para.issue_verification_token(expires_in=60)
    headers = {"X-Para-Verification-Token": token}
    assert (await client.post("/login", headers=headers)).status == 200

    clock.advance(60)
    response = await client.post("/login", headers=headers)

    description = "The session has expired or the verification token is invalid"
    await assert_rejected(
        response,
        401,
        "invalid_token",
        www_authenticate=session_challenge("invalid_token", description),
        secret=token,
    )
    assert messages(logs) == [
        "POST /login: 401 invalid_token (session_expired)"
    ]
    assert token not in logs.text


async def test_para_down_during_a_session_check_is_a_503(
    para: MockPara, aiohttp_client: AiohttpClient
) -> None:
    client = await aiohttp_client(session_app(para, retries=0))
    para.down("sessions")
    token = para.issue_verification_token()

    response = await client.post("/login", headers={"X-Para-Verification-Token": token})

    await assert_rejected(
        response, 503, "temporarily_unavailable", www_authenticate=None, secret=token
    )
    assert response.headers["Retry-After"] == "5"


async def test_a_refused_secret_key_is_our_500_logged_at_error_without_the_key(
    para: MockPara, aiohttp_client: AiohttpClient, logs: pytest.LogCaptureFixture
) -> None:
    wrong_key = "sandbox_" + "0" * 32
    async with ParaAPI(wrong_key, base_url=para.base_url) as api:
        client = await aiohttp_client(session_app(para, api=api))
        token = para.issue_verification_token()

        response = await client.post("/login", headers={"X-Para-Verification-Token": token})

        description = await assert_rejected(
            response, 500, "server_error", www_authenticate=None, secret=wrong_key
        )
    assert description == "The server could not check the session"
    [record] = [r for r in logs.records if r.name == "para_jwt.aiohttp"]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == (
        "POST /login: 500 server_error (para_refused_our_secret_api_key)"
    )
    for secret in (wrong_key, para.secret_api_key, token):
        assert secret not in logs.text
        assert secret not in await response.text()


async def test_para_answering_unexpectedly_is_a_502(
    para: MockPara, aiohttp_client: AiohttpClient, logs: pytest.LogCaptureFixture
) -> None:
    client = await aiohttp_client(session_app(para))
    para.fail_next(418, endpoint="sessions")
    token = para.issue_verification_token()

    response = await client.post("/login", headers={"X-Para-Verification-Token": token})

    await assert_rejected(response, 502, "server_error", www_authenticate=None, secret=token)
    assert [r.levelno for r in logs.records if r.name == "para_jwt.aiohttp"] == [
        logging.WARNING
    ]


async def test_both_checks_on_one_route(
    para: MockPara, clock: FakeClock, aiohttp_client: AiohttpClient
) -> None:
    @para_required
    @para_session_required
    async def link(request: web.Request) -> web.Response:
        claims, session = get_claims(request), get_session(request)
        return web.json_response([claims.user_id, session.identifier])

    app = para_app(
        para,
        clock,
        web.post("/link", link),
        secret_api_key=para.secret_api_key,
        api_options={"base_url": para.base_url},
    )
    client = await aiohttp_client(app)
    headers = {
        **bearer(para.issue_jwt("user-10")),
        "X-Para-Verification-Token": para.issue_verification_token(identifier="a@b.example"),
    }
    response = await client.post("/link", headers=headers)
    assert await response.json() == ["user-10", "a@b.example"]


# --- the README's example ------------------------------------------------------------------

EXAMPLE = Path(__file__).parent.parent / "examples" / "aiohttp_app.py"


def test_the_readme_shows_the_example_verbatim() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("\n## aiohttp\n", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert block is not None
    assert block[1] == EXAMPLE.read_text()


async def test_the_readme_example_runs_against_mock_para(
    para: MockPara, clock: FakeClock, aiohttp_client: AiohttpClient
) -> None:
    from examples.aiohttp_app import create_app

    app: web.Application = create_app(
        api_key_id=para.api_key_id, jwks_url=para.jwks_url, clock=clock
    )
    client = await aiohttp_client(app)
    evm = MockPara.make_wallet("EVM")
    token = para.issue_jwt("user-11", wallets=[evm])
    telegram = para.issue_jwt(auth_type="telegram", identifier="@ada")

    assert await (await client.get("/health")).json() == {"ok": True}
    assert (await client.get("/me")).status == 401
    response = await client.get("/me", headers=bearer(token))
    assert await response.json() == {"user_id": "user-11", "evm": evm["address"]}
    response = await client.get("/public/greeting")
    assert await response.json() == {"hello": "stranger"}
    response = await client.get("/public/greeting", headers=bearer(token))
    assert await response.json() == {"hello": "user-11"}
    assert (await client.post("/trades", headers=bearer(token))).status == 201
    assert (await client.post("/trades", headers=bearer(telegram))).status == 403
    assert isinstance(app[VERIFIER_KEY], ParaVerifier)
