"""para_jwt.flask through Flask's own test client, against MockPara over loopback HTTP."""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flask
import pytest
from flask.views import MethodView

from para_jwt import ConfigurationError, SyncParaAPI, SyncParaVerifier
from para_jwt.flask import ParaJWT, get_claims, get_session, para_required, para_session_required
from para_jwt.testing import FakeClock, MockPara


@pytest.fixture
def para(clock: FakeClock) -> Iterator[MockPara]:
    with MockPara(clock=clock) as mock:
        yield mock


def make_app(para: MockPara, **config: Any) -> tuple[flask.Flask, ParaJWT]:
    app = flask.Flask("test_flask")
    app.config.update(
        PARA_API_KEY_ID=para.api_key_id,
        PARA_JWKS_URL=para.jwks_url,
        PARA_VERIFIER_OPTIONS={"clock": para.clock},
    )
    app.config.update(config)
    extension = ParaJWT(app)

    @app.get("/me")
    @para_required
    def me() -> dict[str, Any]:
        return {"user": get_claims().user_id}

    @app.get("/evm")
    @para_required(wallet_types={"EVM"})
    def evm() -> dict[str, Any]:
        return {"wallet": get_claims().wallets[0].address}

    @app.get("/async")
    @para_required
    async def async_me() -> dict[str, Any]:
        return {"user": get_claims().user_id}

    @app.get("/public")
    def public() -> str:
        return "open"

    class Profile(MethodView):
        decorators = [para_required(require_wallet=True)]  # noqa: RUF012 - Flask's API

        def get(self) -> dict[str, Any]:
            return {"user": get_claims().user_id}

    app.add_url_rule("/profile", view_func=Profile.as_view("profile"))
    return app, extension


@pytest.fixture
def app(para: MockPara) -> Iterator[flask.Flask]:
    app, extension = make_app(para)
    yield app
    extension.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_valid_token_reaches_the_view_with_its_claims(app: flask.Flask, para: MockPara) -> None:
    client = app.test_client()
    response = client.get("/me", headers=bearer(para.issue_jwt("user-1")))
    assert response.status_code == 200
    assert response.get_json() == {"user": "user-1"}
    async_response = client.get("/async", headers=bearer(para.issue_jwt("user-2")))
    assert async_response.get_json() == {"user": "user-2"}


def test_refusals_have_the_shared_status_headers_and_body(
    app: flask.Flask, para: MockPara, clock: FakeClock
) -> None:
    client = app.test_client()
    missing = client.get("/me")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="para"'
    assert missing.get_json()["error"] == "missing_token"
    assert missing.mimetype == "application/json"

    malformed = client.get("/me", headers={"Authorization": "Bearer a b"})
    assert malformed.status_code == 400
    assert malformed.get_json()["error"] == "invalid_request"

    token = para.issue_jwt(expires_in=60)
    clock.advance(61)
    expired = client.get("/me", headers=bearer(token))
    assert expired.status_code == 401
    assert expired.get_json() == {
        "error": "invalid_token",
        "error_description": "The token has expired",
    }
    assert 'error="invalid_token"' in expired.headers["WWW-Authenticate"]


def test_requirements_refuse_with_403(app: flask.Flask, para: MockPara) -> None:
    client = app.test_client()
    no_wallet = para.issue_jwt(wallets=[])
    assert client.get("/evm", headers=bearer(no_wallet)).status_code == 403
    assert client.get("/profile", headers=bearer(no_wallet)).get_json()["error"] == (
        "insufficient_scope"
    )
    with_wallet = para.issue_jwt("user-3", wallets=[para.make_wallet("EVM")])
    assert client.get("/evm", headers=bearer(with_wallet)).status_code == 200
    assert client.get("/profile", headers=bearer(with_wallet)).get_json() == {"user": "user-3"}


def test_keys_unreachable_is_503_with_retry_after(app: flask.Flask, para: MockPara) -> None:
    para.down()
    response = app.test_client().get("/me", headers=bearer(para.issue_jwt()))
    assert response.status_code == 503
    assert "WWW-Authenticate" not in response.headers
    assert int(response.headers["Retry-After"]) >= 1
    assert response.get_json()["error"] == "temporarily_unavailable"


def test_public_routes_are_untouched(app: flask.Flask) -> None:
    response = app.test_client().get("/public", headers={"Authorization": "Bearer junk"})
    assert response.status_code == 200


def test_refusals_are_logged_without_the_token(
    app: flask.Flask, para: MockPara, caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    caplog.set_level(logging.INFO, logger="para_jwt.flask")
    token = para.issue_jwt(expires_in=1)
    clock.advance(5)
    app.test_client().get("/me?secret=1", headers=bearer(token))
    lines = [r.getMessage() for r in caplog.records if r.name == "para_jwt.flask"]
    assert lines == ["GET /me: 401 invalid_token (expired)"]
    assert token not in caplog.text


def test_one_verifier_serves_many_threads(app: flask.Flask, para: MockPara) -> None:
    tokens = [para.issue_jwt(f"user-{n}") for n in range(16)]
    results: dict[int, Any] = {}

    def call(n: int) -> None:
        response = app.test_client().get("/me", headers=bearer(tokens[n]))
        results[n] = response.get_json()

    threads = [threading.Thread(target=call, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {n: {"user": f"user-{n}"} for n in range(16)}
    assert para.jwks_requests == 1


def test_a_given_verifier_is_used_and_left_open(para: MockPara) -> None:
    verifier = para.sync_verifier()
    app = flask.Flask("given")
    extension = ParaJWT(app, verifier=verifier)

    @app.get("/me")
    @para_required
    def me() -> str:
        return get_claims().user_id

    assert app.test_client().get("/me", headers=bearer(para.issue_jwt("u"))).text == "u"
    extension.close()
    # Still open: a new token still fetches nothing and verifies.
    assert verifier.verify(para.issue_jwt("v")).user_id == "v"
    verifier.close()


def test_app_factory_pattern(para: MockPara) -> None:
    extension = ParaJWT()
    first, second = flask.Flask("first"), flask.Flask("second")
    for app in (first, second):
        app.config.update(PARA_API_KEY_ID=para.api_key_id, PARA_JWKS_URL=para.jwks_url)
        extension.init_app(app)
    with pytest.raises(ConfigurationError, match="already set up"):
        extension.init_app(first)
    extension.close()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "PARA_API_KEY_ID"),
        ({"PARA_API_KEY_ID": "x"}, "PARA_ENVIRONMENT"),
        (
            {"PARA_API_KEY_ID": "not-a-uuid", "PARA_ENVIRONMENT": "prod"},
            "ParaJWT: app.config\\['PARA_API_KEY_ID'\\]",
        ),
        (
            {"PARA_API_KEY_ID": "x", "PARA_ENVIRONMENT": "prod", "PARA_JWKS_URL": "http://h"},
            "exactly one",
        ),
        (
            {
                "PARA_API_KEY_ID": "0b8f2f4c-64a8-4b83-b36e-bd4c3e4b6c11",
                "PARA_ENVIRONMENT": "prod",
                "PARA_VERIFIER_OPTIONS": {"leewy": 5},
            },
            "PARA_VERIFIER_OPTIONS",
        ),
    ],
)
def test_misconfiguration_names_paraJWT_and_the_key(config: dict[str, Any], message: str) -> None:
    app = flask.Flask("bad")
    app.config.update(config)
    with pytest.raises(ConfigurationError, match=message) as raised:
        ParaJWT(app)
    assert "ParaJWT" in str(raised.value)


def test_wrong_arguments_and_options_fail_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="SyncParaVerifier"):
        ParaJWT(verifier=object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="did you mean 'wallet_types'"):
        para_required(walet_types={"EVM"})  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match="wallet_types"):
        para_required(wallet_types="EVM")
    with pytest.raises(ConfigurationError, match="View class"):
        para_required(MethodView)


def test_a_secret_key_in_the_config_never_shows_in_an_error(para: MockPara) -> None:
    app = flask.Flask("secret")
    app.config.update(PARA_SECRET_API_KEY="sk_live_very_secret", PARA_ENVIRONMENT="nowhere")
    with pytest.raises(ConfigurationError) as raised:
        ParaJWT(app)
    assert "very_secret" not in str(raised.value)


def test_decorators_outside_a_para_app_say_what_to_do() -> None:
    app = flask.Flask("bare")

    @app.get("/me")
    @para_required
    def me() -> str:
        return "no"

    app.testing = True
    with pytest.raises(ConfigurationError, match=r"ParaJWT\(app\)"):
        app.test_client().get("/me")


def test_session_required_checks_the_verification_token(para: MockPara) -> None:
    app = flask.Flask("sessions")
    api = para.sync_api(backoff=0)
    extension = ParaJWT(app, api=api)

    @app.post("/login")
    @para_session_required
    def login() -> dict[str, Any]:
        # The view can still read the body the decorator looked into.
        return {"user": get_session().identifier, "body": flask.request.get_json(silent=True)}

    client = app.test_client()
    token = para.issue_verification_token(identifier="a@example.com")
    by_header = client.post("/login", headers={"X-Para-Verification-Token": token})
    assert by_header.status_code == 200
    by_body = client.post("/login", json={"verificationToken": token, "n": 1})
    assert by_body.get_json()["body"] == {"verificationToken": token, "n": 1}

    missing = client.post("/login")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == 'ParaVerificationToken realm="para"'
    not_json = client.post("/login", data=b"{", content_type="application/json")
    assert not_json.status_code == 400
    too_big = client.post("/login", json={"verificationToken": token, "pad": "x" * 70_000})
    assert too_big.status_code == 413
    assert json.loads(too_big.data)["error"] == "invalid_request"

    # A JWT is not a verification token: 400, as from every adapter, never a 500.
    jwt_instead = client.post("/login", headers={"X-Para-Verification-Token": para.issue_jwt()})
    assert jwt_instead.status_code == 400
    assert jwt_instead.get_json()["error_description"] == "This is not a Para verification token"

    para.expire_session(token)
    expired = client.post("/login", headers={"X-Para-Verification-Token": token})
    assert expired.status_code == 401
    assert expired.get_json()["error"] == "invalid_token"
    extension.close()
    api.close()


def test_close_stops_the_background_thread(para: MockPara) -> None:
    app, extension = make_app(para)
    app.test_client().get("/me", headers=bearer(para.issue_jwt()))
    assert any(t.name == "para_jwt-io" for t in threading.enumerate())
    extension.close()
    assert not any(t.name == "para_jwt-io" for t in threading.enumerate())


def test_the_extension_builds_the_sync_classes(para: MockPara) -> None:
    app, extension = make_app(para, PARA_SECRET_API_KEY=para.secret_api_key)
    state = app.extensions["para_jwt"]
    assert isinstance(state.verifier, SyncParaVerifier)
    assert isinstance(state.api, SyncParaAPI)
    extension.close()


def load_example() -> Any:
    path = Path(__file__).parent.parent / "examples" / "flask_app.py"
    spec = importlib.util.spec_from_file_location("flask_app_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_app(para: MockPara) -> None:
    example = load_example()
    app = example.create_app(
        PARA_API_KEY_ID=para.api_key_id,
        PARA_ENVIRONMENT=None,
        PARA_JWKS_URL=para.jwks_url,
        PARA_VERIFIER_OPTIONS={"clock": para.clock},
    )
    client = app.test_client()
    try:
        assert client.get("/health").get_json() == {"ok": True}
        assert client.get("/me").status_code == 401
        wallet = para.make_wallet("EVM")
        token = para.issue_jwt("user-7", wallets=[wallet])
        assert client.get("/me", headers=bearer(token)).get_json() == {
            "user_id": "user-7",
            "evm": wallet["address"],
        }
        assert client.post("/trades", headers=bearer(token)).status_code == 201
        no_wallet = para.issue_jwt(wallets=[])
        assert client.post("/trades", headers=bearer(no_wallet)).status_code == 403
    finally:
        example.para.close()
