"""No token is reachable from a refusal: every adapter path keeps the verifier's (or
the API's) error as ``Rejection.cause``, which reaches user code (aiohttp's
``error_handler``, FastAPI's and DRF's exception handlers). Walks the cause, its
chained exceptions and the locals of every frame of their tracebacks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

from para_jwt import _http, _http_session, _http_sync
from para_jwt._http import Gate, Refused, Rejection
from para_jwt.aiohttp import default_error_handler, para_required, setup
from para_jwt.testing import FakeClock, MockPara

GATE = Gate("para")


def reachable(root: object) -> str:
    """Everything an error reporter could show from ``root``: reprs, messages,
    chained exceptions, and every traceback frame's locals."""
    shown: list[str] = []
    seen: set[int] = set()
    stack = [root]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        shown.append(repr(item))
        if isinstance(item, Rejection):
            stack.append(item.cause)
        elif isinstance(item, BaseException):
            shown.append(str(item))
            stack += [item.__cause__, item.__context__, getattr(item, "rejection", None)]
            traceback = item.__traceback__
            while traceback is not None:
                for name, value in traceback.tb_frame.f_locals.items():
                    shown.append(f"{name}={value!r}")
                    stack.append(value)
                traceback = traceback.tb_next
    return "\n".join(shown)


def assert_hidden(rejection: Rejection, token: str) -> None:
    assert rejection.cause is not None
    shown = reachable(rejection)
    assert token not in shown
    assert token.rsplit(".", 1)[-1] not in shown  # not even the signature


def refusal_of(error: BaseException) -> Rejection:
    assert isinstance(error, Refused)
    return error.rejection


@pytest.fixture
async def async_para(clock: FakeClock) -> Iterator[MockPara]:
    async with MockPara(clock=clock) as mock:
        yield mock


@pytest.fixture
def sync_para(clock: FakeClock) -> Iterator[MockPara]:
    with MockPara(clock=clock) as mock:
        yield mock


async def test_async_bearer_path(async_para: MockPara) -> None:
    """aiohttp, Starlette, FastAPI and Django's async views verify through here."""
    token = async_para.issue_jwt(expires_in=-1)
    async with async_para.verifier() as verifier:
        with pytest.raises(Refused) as raised:
            await _http.verify_bearer(GATE, verifier, [f"Bearer {token}"], optional=False)
        rejection = refusal_of(raised.value)
    assert rejection.reason == "expired"
    assert_hidden(rejection, token)


async def test_async_session_path(async_para: MockPara) -> None:
    """aiohttp's and FastAPI's ``para_session_required``."""
    token = async_para.issue_verification_token()
    async_para.expire_session(token)
    async with async_para.api(backoff=0) as api:
        with pytest.raises(Refused) as raised:
            await _http_session.check_session(GATE, api, token)
        rejection = refusal_of(raised.value)
    assert rejection.reason == "session_expired"
    assert_hidden(rejection, token)


def test_sync_bearer_path(sync_para: MockPara) -> None:
    """Flask, Django's sync views and DRF verify through here."""
    token = sync_para.issue_jwt(expires_in=-1)
    with sync_para.sync_verifier() as verifier:
        with pytest.raises(Refused) as raised:
            _http_sync.verify_bearer(GATE, verifier, [f"Bearer {token}"])
        rejection = refusal_of(raised.value)
    assert rejection.reason == "expired"
    assert_hidden(rejection, token)


def test_sync_session_path(sync_para: MockPara) -> None:
    """Flask's ``para_session_required``."""
    token = sync_para.issue_verification_token()
    sync_para.expire_session(token)
    with sync_para.sync_api(backoff=0) as api:
        with pytest.raises(Refused) as raised:
            _http_sync.check_session(GATE, api, token)
        rejection = refusal_of(raised.value)
    assert rejection.reason == "session_expired"
    assert_hidden(rejection, token)


async def whoami(request: web.Request) -> web.Response:
    return web.Response(text="never reached")


async def test_aiohttp_error_handler_sees_no_token(
    async_para: MockPara, aiohttp_client: AiohttpClient
) -> None:
    """End to end: what aiohttp's ``error_handler`` receives."""
    seen: list[Rejection] = []

    def keep(request: web.Request, rejection: Rejection) -> web.HTTPException:
        seen.append(rejection)
        return default_error_handler(request, rejection)

    app = web.Application()
    setup(app, async_para.verifier(), error_handler=keep)
    app.router.add_get("/me", para_required(whoami))
    client = await aiohttp_client(app)
    token = async_para.issue_jwt(expires_in=-1)
    response = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 401
    assert [r.reason for r in seen] == ["expired"]
    assert_hidden(seen[0], token)
