"""ParaAPI against a scriptable fake of Para's verification endpoints on 127.0.0.1.

The fake answers each request with the next scripted ``Reply`` and records what it
received, so every test can assert both the exact request Para would see and how
ParaAPI maps the answer.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import logging
import re
import socket
import threading
import traceback
import tracemalloc
import uuid
import warnings
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDictProxy

import para_jwt.api
from para_jwt import (
    ConfigurationError,
    Environment,
    InvalidAddressError,
    InvalidVerificationTokenError,
    ParaAPI,
    ParaAPIError,
    ParaAuthenticationError,
    ParaJWTError,
    ParaUnavailableError,
    SessionExpiredError,
    SessionInfo,
    WalletNotFoundError,
)
from para_jwt.claims import AuthType, OAuthMethod
from para_jwt.testing import MockPara

SECRET_KEY = "beta_SECRETKEY5f0c8e1d2a3b4c5d6e7f8091"
TOKEN = "vtok-TOKENVALUE-7c1e9a3b5d2f4e6a8b0c"
# A JWT-shaped string: what para.issueJwt() returns, wrongly passed as a verification token.
JWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJlLWJ5dGVz"
ADDRESS = "0x1F9090aaE28b8a3dCeaDf281B0F12828e676c326"
SESSION_OK = {"authType": "email", "identifier": "alice@example.com"}
WALLET_OK = {"walletId": "0b6f6c4e-2f41-4b8e-9c1a-4f5f4f0f3a11"}


# --- the fake Para ------------------------------------------------------------------


@dataclass
class Reply:
    """One scripted answer."""

    status: int = 200
    payload: Any = None  # sent as JSON unless `body` is given
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering
    drop: bool = False  # close the connection without answering
    truncate: bool = False  # announce more bytes than sent, then close the connection
    raw: bytes | None = None  # write these bytes instead of an HTTP answer, then close


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class FakePara:
    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[Seen] = []
        self.base_url = ""

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            Seen(request.method, request.path, request.headers, await request.read())
        )
        # An unscripted request gets a status ParaAPI maps to nothing special, and
        # the tests' request counts catch it.
        reply = self.replies.popleft() if self.replies else Reply(status=418)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        assert request.transport is not None
        if reply.drop or reply.raw is not None:
            if reply.raw is not None:
                request.transport.write(reply.raw)
            request.transport.close()
            return web.Response()
        body = reply.body if reply.body is not None else json.dumps(reply.payload).encode()
        headers = {"content-type": "application/json", **reply.headers}
        if reply.truncate:
            headers["content-length"] = str(len(body) + 100)
            response = web.StreamResponse(status=reply.status, headers=headers)
            await response.prepare(request)
            await response.write(body)
            request.transport.close()
            return response
        return web.Response(status=reply.status, body=body, headers=headers)


@pytest.fixture
async def para(aiohttp_server: Any) -> AsyncIterator[FakePara]:
    fake = FakePara()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    server = await aiohttp_server(app)  # 127.0.0.1, and cancels handlers on disconnect
    fake.base_url = str(server.make_url("/"))
    yield fake
    assert not fake.replies, "the test scripted replies that were never requested"


@pytest.fixture
async def api(para: FakePara) -> AsyncIterator[ParaAPI]:
    async with ParaAPI(SECRET_KEY, base_url=para.base_url, backoff=0) as client:
        yield client


def everything_shown(error: BaseException) -> str:
    """Every text an error could leak through: str, repr, attributes and traceback
    of it and of each exception chained to it (even a suppressed context)."""
    texts = ["".join(traceback.format_exception(error))]
    current: BaseException | None = error
    while current is not None:
        texts += [str(current), repr(current), repr(getattr(current, "__dict__", {}))]
        current = current.__cause__ or current.__context__
    return "\n".join(texts)


# --- the documented successes -------------------------------------------------------


async def test_verify_session_sends_exactly_the_documented_request(
    para: FakePara, api: ParaAPI
) -> None:
    para.script(Reply(payload={**SESSION_OK, "oAuthMethod": "google"}))

    info = await api.verify_session(TOKEN)

    assert info == SessionInfo(AuthType.EMAIL, "alice@example.com", OAuthMethod.GOOGLE, raw={})
    assert info.raw == {**SESSION_OK, "oAuthMethod": "google"}
    [seen] = para.requests
    assert (seen.method, seen.path) == ("POST", "/sessions/verify")
    assert seen.headers["x-external-api-key"] == SECRET_KEY
    assert seen.headers["content-type"] == "application/json"
    assert seen.json() == {"verificationToken": TOKEN}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, None),
        ({"oAuthMethod": None}, None),
        ({"oAuthMethod": ""}, None),
        ({"oAuthMethod": "DISCORD"}, OAuthMethod.DISCORD),
        ({"oAuthMethod": "apple"}, OAuthMethod.APPLE),
    ],
)
async def test_verify_session_oauth_method_is_optional_and_case_insensitive(
    para: FakePara, api: ParaAPI, extra: dict[str, Any], expected: OAuthMethod | None
) -> None:
    para.script(Reply(payload={**SESSION_OK, **extra}))
    info = await api.verify_session(TOKEN)
    assert info.oauth_method is expected


async def test_verify_session_keeps_unknown_values_and_fields(
    para: FakePara, api: ParaAPI
) -> None:
    payload = {"authType": "passkey", "identifier": "u-1", "oAuthMethod": "twitch", "new": [1]}
    para.script(Reply(payload=payload))

    info = await api.verify_session(TOKEN)

    assert info.auth_type == "passkey"
    assert not info.auth_type.is_known
    assert info.oauth_method == "twitch"
    assert info.oauth_method is not None
    assert not info.oauth_method.is_known
    assert info.raw == payload
    with pytest.raises(TypeError):
        info.raw["new"] = 2  # type: ignore[index]


async def test_verify_wallet_sends_the_address_unchanged(para: FakePara, api: ParaAPI) -> None:
    para.script(Reply(payload=WALLET_OK))

    assert await api.verify_wallet(ADDRESS) == WALLET_OK["walletId"]

    [seen] = para.requests
    assert (seen.method, seen.path) == ("POST", "/wallets/verify")
    assert seen.headers["x-external-api-key"] == SECRET_KEY
    assert seen.headers["content-type"] == "application/json"
    assert seen.json() == {"address": ADDRESS}  # mixed case kept: no normalisation


async def test_base_url_with_a_path_prefix(para: FakePara) -> None:
    para.script(Reply(payload=WALLET_OK))
    async with ParaAPI(SECRET_KEY, base_url=para.base_url + "para/v1") as client:
        assert client.base_url == para.base_url + "para/v1/"
        await client.verify_wallet(ADDRESS)
    assert para.requests[0].path == "/para/v1/wallets/verify"


# --- 200 with anything but the documented shape --------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        Reply(body=b"<html>maintenance</html>"),
        Reply(body=b""),
        Reply(body=b"\xff\xfe\x00garbage"),
        Reply(body=b"[" * 20_000 + b"]" * 20_000),  # deeper than the JSON parser goes
        Reply(payload=None),
        Reply(payload=[SESSION_OK]),
        Reply(payload="email"),
        Reply(payload={}),
        Reply(payload={"authType": "email"}),
        Reply(payload={"identifier": "alice@example.com"}),
        Reply(payload={"authType": "", "identifier": "alice@example.com"}),
        Reply(payload={"authType": "email", "identifier": ""}),
        Reply(payload={"authType": 1, "identifier": "alice@example.com"}),
        Reply(payload={"authType": "email", "identifier": ["alice@example.com"]}),
        Reply(payload={**SESSION_OK, "oAuthMethod": 3}),
        Reply(payload={**SESSION_OK, "oAuthMethod": {"name": "google"}}),
    ],
)
async def test_verify_session_malformed_success_is_an_api_error(
    para: FakePara, api: ParaAPI, reply: Reply
) -> None:
    para.script(reply)
    with pytest.raises(ParaAPIError) as info:
        await api.verify_session(TOKEN)
    assert type(info.value) is ParaAPIError
    assert info.value.status == 200
    assert "/sessions/verify" in str(info.value)
    assert len(para.requests) == 1  # a wrong answer is not retried


@pytest.mark.parametrize(
    "payload", [{}, {"walletId": None}, {"walletId": 42}, {"walletId": ""}, ["w"], "w"]
)
async def test_verify_wallet_malformed_success_is_an_api_error(
    para: FakePara, api: ParaAPI, payload: Any
) -> None:
    para.script(Reply(payload=payload))
    with pytest.raises(ParaAPIError) as info:
        await api.verify_wallet(ADDRESS)
    assert type(info.value) is ParaAPIError
    assert info.value.status == 200
    assert "/wallets/verify" in str(info.value)


async def test_response_size_is_capped(para: FakePara) -> None:
    body = json.dumps(SESSION_OK).encode()
    at_cap = body + b" " * (200 - len(body))
    para.script(Reply(body=at_cap), Reply(body=at_cap + b" "), Reply(body=b" " * 5_000_000))
    async with ParaAPI(SECRET_KEY, base_url=para.base_url, max_response_size=200) as client:
        assert (await client.verify_session(TOKEN)).identifier == "alice@example.com"
        for _ in range(2):
            with pytest.raises(ParaAPIError, match="over 200 bytes") as info:
                await client.verify_session(TOKEN)
            assert type(info.value) is ParaAPIError
            assert info.value.status == 200
    assert len(para.requests) == 3


# --- error statuses -------------------------------------------------------------------


VerifyCall = Callable[[ParaAPI], Awaitable[object]]


def sessions(client: ParaAPI) -> Awaitable[object]:
    return client.verify_session(TOKEN)


def wallets(client: ParaAPI) -> Awaitable[object]:
    return client.verify_wallet(ADDRESS)


@pytest.mark.parametrize(
    ("call", "status", "expected"),
    [
        (sessions, 401, ParaAuthenticationError),
        (wallets, 401, ParaAuthenticationError),
        (sessions, 403, SessionExpiredError),
        (wallets, 403, ParaAPIError),  # documented for sessions only
        (wallets, 404, WalletNotFoundError),
        (sessions, 404, ParaAPIError),  # documented for wallets only
        (sessions, 400, ParaAPIError),
        (wallets, 400, ParaAPIError),
        (sessions, 429, ParaAPIError),
        (sessions, 204, ParaAPIError),
        (sessions, 500, ParaUnavailableError),
        (wallets, 500, ParaUnavailableError),
        (sessions, 501, ParaUnavailableError),
    ],
)
async def test_status_maps_to_one_exception_without_retry(
    para: FakePara, api: ParaAPI, call: VerifyCall, status: int, expected: type[ParaAPIError]
) -> None:
    para.script(Reply(status=status, payload={"error": "whatever"}))
    with pytest.raises(ParaAPIError) as info:
        await call(api)
    assert type(info.value) is expected
    assert info.value.status == status
    assert f"HTTP {status}" in str(info.value)
    assert para.requests[0].path in str(info.value)
    assert len(para.requests) == 1
    assert "whatever" not in str(info.value)  # Para's body is never echoed


async def test_401_says_to_check_the_secret_key(para: FakePara, api: ParaAPI) -> None:
    para.script(Reply(status=401))
    with pytest.raises(
        ParaAuthenticationError,
        match=r"Para refused the secret API key.*check it is the secret key of this environment",
    ):
        await api.verify_session(TOKEN)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_redirects_are_not_followed(para: FakePara, api: ParaAPI, status: int) -> None:
    para.script(Reply(status=status, headers={"location": para.base_url + "elsewhere"}))
    with pytest.raises(ParaAPIError, match="redirect") as info:
        await api.verify_wallet(ADDRESS)
    assert type(info.value) is ParaAPIError
    assert info.value.status == status
    assert [seen.path for seen in para.requests] == ["/wallets/verify"]


# --- retries ----------------------------------------------------------------------------


async def test_gateway_errors_are_retried_until_success(para: FakePara, api: ParaAPI) -> None:
    para.script(Reply(status=502), Reply(status=503), Reply(payload=SESSION_OK))

    assert (await api.verify_session(TOKEN)).auth_type is AuthType.EMAIL

    assert len(para.requests) == 3
    assert all(seen.json() == {"verificationToken": TOKEN} for seen in para.requests)
    assert all(seen.headers["x-external-api-key"] == SECRET_KEY for seen in para.requests)


@pytest.mark.parametrize("status", [502, 503, 504])
@pytest.mark.parametrize("retries", [0, 1, 3])
async def test_gateway_errors_exhaust_the_retries(
    para: FakePara, status: int, retries: int
) -> None:
    para.script(*[Reply(status=status)] * (retries + 1))
    async with ParaAPI(SECRET_KEY, base_url=para.base_url, retries=retries, backoff=0) as client:
        with pytest.raises(ParaUnavailableError) as info:
            await client.verify_wallet(ADDRESS)
    assert info.value.status == status
    assert f"tried {retries + 1} time(s)" in str(info.value)
    assert len(para.requests) == retries + 1


async def test_backoff_doubles_before_each_retry(
    para: FakePara, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(para_jwt.api, "_sleep", record)
    para.script(*[Reply(status=503)] * 4)
    async with ParaAPI(SECRET_KEY, base_url=para.base_url, retries=3, backoff=0.25) as client:
        with pytest.raises(ParaUnavailableError):
            await client.verify_session(TOKEN)
    assert slept == [0.25, 0.5, 1.0]


async def test_dropped_connection_is_retried(para: FakePara, api: ParaAPI) -> None:
    para.script(Reply(drop=True), Reply(truncate=True, payload=WALLET_OK), Reply(payload=WALLET_OK))
    assert await api.verify_wallet(ADDRESS) == WALLET_OK["walletId"]
    assert len(para.requests) == 3


async def test_dropped_connections_exhaust_the_retries(para: FakePara, api: ParaAPI) -> None:
    para.script(*[Reply(drop=True)] * 3)
    with pytest.raises(ParaUnavailableError, match="could not be reached") as info:
        await api.verify_session(TOKEN)
    assert info.value.status is None
    assert "ServerDisconnectedError" in str(info.value)
    # aiohttp's exception holds our request headers: it is named, never chained.
    assert (info.value.__cause__, info.value.__context__) == (None, None)
    assert len(para.requests) == 3


async def test_refused_connection_is_retried_then_unavailable() -> None:
    with socket.socket() as probe:  # a port that nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with ParaAPI(SECRET_KEY, base_url=f"http://127.0.0.1:{port}", backoff=0) as client:
        with pytest.raises(ParaUnavailableError, match=r"not be reached.*tried 3 time") as info:
            await client.verify_wallet(ADDRESS)
    assert "ClientConnectorError" in str(info.value)
    assert (info.value.__cause__, info.value.__context__) == (None, None)


async def test_timeout_is_unavailable_without_retry(para: FakePara) -> None:
    para.script(Reply(delay=0.5, payload=SESSION_OK))
    async with ParaAPI(SECRET_KEY, base_url=para.base_url, timeout=0.05, backoff=0) as client:
        with pytest.raises(ParaUnavailableError, match=r"did not answer within 0\.05 s") as info:
            await client.verify_session(TOKEN)
    assert info.value.status is None
    assert len(para.requests) == 1


async def test_an_answer_that_is_not_http_is_unavailable(para: FakePara, api: ParaAPI) -> None:
    para.script(Reply(raw=b"HTTP/1.1 banana\r\n\r\n"))
    with pytest.raises(ParaUnavailableError, match="not valid HTTP") as info:
        await api.verify_session(TOKEN)
    assert len(para.requests) == 1
    # aiohttp's exception for this carries our request headers: it must not be chained.
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


# --- refused locally, before any request ---------------------------------------------


@pytest.mark.parametrize(
    "token",
    [JWT, f"  {JWT}\n", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1In0."],
)
async def test_a_jwt_is_refused_as_verification_token(
    para: FakePara, api: ParaAPI, token: str
) -> None:
    with pytest.raises(InvalidVerificationTokenError) as info:
        await api.verify_session(token)
    message = str(info.value)
    assert "getVerificationToken()" in message
    assert "issueJwt()" in message
    assert token.strip() not in everything_shown(info.value)
    assert para.requests == []


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        (None, "must be a string"),
        (b"vtok", "must be a string"),
        ("x" * 2049, "longer than 2048"),
    ],
)
async def test_impossible_verification_tokens_are_refused(
    para: FakePara, api: ParaAPI, token: Any, message: str
) -> None:
    with pytest.raises(InvalidVerificationTokenError, match=message):
        await api.verify_session(token)
    assert para.requests == []


async def test_longest_accepted_verification_token(para: FakePara, api: ParaAPI) -> None:
    para.script(Reply(payload=SESSION_OK))
    await api.verify_session("x" * 2048)
    assert para.requests[0].json() == {"verificationToken": "x" * 2048}


@pytest.mark.parametrize(
    "address", ["", "0x" + "a" * 255, None, 42]
)
async def test_impossible_addresses_are_refused(
    para: FakePara, api: ParaAPI, address: Any
) -> None:
    with pytest.raises(InvalidAddressError, match="address"):
        await api.verify_wallet(address)
    assert para.requests == []


# --- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "environment", "expected"),
    [
        ("prod_abc123", None, Environment.PROD),
        ("beta_abc123", None, Environment.BETA),
        ("sandbox_abc123", "sandbox", Environment.SANDBOX),
        ("beta_abc123", Environment.BETA, Environment.BETA),
        ("sk_abc123", "prod", Environment.PROD),  # no prefix: the explicit value decides
        ("abc123", "beta", Environment.BETA),
    ],
)
def test_environment_comes_from_the_argument_or_the_key(
    key: str, environment: Environment | str | None, expected: Environment
) -> None:
    client = ParaAPI(key, environment=environment)
    assert client.environment is expected
    assert client.base_url == expected.api_base


def test_base_url_makes_the_environment_optional() -> None:
    client = ParaAPI("sk_abc123", base_url="https://para-proxy.internal/")
    assert client.environment is None
    assert client.base_url == "https://para-proxy.internal/"


def test_conflicting_environment_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"'prod' conflicts.*'beta'") as info:
        ParaAPI(SECRET_KEY, environment="prod")
    assert SECRET_KEY.partition("_")[2] not in str(info.value)


@pytest.mark.parametrize("key", ["sk_SECRETKEY123", "SECRETKEY123", "dev_SECRETKEY123"])
def test_undecidable_environment_says_what_to_pass(key: str) -> None:
    with pytest.raises(ConfigurationError, match=r"pass environment=.*or base_url=") as info:
        ParaAPI(key)
    assert "SECRETKEY123" not in str(info.value)


def test_unknown_environment_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="unknown Para environment"):
        ParaAPI(SECRET_KEY, environment="staging")


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        ("http://api.getpara.com/", "non-loopback"),
        ("http://10.1.2.3:8080/", "non-loopback"),
        ("ftp://127.0.0.1/", "https://"),
        ("https://user:pw@proxy.internal/", "credentials"),
        ("https://proxy.internal/?env=prod", "query"),
        ("https://proxy.internal/#x", "fragment"),
        ("http://127.0.0.1:99999/", "port"),
        ("https://proxy.internal:0/", "port"),
        ("", "non-empty"),
    ],
)
def test_unsafe_base_url_is_refused(base_url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=f"^ParaAPI: base_url .*{message}"):
        ParaAPI(SECRET_KEY, base_url=base_url)


@pytest.mark.parametrize(
    "key",
    [
        "",
        None,
        12345,
        "beta_SECRET KEY",
        "beta_SECRETKEY\n",
        "\tbeta_SECRETKEY",
        "beta_SECRETKEY\x00",
        "beta_SECRETKEYé",
    ],
)
def test_invalid_secret_key_is_refused_without_echo(key: Any) -> None:
    with pytest.raises(ConfigurationError, match="secret_api_key") as info:
        ParaAPI(key, environment="beta")
    assert "SECRET" not in str(info.value)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("timeout", 0, "timeout must be a finite number of seconds > 0, got 0"),
        ("timeout", -1.0, "> 0, got -1.0"),
        ("timeout", float("nan"), "got nan"),
        ("timeout", float("inf"), "got inf"),
        ("timeout", "10", "got str"),
        ("timeout", True, "got bool"),
        ("retries", -1, "retries must be an integer >= 0, got -1"),
        ("retries", 1.5, "got 1.5"),
        ("retries", None, "got NoneType"),
        ("backoff", -0.5, "backoff must be a finite number of seconds >= 0, got -0.5"),
        ("backoff", float("inf"), "got inf"),
        ("max_response_size", 0, "max_response_size must be an integer >= 1, got 0"),
        ("max_response_size", 1024.0, "got 1024.0"),
    ],
)
def test_invalid_numbers_are_refused(option: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=r"^ParaAPI: .*" + re.escape(message)):
        ParaAPI(SECRET_KEY, **{option: value})


def test_a_session_that_is_not_an_aiohttp_session_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"ParaAPI: session must be an aiohttp"):
        ParaAPI(SECRET_KEY, session="http://proxy")  # type: ignore[arg-type]


def test_zero_retries_and_zero_backoff_are_allowed() -> None:
    ParaAPI(SECRET_KEY, retries=0, backoff=0)


# --- session ownership ------------------------------------------------------------------


async def test_borrowed_session_is_used_and_left_open(para: FakePara) -> None:
    para.script(Reply(payload=WALLET_OK))
    async with aiohttp.ClientSession() as borrowed:
        async with ParaAPI(SECRET_KEY, base_url=para.base_url, session=borrowed) as client:
            await client.verify_wallet(ADDRESS)
        assert not borrowed.closed
        async with borrowed.get(para.base_url + "still-usable") as response:
            assert response.status == 418
    assert len(para.requests) == 2


async def test_borrowed_session_raise_for_status_does_not_apply(para: FakePara) -> None:
    para.script(Reply(status=404))
    async with (
        aiohttp.ClientSession(raise_for_status=True) as borrowed,
        ParaAPI(SECRET_KEY, base_url=para.base_url, session=borrowed) as client,
    ):
        with pytest.raises(WalletNotFoundError):
            await client.verify_wallet(ADDRESS)


async def test_owned_session_is_created_lazily_and_closed(para: FakePara) -> None:
    para.script(Reply(payload=WALLET_OK))
    client = ParaAPI(SECRET_KEY, base_url=para.base_url)
    assert len(client._sessions._owned) == 0
    await client.verify_wallet(ADDRESS)
    [owned] = [entry.session for entry in client._sessions._owned.values()]
    assert not owned.closed

    await client.close()

    assert owned.closed
    await client.close()  # a second close does nothing
    with pytest.raises(ParaUnavailableError, match="closed"):
        await client.verify_wallet(ADDRESS)
    assert len(para.requests) == 1


# --- secret hygiene ---------------------------------------------------------------------


def test_repr_shows_where_but_not_the_key() -> None:
    client = ParaAPI(SECRET_KEY)
    assert repr(client) == "<ParaAPI base_url='https://api.beta.getpara.com/' environment='BETA'>"
    assert SECRET_KEY.partition("_")[2] not in repr(client) + str(client)


HYGIENE_SCENARIOS = [
    pytest.param([Reply(status=401, payload={"echo": TOKEN, "key": SECRET_KEY})], id="401"),
    pytest.param([Reply(status=403, payload={"echo": TOKEN})], id="403"),
    pytest.param([Reply(status=400, body=TOKEN.encode())], id="400"),
    pytest.param([Reply(status=500, body=TOKEN.encode())], id="500"),
    pytest.param([Reply(status=503, body=TOKEN.encode())] * 3, id="503-exhausted"),
    pytest.param([Reply(drop=True)] * 3, id="dropped"),
    pytest.param([Reply(raw=b"HTTP/1.1 banana\r\n\r\n")], id="not-http"),
    pytest.param([Reply(delay=5)], id="timeout"),  # cancelled when the client gives up
    pytest.param([Reply(status=302, headers={"location": f"/x?t={TOKEN}"})], id="redirect"),
    pytest.param([Reply(body=b"\xff" + TOKEN.encode())], id="200-not-utf8"),
    pytest.param([Reply(body=b"{" + TOKEN.encode())], id="200-not-json"),
    pytest.param([Reply(payload=[TOKEN, SECRET_KEY])], id="200-not-object"),
    pytest.param([Reply(payload={"authType": TOKEN})], id="200-missing-field"),
    pytest.param([Reply(body=TOKEN.encode() * 5000)], id="200-oversized"),
]


@pytest.mark.parametrize("replies", HYGIENE_SCENARIOS)
async def test_no_error_or_log_shows_the_key_or_the_token(
    para: FakePara, caplog: pytest.LogCaptureFixture, replies: list[Reply]
) -> None:
    caplog.set_level(logging.DEBUG)
    para.script(*replies)
    async with ParaAPI(
        SECRET_KEY, base_url=para.base_url, timeout=0.5, backoff=0, max_response_size=10_000
    ) as client:
        with pytest.raises(ParaAPIError) as info:
            await client.verify_session(TOKEN)
        shown = everything_shown(info.value) + repr(client) + caplog.text
    assert SECRET_KEY not in shown
    assert TOKEN not in shown
    assert "/sessions/verify" in str(info.value)
    # The debug log tells what happened, one record per attempt.
    records = [r for r in caplog.records if r.name == "para_jwt.api"]
    assert len(records) == len(replies)
    assert all(r.levelno == logging.DEBUG for r in records)
    assert all("/sessions/verify" in r.getMessage() for r in records)


async def test_session_info_repr_leaves_out_the_raw_answer(para: FakePara, api: ParaAPI) -> None:
    para.script(Reply(payload={**SESSION_OK, "echo": TOKEN}))
    info = await api.verify_session(TOKEN)
    assert TOKEN not in repr(info)
    assert "alice@example.com" in repr(info)


async def test_debug_log_names_endpoint_status_duration_and_attempt(
    para: FakePara, api: ParaAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="para_jwt.api")
    para.script(Reply(status=503), Reply(drop=True), Reply(payload=SESSION_OK))

    await api.verify_session(TOKEN)

    messages = [r.getMessage() for r in caplog.records if r.name == "para_jwt.api"]
    url = para.base_url + "sessions/verify"
    assert len(messages) == 3
    assert messages[0].startswith(f"POST {url}: HTTP 503 after ")
    assert messages[0].endswith(" s (attempt 1 of 3)")
    assert messages[1].startswith(f"POST {url}: ServerDisconnectedError after ")
    assert messages[1].endswith("(attempt 2 of 3)")
    assert messages[2].startswith(f"POST {url}: HTTP 200 after ")
    assert messages[2].endswith("(attempt 3 of 3)")
    assert TOKEN not in caplog.text
    assert SECRET_KEY not in caplog.text


# --- nothing secret in tracebacks, even with their frames' locals ---------------------


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _holds(value: object, secret: str, depth: int = 0) -> bool:
    """Whether ``value`` is or contains ``secret``: strings, bytes and containers,
    walked recursively (mappings' keys and values, headers' multidicts included)."""
    if depth > 12:
        return False
    if isinstance(value, str):
        return secret in value
    if isinstance(value, bytes | bytearray | memoryview):
        return secret.encode() in bytes(value)
    if isinstance(value, Mapping) or hasattr(value, "items"):
        try:
            items = list(value.items())  # type: ignore[union-attr]
        except Exception:
            return False
        return any(_holds(k, secret, depth + 1) or _holds(v, secret, depth + 1) for k, v in items)
    if isinstance(value, list | tuple | set | frozenset | deque):
        return any(_holds(item, secret, depth + 1) for item in value)
    return False


def frames_holding(error: BaseException, secret: str) -> list[str]:
    """Every place an error reporter could find ``secret`` in ``error``: its text,
    args and attributes, the same for each chained exception, every local of every
    frame of their tracebacks (and its repr), and the formatted report with locals."""
    found = []
    for exc in _chain(error):
        if _holds([str(exc), repr(exc), exc.args, list(vars(exc).values())], secret):
            found.append(f"{type(exc).__name__} itself")
        tb = exc.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            for name, value in frame.f_locals.items():
                if _holds(value, secret) or secret in repr(value):
                    found.append(f"{frame.f_code.co_name}: {name}")
            tb = tb.tb_next
    report = "".join(
        traceback.TracebackException.from_exception(error, capture_locals=True).format()
    )
    if secret in report:
        found.append("the report with locals")
    return found


async def assert_no_key_anywhere(call: Awaitable[object]) -> BaseException:
    """Await ``call``, which must fail, and look for the key (a global: no frame of
    this test holds it) wherever an error reporter could."""
    with pytest.raises(ParaJWTError) as info:
        await call
    assert frames_holding(info.value, SECRET_KEY) == []
    return info.value


def test_the_walk_finds_a_key_in_a_chained_aiohttp_error() -> None:
    # What para_jwt raised before: the check below must be able to see it.
    async def aiohttp_like(headers: dict[str, str]) -> None:
        raise aiohttp.ServerDisconnectedError()

    async def old_style() -> None:
        try:
            await aiohttp_like({"x-external-api-key": SECRET_KEY})
        except aiohttp.ClientError as exc:
            raise ParaUnavailableError("unavailable") from exc

    with pytest.raises(ParaUnavailableError) as info:
        asyncio.run(old_style())
    assert "aiohttp_like: headers" in frames_holding(info.value, SECRET_KEY)
    assert "the report with locals" in frames_holding(info.value, SECRET_KEY)


@pytest.mark.parametrize(
    "replies",
    [
        pytest.param([Reply(drop=True)] * 3, id="dropped"),
        pytest.param([Reply(truncate=True, payload=SESSION_OK)] * 3, id="cut-mid-body"),
        pytest.param([Reply(delay=5)], id="timeout"),
        pytest.param([Reply(raw=b"HTTP/1.1 banana\r\n\r\n")], id="not-http"),
        pytest.param([Reply(status=401)], id="401"),
        pytest.param([Reply(status=503)] * 3, id="503"),
        pytest.param([Reply(payload=[TOKEN, SECRET_KEY])], id="200-echo-not-object"),
        pytest.param([Reply(payload={"authType": 1, "echo": SECRET_KEY})], id="200-echo-field"),
        pytest.param([Reply(body=b"{" + SECRET_KEY.encode())], id="200-echo-not-json"),
        pytest.param([Reply(body=SECRET_KEY.encode() * 500)], id="200-oversized"),
    ],
)
async def test_no_frame_of_any_error_holds_the_key(para: FakePara, replies: list[Reply]) -> None:
    para.script(*replies)
    async with ParaAPI(
        SECRET_KEY, base_url=para.base_url, timeout=0.3, backoff=0, max_response_size=4096
    ) as client:
        await assert_no_key_anywhere(client.verify_session(TOKEN))


async def test_a_refused_connection_holds_no_key() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with ParaAPI(SECRET_KEY, base_url=f"http://127.0.0.1:{port}", backoff=0) as client:
        error = await assert_no_key_anywhere(client.verify_wallet(ADDRESS))
    assert "ClientConnectorError" in str(error)


async def test_the_token_stays_in_the_callers_frame_only(para: FakePara) -> None:
    para.script(*[Reply(drop=True)] * 3)
    async with ParaAPI(SECRET_KEY, base_url=para.base_url, backoff=0) as client:
        with pytest.raises(ParaUnavailableError) as info:
            await client.verify_session(TOKEN)
    holders = frames_holding(info.value, TOKEN)
    # The argument the caller passed, in the public method and the test itself;
    # no frame of para_jwt's internals holds the request body.
    assert set(holders) <= {
        "verify_session: verification_token",
        "test_the_token_stays_in_the_callers_frame_only: TOKEN",
        "the report with locals",
    }
    assert all("_post" not in h and "_attempt" not in h for h in holders)


async def test_a_caller_timeout_chains_no_aiohttp_frame(para: FakePara) -> None:
    # asyncio.timeout turns the cancellation into TimeoutError from the
    # CancelledError that went through the request: that one must be ours.
    para.script(Reply(delay=2, payload=SESSION_OK))
    async with ParaAPI(SECRET_KEY, base_url=para.base_url, backoff=0) as client:
        with pytest.raises(TimeoutError) as info:
            async with asyncio.timeout(0.2):
                await client.verify_session(TOKEN)
        # Still usable afterwards.
        para.script(Reply(payload=SESSION_OK))
        assert (await client.verify_session(TOKEN)).identifier == "alice@example.com"
    assert isinstance(info.value.__cause__, asyncio.CancelledError)
    assert frames_holding(info.value, SECRET_KEY) == []


@pytest.mark.parametrize(
    "options",
    [
        {"environment": "prod"},  # conflicts with the key's prefix
        {"environment": "staging"},
        {"base_url": "http://example.com/"},
        {"timeout": -1},
    ],
)
def test_configuration_errors_hold_no_key(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError) as info:
        ParaAPI(SECRET_KEY, **options)
    assert frames_holding(info.value, SECRET_KEY) == []


REFUSED_KEYS = ["beta_SECRET KEY1234", "beta_SECRETKEY1234\n"]


@pytest.mark.parametrize("index", range(len(REFUSED_KEYS)))
def test_a_refused_key_is_in_no_frame(index: int) -> None:
    # Looked up, not bound to a local: only para_jwt's frames are under test.
    with pytest.raises(ConfigurationError) as info:
        ParaAPI(REFUSED_KEYS[index])
    found = frames_holding(info.value, REFUSED_KEYS[index].strip())  # not in an assert:
    assert found == []  # pytest's assertion rewriting would keep the key in a local


# --- the verification-token guard: nothing JWT-like or wrapped reaches Para ------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


GOOD_HEAD, GOOD_PAYLOAD, GOOD_SIGNATURE = JWT.split(".")
STD_JWT = ".".join(  # the +/ alphabet, with padding
    _b64(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))) for part in JWT.split(".")
)
PADDED_JWT = ".".join(part + "=" * (-len(part) % 4) for part in JWT.split("."))
WRAPPED = [
    pytest.param(f"Bearer {JWT}", id="bearer"),
    pytest.param(f"bearer {JWT}", id="bearer-lower"),
    pytest.param(f"Bearer:{JWT}", id="bearer-colon"),
    pytest.param(f"Bearer%20{JWT}", id="bearer-percent"),
    pytest.param(f'"{JWT}"', id="double-quoted"),
    pytest.param(f"'{JWT}'", id="single-quoted"),
    pytest.param(PADDED_JWT, id="padded"),
    pytest.param(STD_JWT, id="plus-slash-alphabet"),
    pytest.param(f"{GOOD_HEAD}.{GOOD_PAYLOAD}.", id="no-signature"),
    pytest.param(f"{GOOD_HEAD}.{GOOD_PAYLOAD}", id="header-and-payload"),
    pytest.param(f"{GOOD_HEAD}\u200b.{GOOD_PAYLOAD}.{GOOD_SIGNATURE}", id="zero-width-space"),
    pytest.param(f"\u2060{JWT}", id="word-joiner"),
    pytest.param(JWT.replace(".", "%2E"), id="percent-encoded-dots"),
    pytest.param("a.b.c", id="two-dots"),
    pytest.param("vtok.x.y.z.w", id="jwe-shape"),
    pytest.param(f"{JWT}.{JWT}", id="two-jwts"),
]


@pytest.mark.parametrize("token", WRAPPED)
async def test_anything_that_is_or_wraps_a_jwt_is_refused_before_any_request(
    mock_para: MockPara, token: str
) -> None:
    async with mock_para.api(backoff=0) as client:
        with pytest.raises(InvalidVerificationTokenError, match=r"JWT|scheme|quotes|invisible"):
            await client.verify_session(token)
    assert mock_para.sessions_requests == 0


@pytest.mark.parametrize(
    ("token", "says"),
    [
        (f"{TOKEN} ", "whitespace"),
        (f"{TOKEN}\n", "whitespace"),
        ("vtok\tx", "whitespace"),
        ("vtok\u00a0x", "whitespace"),  # no-break space (Zs)
        ("vtok\u2028x", "whitespace"),  # line separator (Zl)
        ("vtok\x00x", "control or invisible"),
        ("vtok\x7fx", "control or invisible"),
        ("vtok\u200bx", "control or invisible"),  # zero-width space (Cf)
        ("vtok\ufeffx", "control or invisible"),  # byte-order mark (Cf)
        ("vtok\u00e9x", "other than printable ASCII"),
        (f'"{TOKEN}"', "quotes"),
        (f"`{TOKEN}`", "quotes"),
        (f"Bearer:{TOKEN}", "scheme"),
        (f"DPoP%20{TOKEN}", "scheme"),
        (f"https://app.example/?t={TOKEN}", "scheme"),
        ("%22vtok%22", "quotes"),  # percent-encoded quotes
    ],
)
async def test_wrapped_or_odd_tokens_are_refused_before_any_request(
    mock_para: MockPara, token: str, says: str
) -> None:
    async with mock_para.api(backoff=0) as client:
        with pytest.raises(InvalidVerificationTokenError, match=says):
            await client.verify_session(token)
    assert mock_para.sessions_requests == 0


@pytest.mark.parametrize(
    "token",
    [
        str(uuid.UUID(int=7)),  # what Para's SDK returns today (a sessionLookupId)
        "vtok-TOKENVALUE-7c1e9a3b5d2f4e6a8b0c",
        "abc.def",  # one dot, no JSON in either part
        "x" * 2048,
    ],
)
async def test_plausible_tokens_reach_para(mock_para: MockPara, token: str) -> None:
    async with mock_para.api(backoff=0) as client:
        with pytest.raises(SessionExpiredError):  # unknown to MockPara: its 403
            await client.verify_session(token)
    assert mock_para.sessions_requests == 1


# --- a 200 answer is read only up to the cap, as it streams in -------------------------


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
async def test_a_huge_answer_is_read_only_to_the_cap(chunked: bool) -> None:
    """Para (here a raw server) sends 256 MiB; ParaAPI stops after its 64 KiB cap.

    Two honest bounds: what the server managed to send before the client hung up
    (the rest of the socket buffers at most), and the Python memory the call took.
    """
    total = 256 * 1024 * 1024
    block = b" " * (64 * 1024)
    sent = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        await reader.readuntil(b"\r\n\r\n")
        length = "transfer-encoding: chunked" if chunked else f"content-length: {total}"
        head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{length}\r\n\r\n"
        writer.write(head.encode())
        frame = (f"{len(block):x}\r\n".encode() + block + b"\r\n") if chunked else block
        try:
            while sent < total:
                writer.write(frame)
                await writer.drain()
                sent += len(block)
        except (ConnectionError, OSError):
            pass  # the client hung up: what this test wants
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with ParaAPI(SECRET_KEY, base_url=f"http://127.0.0.1:{port}", backoff=0) as client:
            tracemalloc.start()
            try:
                with pytest.raises(ParaAPIError, match="over 65536 bytes") as info:
                    await client.verify_session(TOKEN)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        await asyncio.sleep(0.05)  # let the server see the hang-up
    finally:
        server.close()
        await server.wait_closed()
    assert info.value.status == 200
    assert sent < 24 * 1024 * 1024, f"the server could send {sent} bytes"
    assert peak < 4 * 1024 * 1024, f"the call took {peak} bytes"


# --- unexpected failures take the one failure path ---------------------------------------


async def test_a_borrowed_session_the_app_closed_is_unavailable_not_a_raw_error(
    para: FakePara, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="para_jwt.api")
    borrowed = aiohttp.ClientSession()
    await borrowed.close()  # the app shut its session down before ours
    client = ParaAPI(SECRET_KEY, base_url=para.base_url, session=borrowed, backoff=0)
    with pytest.raises(ParaUnavailableError, match=r"failed: unexpected RuntimeError") as info:
        await client.verify_wallet(ADDRESS)
    assert (info.value.__cause__, info.value.__context__) == (None, None)
    assert frames_holding(info.value, SECRET_KEY) == []
    [record] = [r for r in caplog.records if r.name == "para_jwt.api"]
    assert "unexpected RuntimeError" in record.getMessage()
    assert "attempt 1 of 3" in record.getMessage()  # not retried: it would fail alike
    assert para.requests == []


# --- one instance, many event loops and threads ----------------------------------------


@pytest.fixture
def para_thread() -> Iterator[MockPara]:
    """MockPara on its own loop in a thread, so tests can run loops of their own."""
    loop = asyncio.new_event_loop()
    mock = MockPara()
    loop.run_until_complete(mock.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield mock
    finally:
        asyncio.run_coroutine_threadsafe(mock.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def test_asyncio_run_per_call_works_and_leaks_nothing(para_thread: MockPara) -> None:
    token = para_thread.issue_verification_token(identifier="ada@example.com")
    api = para_thread.api(backoff=0)
    sessions = []
    for _ in range(5):
        assert asyncio.run(api.verify_session(token)).identifier == "ada@example.com"
        sessions += [entry.session for entry in api._sessions._owned.values()]
    # Each loop got its own session, closed by that loop's shutdown (asyncio.run).
    assert len({id(s) for s in sessions}) == 5
    assert all(s.closed for s in sessions)
    assert len(api._sessions._owned) == 1  # the closed loops were pruned
    asyncio.run(api.close())
    gc.collect()  # an unclosed session or socket would warn here (warnings are errors)
    assert para_thread.sessions_requests == 5


def test_a_loop_closed_without_shutdown_does_not_poison_later_calls(
    para_thread: MockPara,
) -> None:
    token = para_thread.issue_verification_token()
    api = para_thread.api(backoff=0)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(api.verify_session(token))
    # The old style: closed without loop.shutdown_asyncgens(), so nothing could
    # close its session before; the next call must still work.
    loop.close()
    with warnings.catch_warnings():
        # Its pooled socket belongs to a dead loop: only the garbage collector can
        # close it now (the documented shutdown avoids this, see above).
        warnings.simplefilter("ignore", ResourceWarning)
        assert asyncio.run(api.verify_session(token)).auth_type == "email"
        del loop
        gc.collect()
    asyncio.run(api.close())
    assert len(api._sessions._owned) == 0


def test_threads_with_their_own_loops_share_one_instance(para_thread: MockPara) -> None:
    tokens = [para_thread.issue_verification_token(identifier=f"u{i}@x.example") for i in range(4)]
    api = para_thread.api(backoff=0)
    loops = [asyncio.new_event_loop() for _ in range(4)]
    threads = [threading.Thread(target=loop.run_forever, daemon=True) for loop in loops]
    for thread in threads:
        thread.start()
    try:
        futures = [
            asyncio.run_coroutine_threadsafe(api.verify_session(tokens[i % 4]), loops[i % 4])
            for i in range(40)
        ]
        identifiers = [future.result(30).identifier for future in futures]
        assert identifiers == [f"u{i % 4}@x.example" for i in range(40)]
        owned = [api._sessions._owned.get(loop) for loop in loops]
        assert len(api._sessions._owned) == len(loops)  # one session per loop, no more
        sessions = {loop: entry.session for loop, entry in zip(loops, owned, strict=True) if entry}
        assert set(sessions) == set(loops)
        # close() from yet another loop closes each session on its own loop.
        asyncio.run(api.close())
        assert all(session.closed for session in sessions.values())
        with pytest.raises(ParaUnavailableError, match="closed"):
            asyncio.run_coroutine_threadsafe(api.verify_session(tokens[0]), loops[0]).result(10)
    finally:
        for loop, thread in zip(loops, threads, strict=True):
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
    assert para_thread.sessions_requests == 40


def test_a_borrowed_session_from_another_loop_is_a_configuration_error(
    para_thread: MockPara,
) -> None:
    async def make_session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    loop = asyncio.new_event_loop()
    borrowed = loop.run_until_complete(make_session())
    api = para_thread.api(session=borrowed)
    try:
        with pytest.raises(ConfigurationError, match=r"ParaAPI: the session= you passed") as info:
            asyncio.run(api.verify_wallet(ADDRESS))
        assert "another event loop" in str(info.value)
        assert para_thread.wallets_requests == 0
        # On its own loop it works, and it stays open: it is borrowed.
        para_thread.register_wallet(ADDRESS)
        assert loop.run_until_complete(api.verify_wallet(ADDRESS))
        loop.run_until_complete(api.close())
        assert not borrowed.closed
    finally:
        loop.run_until_complete(borrowed.close())
        loop.close()
