"""para_jwt.django through Django's own test clients (WSGI ``Client``, ASGI
``AsyncClient``), against MockPara over loopback HTTP, on the fake clock."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import para_django_project
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import AsyncClient, Client, override_settings
from django.views import View

from para_jwt import ConfigurationError
from para_jwt.django import ParaMiddleware, ParaRequiredMixin, para_required
from para_jwt.django._settings import para as para_state
from para_jwt.testing import FakeClock, MockPara

para_django_project.configure()


@pytest.fixture
def para(clock: FakeClock) -> Iterator[MockPara]:
    with (
        MockPara(clock=clock) as mock,
        override_settings(PARA_JWT=para_django_project.para_jwt_for(mock)),
    ):
        yield mock


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("path", ["/who", "/awho", "/aprofile"])
def test_sync_and_async_views_get_the_claims(para: MockPara, path: str) -> None:
    response = Client().get(path, headers=bearer(para.issue_jwt("user-1")))
    assert response.status_code == 200
    assert response.json() == {"user": "user-1"}


@pytest.mark.parametrize("path", ["/who", "/awho", "/aprofile", "/profile"])
async def test_under_asgi_too(para: MockPara, path: str) -> None:
    wallet = para.make_wallet("EVM")
    response = await AsyncClient().get(path, headers=bearer(para.issue_jwt("u", wallets=[wallet])))
    assert response.status_code == 200
    assert response.json() == {"user": "u"}
    missing = await AsyncClient().get(path)
    assert missing.status_code == 401
    assert missing.json()["error"] == "missing_token"


def test_public_views_see_claims_or_none_and_refuse_nothing(
    para: MockPara, clock: FakeClock
) -> None:
    client = Client()
    assert client.get("/public").json() == {"user": None}
    assert client.get("/public", headers=bearer("junk")).json() == {"user": None}
    expired = para.issue_jwt(expires_in=10)
    clock.advance(11)
    assert client.get("/public", headers=bearer(expired)).json() == {"user": None}
    token = para.issue_jwt("user-2")
    assert client.get("/public", headers=bearer(token)).json() == {"user": "user-2"}


def test_refusals(para: MockPara, clock: FakeClock) -> None:
    client = Client()
    missing = client.get("/who")
    assert (missing.status_code, missing["WWW-Authenticate"]) == (401, 'Bearer realm="para"')
    assert missing["Content-Type"] == "application/json"
    assert client.get("/who", headers={"Authorization": "Bearer a b"}).status_code == 400

    token = para.issue_jwt(expires_in=60)
    clock.advance(61)
    expired = client.get("/who", headers=bearer(token))
    assert expired.status_code == 401
    assert expired.json() == {
        "error": "invalid_token",
        "error_description": "The token has expired",
    }

    no_wallet = para.issue_jwt(wallets=[])
    assert client.get("/profile", headers=bearer(no_wallet)).status_code == 403
    phone = para.issue_jwt(auth_type="phone")
    refused = client.get("/email-only", headers=bearer(phone))
    assert refused.status_code == 403
    assert refused.json()["error_description"] == "This route requires signing in with email"
    assert client.get("/email-only", headers=bearer(para.issue_jwt("e"))).json() == {"user": "e"}


def test_keys_unreachable_is_503(para: MockPara) -> None:
    para.down()
    unavailable = Client().get("/who", headers=bearer(para.issue_jwt()))
    assert unavailable.status_code == 503
    assert unavailable.has_header("Retry-After")
    assert not unavailable.has_header("WWW-Authenticate")


def test_refusals_are_logged_once_without_the_token(
    para: MockPara, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="para_jwt.django")
    token = para.issue_jwt(audience="0b8f2f4c-64a8-4b83-b36e-bd4c3e4b6c11")
    Client().get("/who?q=secret", headers=bearer(token))
    lines = [r.getMessage() for r in caplog.records if r.name == "para_jwt.django"]
    assert lines == ["GET /who: 401 invalid_token (invalid_audience)"]
    assert token not in caplog.text


def test_the_decorator_works_without_the_middleware(para: MockPara) -> None:
    with override_settings(MIDDLEWARE=[]):
        client = Client()
        assert client.get("/who", headers=bearer(para.issue_jwt("x"))).json() == {"user": "x"}
        assert client.get("/who").status_code == 401


async def test_the_async_decorator_works_without_the_middleware(para: MockPara) -> None:
    with override_settings(MIDDLEWARE=[]):
        client = AsyncClient()
        response = await client.get("/awho", headers=bearer(para.issue_jwt("y")))
        assert response.json() == {"user": "y"}
        assert (await client.get("/awho")).status_code == 401


def test_sync_and_async_share_one_key_fetch(para: MockPara) -> None:
    import asyncio

    Client().get("/who", headers=bearer(para.issue_jwt()))

    async def from_asgi() -> int:
        response = await AsyncClient().get("/awho", headers=bearer(para.issue_jwt("z")))
        return response.status_code

    assert asyncio.run(from_asgi()) == 200
    assert para.jwks_requests == 1


def test_many_threads_one_fetch(para: MockPara) -> None:
    tokens = [para.issue_jwt(f"user-{n}") for n in range(12)]
    results: dict[int, Any] = {}

    def call(n: int) -> None:
        results[n] = Client().get("/who", headers=bearer(tokens[n])).json()

    threads = [threading.Thread(target=call, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {n: {"user": f"user-{n}"} for n in range(12)}
    assert para.jwks_requests == 1


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (None, "needs settings.PARA_JWT"),
        ({"ENVIRONMENT": "prod"}, "API_KEY_ID"),
        ({"API_KEY_ID": "x"}, "exactly one of 'ENVIRONMENT'"),
        ({"API_KEY_ID": "x", "ENVIRONMNT": "prod"}, "did you mean 'ENVIRONMENT'"),
        ({"API_KEY_ID": "not-a-uuid", "ENVIRONMENT": "prod"}, "PARA_JWT: "),
        (
            {"API_KEY_ID": "0b8f2f4c-64a8-4b83-b36e-bd4c3e4b6c11", "ENVIRONMENT": "mars"},
            "PARA_JWT: ",
        ),
        (
            {
                "API_KEY_ID": "0b8f2f4c-64a8-4b83-b36e-bd4c3e4b6c11",
                "ENVIRONMENT": "prod",
                "USER": "no.such.module",
            },
            "PARA_JWT\\['USER'\\]",
        ),
        (
            {
                "API_KEY_ID": "0b8f2f4c-64a8-4b83-b36e-bd4c3e4b6c11",
                "ENVIRONMENT": "prod",
                "REALM": 'a"b',
            },
            "realm",
        ),
    ],
)
def test_a_wrong_setting_stops_startup(setting: Any, message: str) -> None:
    with override_settings(PARA_JWT=setting):
        with pytest.raises(ImproperlyConfigured, match=message) as raised:
            ParaMiddleware(lambda request: None)  # type: ignore[arg-type,return-value]
        # Also the library's own error, for code that catches ConfigurationError.
        assert isinstance(raised.value, ConfigurationError)


def test_the_app_config_checks_the_setting_at_ready() -> None:
    from django.apps import apps

    from para_jwt.django.apps import ParaJWTConfig

    config = ParaJWTConfig("para_jwt.django", sys.modules["para_jwt.django"])
    config.apps = apps
    with (
        override_settings(PARA_JWT={"API_KEY_ID": "x"}),
        pytest.raises(ImproperlyConfigured, match="exactly one"),
    ):
        config.ready()


def test_overriding_the_setting_closes_the_old_verifier(clock: FakeClock) -> None:
    with MockPara(clock=clock) as mock:
        with override_settings(PARA_JWT=para_django_project.para_jwt_for(mock)):
            Client().get("/who", headers=bearer(mock.issue_jwt()))
            assert any(t.name == "para_jwt-io" for t in threading.enumerate())
        assert not any(t.name == "para_jwt-io" for t in threading.enumerate())


def test_wrong_options_fail_when_the_view_is_defined() -> None:
    with pytest.raises(ConfigurationError, match="did you mean 'auth_types'"):
        para_required(auth_type={"email"})  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match="ParaRequiredMixin"):
        para_required(View)
    with pytest.raises(ConfigurationError, match="wallet_types"):

        class Wrong(ParaRequiredMixin, View):
            para_wallet_types = {"BITCOINZ"}  # noqa: RUF012 - the mixin's option


def test_the_state_is_one_per_setting(para: MockPara) -> None:
    assert para_state() is para_state()
    assert para_state().verifier.api_key_id == para.api_key_id


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_import_para_jwt_imports_no_web_framework() -> None:
    result = _run(
        "import sys, para_jwt\n"
        "loaded = sorted(m for m in ('flask', 'django', 'rest_framework', 'werkzeug')"
        " if m in sys.modules)\n"
        "print(loaded)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("blocked", "module", "extra"),
    [
        ("flask", "para_jwt.flask", "para-jwt[flask]"),
        ("django", "para_jwt.django", "para-jwt[django]"),
        ("rest_framework", "para_jwt.django.rest_framework", "djangorestframework"),
    ],
)
def test_an_adapter_without_its_extra_names_it(blocked: str, module: str, extra: str) -> None:
    # A None entry in sys.modules makes the import fail as if not installed.
    result = _run(
        f"import sys; sys.modules[{blocked!r}] = None\n"
        f"try:\n    import {module}\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    assert result.returncode == 0, result.stderr
    assert extra in result.stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _get(url: str, method: str = "GET", token: str | None = None) -> tuple[int, Any]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    request = urllib.request.Request(url, method=method, headers=headers)  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        with refused:
            return refused.code, json.loads(refused.read())


def test_the_example_project_protects_drf_views_with_two_settings() -> None:
    # The example runs as its own project (its own settings module), so in its own
    # process: Django's real development server, against this MockPara on the real clock.
    project = Path(__file__).parent.parent / "examples" / "django_app"
    port = _free_port()
    with MockPara() as mock:
        env = {**os.environ, "PARA_API_KEY_ID": mock.api_key_id, "PARA_JWKS_URL": mock.jwks_url}
        server = subprocess.Popen(  # noqa: S603 - this interpreter, the example's manage.py
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=project,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _wait_for(port, server)
            base = f"http://127.0.0.1:{port}"
            assert _get(f"{base}/health") == (200, {"ok": True})
            status, body = _get(f"{base}/me")
            assert (status, body["error"]) == (401, "missing_token")
            wallet = mock.make_wallet("EVM")
            token = mock.issue_jwt("user-8", wallets=[wallet])
            assert _get(f"{base}/me", token=token) == (
                200,
                {"user_id": "user-8", "evm": wallet["address"]},
            )
            assert _get(f"{base}/trades", "POST", token)[0] == 201
            status, body = _get(f"{base}/trades", "POST", mock.issue_jwt(wallets=[]))
            assert (status, body["error"]) == (403, "insufficient_scope")
        finally:
            server.terminate()
            _, errors = server.communicate(timeout=30)
        assert "Traceback" not in errors, errors


def _wait_for(port: int, server: subprocess.Popen[str]) -> None:
    # Polls until the server listens: process start-up, not time passing in a test.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"runserver exited: {server.communicate()[1]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("runserver did not start within 60 s")
