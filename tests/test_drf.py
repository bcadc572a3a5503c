"""para_jwt.django.rest_framework through DRF's APIClient, against MockPara over loopback."""

from __future__ import annotations

import json
import traceback
from collections.abc import Iterator
from dataclasses import dataclass

import para_django_project
import pytest

# DRF's request and test modules read its settings when imported.
para_django_project.configure()

from django.test import AsyncClient, override_settings  # noqa: E402
from rest_framework.request import Request  # noqa: E402
from rest_framework.test import APIClient, APIRequestFactory  # noqa: E402

from para_jwt import ParaClaims  # noqa: E402
from para_jwt.django import ParaUser  # noqa: E402
from para_jwt.django.rest_framework import (  # noqa: E402
    HasParaWallet,
    ParaAuthentication,
    ParaRefusal,
    ParaRequired,
)
from para_jwt.testing import FakeClock, MockPara  # noqa: E402


@pytest.fixture
def para(clock: FakeClock) -> Iterator[MockPara]:
    with (
        MockPara(clock=clock) as mock,
        override_settings(PARA_JWT=para_django_project.para_jwt_for(mock)),
    ):
        yield mock


@pytest.fixture(params=["with middleware", "without middleware"])
def client(request: pytest.FixtureRequest, para: MockPara) -> Iterator[APIClient]:
    middleware = ["para_jwt.django.ParaMiddleware"] if request.param == "with middleware" else []
    with override_settings(MIDDLEWARE=middleware):
        yield APIClient()


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def test_authenticate_returns_the_user_and_the_claims(client: APIClient, para: MockPara) -> None:
    response = client.get("/drf/me", **bearer(para.issue_jwt("user-1")))
    assert response.status_code == 200
    assert response.json() == {"user": "user-1", "claims_user": "user-1"}


def authenticated(token: str) -> tuple[object, object] | None:
    """``ParaAuthentication().authenticate`` on a DRF request carrying ``token``."""
    request = Request(APIRequestFactory().get("/x", HTTP_AUTHORIZATION=f"Bearer {token}"))
    return ParaAuthentication().authenticate(request)


def test_the_default_user_is_an_unsaved_para_user(para: MockPara) -> None:
    result = authenticated(para.issue_jwt("user-9"))
    assert result is not None
    user, claims = result
    assert isinstance(claims, ParaClaims)
    assert isinstance(user, ParaUser)
    assert (user.id, user.pk, user.is_authenticated, user.is_anonymous) == (
        "user-9",
        "user-9",
        True,
        False,
    )
    assert not user.has_perm("app.delete_everything")


@dataclass
class ProjectUser:
    name: str


def project_user(claims: ParaClaims) -> ProjectUser:
    return ProjectUser(f"project:{claims.user_id}")


def test_a_setting_maps_claims_to_the_projects_user(para: MockPara) -> None:
    setting = para_django_project.para_jwt_for(para, USER=f"{__name__}.project_user")
    with override_settings(PARA_JWT=setting):
        result = authenticated(para.issue_jwt("user-5"))
    assert result is not None
    assert result[0] == ProjectUser("project:user-5")


def test_no_token_is_401_with_the_shared_body_under_para_permissions(client: APIClient) -> None:
    response = client.get("/drf/me")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="para"'
    assert response.json() == {
        "error": "missing_token",
        "error_description": "This route requires a Para token",
    }


def test_drfs_own_is_authenticated_answers_401_not_403(client: APIClient) -> None:
    # authenticate_header() gives DRF the challenge, so NotAuthenticated stays a 401;
    # the body is DRF's own: IsAuthenticated is DRF's permission, not ours.
    response = client.get("/drf/default")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="para"'
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_invalid_tokens_are_refused_even_on_public_views(
    client: APIClient, para: MockPara, clock: FakeClock
) -> None:
    token = para.issue_jwt(expires_in=5)
    clock.advance(6)
    for path in ("/drf/me", "/drf/public"):
        response = client.get(path, **bearer(token))
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == (
            'Bearer realm="para", error="invalid_token", error_description="The token has expired"'
        )
        assert response.json() == {
            "error": "invalid_token",
            "error_description": "The token has expired",
        }
    assert client.get("/drf/public").json() == {"authenticated": False}


def test_malformed_header_is_400(client: APIClient) -> None:
    response = client.get("/drf/public", HTTP_AUTHORIZATION="Bearer a b")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_another_scheme_is_left_to_other_authenticators(client: APIClient) -> None:
    assert client.get("/drf/public", HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz").status_code == 200
    refused = client.get("/drf/me", HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz")
    assert refused.status_code == 401
    assert refused.json()["error"] == "missing_token"


def test_has_para_wallet(client: APIClient, para: MockPara) -> None:
    no_wallet = client.get("/drf/evm", **bearer(para.issue_jwt(wallets=[])))
    assert no_wallet.status_code == 403
    assert no_wallet.json() == {
        "error": "insufficient_scope",
        "error_description": "This route requires a Para EVM wallet",
    }
    assert 'error="insufficient_scope"' in no_wallet["WWW-Authenticate"]
    evm = para.issue_jwt("w", wallets=[para.make_wallet("EVM")])
    assert client.get("/drf/evm", **bearer(evm)).json() == {"user": "w"}


def test_keys_unreachable_is_503_with_retry_after(client: APIClient, para: MockPara) -> None:
    para.down()
    response = client.get("/drf/me", **bearer(para.issue_jwt()))
    assert response.status_code == 503
    assert int(response["Retry-After"]) >= 1
    assert not response.has_header("WWW-Authenticate")
    assert response.json()["error"] == "temporarily_unavailable"


def test_drf_renders_the_same_json_compactly_unless_the_handler_is_set(
    para: MockPara,
) -> None:
    # The one difference with the other adapters under DRF's own exception handler:
    # DRF's JSONRenderer writes compact JSON. The documented handler sends their bytes.
    client = APIClient()
    default = client.get("/drf/me")
    same = client.get("/matrix/me")
    assert json.loads(default.content) == json.loads(same.content)
    assert default.content == (
        b'{"error":"missing_token","error_description":"This route requires a Para token"}'
    )
    assert same.content == (
        b'{"error": "missing_token", "error_description": "This route requires a Para token"}'
    )


def test_permission_instances_check_their_options_at_definition() -> None:
    from para_jwt import ConfigurationError

    with pytest.raises(ConfigurationError, match="wallet_types"):
        HasParaWallet("DOGE")
    with pytest.raises(ConfigurationError, match="auth_types"):
        ParaRequired(auth_types="email")
    permission = ParaRequired(require_wallet=True)
    assert permission() is permission  # DRF instantiates permission_classes entries


async def test_under_asgi_the_middlewares_claims_are_reused(para: MockPara) -> None:
    token = para.issue_jwt("user-a")
    response = await AsyncClient().get("/drf/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json() == {"user": "user-a", "claims_user": "user-a"}
    refused = await AsyncClient().get("/drf/me")
    assert refused.status_code == 401
    assert refused.json()["error"] == "missing_token"
    assert para.jwks_requests == 1


def everything_an_error_reporter_sees(error: BaseException) -> str:
    """The exception chain with the locals of para_jwt's frames, and the para_jwt
    error behind the refusal (``rejection.cause``) likewise."""
    texts = []
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None:
            continue
        texts += [str(current), repr(current), repr(vars(current))]
        report = traceback.TracebackException.from_exception(current, capture_locals=True)
        texts += [f"{f.name} {f.locals}" for f in report.stack if "/para_jwt/" in f.filename]
        pending += [current.__cause__, current.__context__]
        if isinstance(current, ParaRefusal):
            pending.append(current.rejection.cause)
    return "\n".join(texts)


def test_no_token_is_reachable_from_a_drf_refusal(para: MockPara, clock: FakeClock) -> None:
    expired = para.issue_jwt(expires_in=60)
    clock.advance(61)
    para.down()
    fresh = para.issue_jwt()  # its key is unknown to a fresh verifier: 503
    headers = [f"Bearer {expired}", f"Bearer {expired} {expired}", f"Bearer {fresh}"]
    reports, statuses = [], []
    for header in headers:
        request = Request(APIRequestFactory().get("/x", HTTP_AUTHORIZATION=header))
        with pytest.raises(ParaRefusal) as raised:
            ParaAuthentication().authenticate(request)
        statuses.append(raised.value.status_code)
        reports.append(everything_an_error_reporter_sees(raised.value))
    assert statuses == [401, 400, 503]
    shown = "\n".join(reports)
    assert "django_request" in shown  # the frames' locals were captured
    for secret in (expired, fresh, expired.split(".")[2], fresh.split(".")[2]):
        assert secret not in shown
