"""MockPara, checked over real HTTP with aiohttp and real signatures with joserfc."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import subprocess
import sys
import threading
import urllib.request
import uuid
import warnings
from collections.abc import AsyncIterator
from email.utils import formatdate
from typing import Any

import aiohttp
import pytest
from joserfc import jws
from joserfc.errors import BadSignatureError, SecurityWarning, UnsupportedKeyAlgorithmError
from joserfc.jwk import import_key

from para_jwt.claims import ParaClaims, WalletType
from para_jwt.testing import FakeClock, MockPara, RecordedRequest

BASE58 = re.compile(r"[1-9A-HJ-NP-Za-km-z]{44}")
START = 1_750_000_000.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
async def para(clock: FakeClock) -> AsyncIterator[MockPara]:
    async with MockPara(clock=clock) as mock:
        yield mock


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def segments(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    header, payload, signature = token.split(".")
    return json.loads(b64decode(header)), json.loads(b64decode(payload)), b64decode(signature)


def verify(token: str, jwk: dict[str, Any], alg: str) -> bytes:
    """The payload, if ``token`` carries a valid ``alg`` signature by ``jwk``."""
    with warnings.catch_warnings():
        # joserfc flags EdDSA as deprecated; the kit supports it for refusal tests.
        warnings.simplefilter("ignore", SecurityWarning)
        return jws.deserialize_compact(token, import_key(jwk), algorithms=[alg]).payload


async def fetch_jwks(http: aiohttp.ClientSession, para: MockPara) -> dict[str, Any]:
    async with http.get(para.jwks_url) as response:
        assert response.status == 200
        document: dict[str, Any] = await response.json()
        return document


def published(document: dict[str, Any], kid: str) -> dict[str, Any]:
    return next(jwk for jwk in document["keys"] if jwk["kid"] == kid)


async def post(
    http: aiohttp.ClientSession, para: MockPara, path: str, body: Any, *, key: str | None = None
) -> tuple[int, Any]:
    headers = {"x-external-api-key": para.secret_api_key if key is None else key}
    async with http.post(para.base_url + path, json=body, headers=headers) as response:
        return response.status, await response.json()


# --- identity and lifecycle ------------------------------------------------------------


async def test_defaults_look_like_para_credentials(para: MockPara) -> None:
    assert uuid.UUID(para.api_key_id).version == 4
    assert re.fullmatch(r"sandbox_[0-9a-f]{32}", para.secret_api_key)
    assert para.port > 0
    assert para.base_url == f"http://127.0.0.1:{para.port}/"
    assert para.jwks_url == para.base_url + ".well-known/jwks.json"


async def test_two_mocks_get_different_ports_and_credentials() -> None:
    async with MockPara() as first, MockPara() as second:
        assert first.port != second.port
        assert first.api_key_id != second.api_key_id
        assert first.secret_api_key != second.secret_api_key
        assert first.current_kid != second.current_kid


async def test_addresses_need_a_started_server_and_it_starts_once() -> None:
    para = MockPara()
    with pytest.raises(RuntimeError, match="not started"):
        _ = para.base_url
    await para.start()
    try:
        with pytest.raises(RuntimeError, match="already started"):
            await para.start()
    finally:
        await para.close()
        await para.close()


async def test_close_stops_listening(http: aiohttp.ClientSession) -> None:
    async with MockPara() as para:
        url = para.jwks_url
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.get(url):
            pass


async def test_repr_shows_no_secret_key_or_private_key(para: MockPara) -> None:
    text = repr(para)
    assert para.api_key_id in text
    assert para.secret_api_key not in text
    assert para.private_jwk()["d"] not in text


def test_para_jwt_does_not_import_the_testing_kit() -> None:
    code = "import sys, para_jwt; print('para_jwt.testing' in sys.modules)"
    result = subprocess.run(  # noqa: S603 - our own interpreter, fixed code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_unknown_key_algorithm_is_refused() -> None:
    with pytest.raises(ValueError, match="alg must be one of"):
        MockPara(alg="HS256")


# --- tokens ------------------------------------------------------------------------------


async def test_token_has_paras_exact_shape(
    para: MockPara, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    token = para.issue_jwt()
    header, payload, _ = segments(token)

    assert header == {"alg": "RS256", "typ": "JWT", "kid": para.current_kid}
    assert list(payload) == ["data", "iat", "exp", "sub", "aud"]
    data = payload["data"]
    assert list(data) == ["userId", "wallets", "email", "authType", "identifier"]
    assert payload["iat"] == int(clock.now)
    assert payload["exp"] - payload["iat"] == 1800
    assert payload["sub"] == data["userId"]
    assert uuid.UUID(data["userId"]).version == 4
    assert payload["aud"] == para.api_key_id
    assert data["authType"] == "email"
    assert re.fullmatch(r"user-[0-9a-f]+@example\.com", data["email"])
    assert data["identifier"] == data["email"]

    evm, solana = data["wallets"]
    assert list(evm) == ["id", "type", "address", "publicKey"]
    assert evm["type"] == "EVM"
    assert re.fullmatch(r"0x[0-9a-f]{40}", evm["address"])
    assert re.fullmatch(r"0x04[0-9a-f]{128}", evm["publicKey"])
    assert solana["type"] == "SOLANA"
    assert BASE58.fullmatch(solana["address"])
    assert solana["publicKey"] == ""

    jwk = published(await fetch_jwks(http, para), para.current_kid)
    assert json.loads(verify(token, jwk, "RS256")) == payload


async def test_tokens_parse_as_para_claims(para: MockPara) -> None:
    token = para.issue_jwt("user-1", oauth_method="google")
    _, payload, _ = segments(token)
    claims = ParaClaims.from_payload(payload, audience=para.api_key_id, key_id=para.current_kid)
    assert claims.user_id == "user-1"
    assert claims.oauth_method == "GOOGLE"
    assert [w.type for w in claims.wallets] == [WalletType.EVM, WalletType.SOLANA]
    assert claims.connected_wallets == ()


async def test_every_token_gets_fresh_random_values(para: MockPara) -> None:
    first, second = (segments(para.issue_jwt())[1]["data"] for _ in range(2))
    assert first["userId"] != second["userId"]
    assert first["email"] != second["email"]
    assert first["wallets"][0]["address"] != second["wallets"][0]["address"]
    assert first["wallets"][1]["address"] != second["wallets"][1]["address"]


async def test_kid_is_the_rfc7638_thumbprint(para: MockPara, http: aiohttp.ClientSession) -> None:
    jwk = published(await fetch_jwks(http, para), para.current_kid)
    assert {"kty": "RSA", "use": "sig", "alg": "RS256"}.items() <= jwk.items()
    modulus = b64decode(jwk["n"])
    assert len(modulus) == 256
    assert modulus[0] & 0x80  # all 2048 bits used: an RSA-2048 key
    required = json.dumps({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"))
    digest = base64.urlsafe_b64encode(hashlib.sha256(required.encode()).digest()).rstrip(b"=")
    assert jwk["kid"] == digest.decode()
    assert len(jwk["kid"]) == 43


@pytest.mark.parametrize(
    ("alg", "kty", "crv"),
    [("RS256", "RSA", None), ("PS256", "RSA", None), ("ES256", "EC", "P-256"),
     ("EdDSA", "OKP", "Ed25519")],
)
async def test_each_algorithm_signs_verifiable_tokens(
    alg: str, kty: str, crv: str | None, http: aiohttp.ClientSession
) -> None:
    async with MockPara(alg=alg) as para:
        token = para.issue_jwt()
        jwk = published(await fetch_jwks(http, para), para.current_kid)
    assert (jwk["kty"], jwk.get("crv"), jwk["alg"]) == (kty, crv, alg)
    assert "d" not in jwk
    assert segments(token)[0]["alg"] == alg
    assert json.loads(verify(token, jwk, alg))["aud"] == para.api_key_id


async def test_a_token_does_not_verify_with_another_mocks_key(para: MockPara) -> None:
    other = MockPara()
    forged = other.issue_jwt(header={"kid": para.current_kid})
    assert segments(forged)[0]["kid"] == para.current_kid
    with pytest.raises(BadSignatureError):
        verify(forged, para.public_jwk(), "RS256")


async def test_optional_data_members(para: MockPara) -> None:
    connected = [MockPara.make_wallet("EVM")]
    data = segments(
        para.issue_jwt(
            auth_type="phone",
            oauth_method="google",
            connected_wallets=connected,
            extra_data={"telegramUserId": 42, "userId": "changed", "wallets": MockPara.OMIT},
        )
    )[1]["data"]
    assert list(data) == [
        "userId", "authType", "identifier", "oAuthMethod", "phone", "connectedWallets",
        "telegramUserId",
    ]
    assert data["userId"] == "changed"
    assert re.fullmatch(r"\+1202555\d{4}", data["phone"])
    assert data["identifier"] == data["phone"]
    assert data["oAuthMethod"] == "google"
    assert data["connectedWallets"] == connected


@pytest.mark.parametrize(
    ("auth_type", "pattern"),
    [("externalWallet", r"0x[0-9a-f]{40}"), ("telegram", r"\d+"), ("farcaster", r"farcaster-.+")],
)
async def test_identifier_defaults_fit_the_auth_type(
    para: MockPara, auth_type: str, pattern: str
) -> None:
    data = segments(para.issue_jwt(auth_type=auth_type))[1]["data"]
    assert re.fullmatch(pattern, data["identifier"])
    assert "email" not in data


async def test_none_leaves_members_out(para: MockPara) -> None:
    data = segments(para.issue_jwt(wallets=None, email=None, identifier=None, auth_type=None))[1]
    assert data["data"] == {"userId": data["sub"]}


async def test_registered_claims_can_be_bent(para: MockPara) -> None:
    token = para.issue_jwt(
        "u1",
        audience=["a", "b"],
        issued_at=START - 100.7,
        expires_in=-50,
        exp=MockPara.OMIT,
        nbf=START + 60,
        iss="https://evil.example",
        sub="u2",
    )
    payload = segments(token)[1]
    assert payload["aud"] == ["a", "b"]
    assert payload["iat"] == int(START - 101)
    assert "exp" not in payload
    assert payload["nbf"] == START + 60
    assert payload["iss"] == "https://evil.example"
    assert (payload["sub"], payload["data"]["userId"]) == ("u2", "u1")
    assert list(payload)[:4] == ["data", "iat", "sub", "aud"]


async def test_expiry_follows_the_clock(para: MockPara, clock: FakeClock) -> None:
    clock.now = START + 1000.9
    payload = segments(para.issue_jwt(expires_in=-1))[1]
    assert (payload["iat"], payload["exp"]) == (int(START) + 1000, int(START) + 999)


async def test_header_members_can_be_added_replaced_and_removed(para: MockPara) -> None:
    token = para.issue_jwt(header={"kid": MockPara.OMIT, "typ": "at+jwt", "jku": "https://x"})
    header = segments(token)[0]
    assert header == {"alg": "RS256", "typ": "at+jwt", "jku": "https://x"}
    assert verify(token, para.public_jwk(), "RS256")


async def test_raw_header_bytes_are_signed_verbatim(para: MockPara) -> None:
    raw = b'{"alg":"RS256","alg":"none","kid":"x"}'
    token = para.sign({"a": 1}, header=raw)
    assert b64decode(token.split(".")[0]) == raw
    signing_input = token.rsplit(".", 1)[0].encode()
    public = import_key(para.public_jwk())
    signature = b64decode(token.rsplit(".", 1)[1])
    assert jws.JWSRegistry.algorithms["RS256"].verify(signing_input, signature, public)


async def test_sign_keeps_payload_bytes_exactly(para: MockPara) -> None:
    payload = b'{"b": 1, "a": [1.0, "\\u00e9"]}  '
    token = para.sign(payload)
    assert b64decode(token.split(".")[1]) == payload
    assert verify(token, para.public_jwk(), "RS256") == payload


async def test_alg_override_signs_with_that_algorithm(para: MockPara) -> None:
    token = para.issue_jwt(alg="PS256")
    assert segments(token)[0]["alg"] == "PS256"
    unpinned = {k: v for k, v in para.public_jwk().items() if k != "alg"}
    assert verify(token, unpinned, "PS256")
    # The published JWK says RS256, so a verifier honouring it refuses the token.
    with pytest.raises(UnsupportedKeyAlgorithmError, match="RS256"):
        verify(token, para.public_jwk(), "PS256")


async def test_alg_none_gives_an_empty_signature(para: MockPara) -> None:
    token = para.issue_jwt(alg="none")
    assert token.endswith(".")
    assert segments(token)[0]["alg"] == "none"


async def test_alg_must_fit_the_key(para: MockPara) -> None:
    with pytest.raises(ValueError, match="cannot sign with ES256"):
        para.issue_jwt(alg="ES256")
    with pytest.raises(ValueError, match="no JWS algorithm"):
        para.sign({}, alg="XX999")


# --- keys and rotation -----------------------------------------------------------------


async def test_rotate_signs_with_a_new_key_and_keeps_the_old_published(
    para: MockPara, http: aiohttp.ClientSession
) -> None:
    old = para.current_kid
    old_token = para.issue_jwt()
    new = para.rotate()
    assert new == para.current_kid != old
    assert segments(para.issue_jwt())[0]["kid"] == new
    document = await fetch_jwks(http, para)
    assert [jwk["kid"] for jwk in document["keys"]] == [old, new]
    assert verify(old_token, published(document, old), "RS256")


async def test_rotate_can_change_the_algorithm(para: MockPara) -> None:
    para.rotate("ES256")
    assert segments(para.issue_jwt())[0]["alg"] == "ES256"
    assert para.public_jwk()["crv"] == "P-256"


async def test_publish_next_publishes_before_signing(
    para: MockPara, http: aiohttp.ClientSession
) -> None:
    old = para.current_kid
    upcoming = para.publish_next()
    assert para.next_kid == upcoming
    assert {jwk["kid"] for jwk in (await fetch_jwks(http, para))["keys"]} == {old, upcoming}
    assert segments(para.issue_jwt())[0]["kid"] == old
    with pytest.raises(ValueError, match="is RS256, not ES256"):
        para.rotate("ES256")
    assert para.rotate() == upcoming
    assert para.next_kid is None
    assert segments(para.issue_jwt())[0]["kid"] == upcoming


async def test_retire_unpublishes_and_stops_signing(
    para: MockPara, http: aiohttp.ClientSession
) -> None:
    old = para.current_kid
    new = para.rotate()
    para.retire(old)
    assert [jwk["kid"] for jwk in (await fetch_jwks(http, para))["keys"]] == [new]
    with pytest.raises(ValueError, match="retired"):
        para.issue_jwt(kid=old)
    para.retire(new)
    assert (await fetch_jwks(http, para))["keys"] == []
    with pytest.raises(RuntimeError, match="rotate"):
        para.issue_jwt()
    assert segments(para.issue_jwt(kid=para.rotate()))[0]["kid"] == para.current_kid


async def test_retiring_the_prepared_key_cancels_the_rollover(para: MockPara) -> None:
    old = para.current_kid
    para.retire(para.publish_next())
    assert para.next_kid is None
    assert para.rotate() not in (old, None)


async def test_unknown_kids_are_key_errors(para: MockPara) -> None:
    with pytest.raises(KeyError):
        para.retire("nope")
    with pytest.raises(KeyError):
        para.issue_jwt(kid="nope")
    with pytest.raises(KeyError):
        para.public_jwk("nope")


async def test_publish_jwk_adds_a_raw_key_until_retired(
    para: MockPara, http: aiohttp.ClientSession
) -> None:
    hostile = {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0", "alg": "HS256"}
    para.publish_jwk(hostile)
    hostile["k"] = "changed after publishing"
    assert (await fetch_jwks(http, para))["keys"][-1] == {**hostile, "k": "c2VjcmV0"}
    para.retire("hmac")
    assert [jwk["kid"] for jwk in (await fetch_jwks(http, para))["keys"]] == [para.current_kid]


@pytest.mark.parametrize(
    ("document", "served"),
    [
        ({"keys": []}, b'{"keys":[]}'),
        ('{"keys": [{"kty": "RSA"}]}', b'{"keys": [{"kty": "RSA"}]}'),
        (b"\xff not json", b"\xff not json"),
    ],
)
async def test_set_jwks_serves_any_body_until_reset(
    para: MockPara, http: aiohttp.ClientSession, document: Any, served: bytes
) -> None:
    para.set_jwks(document)
    async with http.get(para.jwks_url) as response:
        assert await response.read() == served
    assert para.jwks()["keys"][0]["kid"] == para.current_kid
    para.set_jwks(None)
    assert await fetch_jwks(http, para) == para.jwks()


async def test_private_jwk_signs_tokens_that_verify_with_the_public_jwk(para: MockPara) -> None:
    token = jws.serialize_compact(
        {"alg": "RS256", "kid": para.current_kid}, b"outside", import_key(para.private_jwk())
    )
    assert verify(token, para.public_jwk(), "RS256") == b"outside"


# --- JWKS caching headers ---------------------------------------------------------------


async def test_jwks_caching_headers(para: MockPara, http: aiohttp.ClientSession) -> None:
    async with http.get(para.jwks_url) as response:
        assert response.content_type == "application/json"
        assert response.headers["Cache-Control"] == "public, max-age=600"
        assert re.fullmatch(r'"[0-9a-f]{32}"', response.headers["ETag"])
        assert response.headers["Last-Modified"] == formatdate(START, usegmt=True)
        assert "Expires" not in response.headers
        assert "Age" not in response.headers

    para.cache_control = None
    para.expires = "Thu, 01 Jan 2026 00:00:00 GMT"
    para.age = 30
    para.last_modified = "garbage"
    async with http.get(para.jwks_url) as response:
        assert "Cache-Control" not in response.headers
        assert response.headers["Expires"] == "Thu, 01 Jan 2026 00:00:00 GMT"
        assert response.headers["Age"] == "30"
        assert response.headers["Last-Modified"] == "garbage"


async def test_cache_control_is_a_constructor_option(http: aiohttp.ClientSession) -> None:
    async with MockPara(cache_control="no-store") as para, http.get(para.jwks_url) as response:
        assert response.headers["Cache-Control"] == "no-store"


async def test_if_none_match_revalidates_until_the_keys_change(
    para: MockPara, http: aiohttp.ClientSession
) -> None:
    async with http.get(para.jwks_url) as response:
        etag = response.headers["ETag"]
    for sent in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        async with http.get(para.jwks_url, headers={"If-None-Match": sent}) as response:
            assert response.status == 304
            assert await response.read() == b""
            assert response.headers["ETag"] == etag
            assert response.headers["Cache-Control"] == "public, max-age=600"
    para.rotate()
    async with http.get(para.jwks_url, headers={"If-None-Match": etag}) as response:
        assert response.status == 200
        assert response.headers["ETag"] != etag
        assert len((await response.json())["keys"]) == 2
    assert para.jwks_requests == 6


async def test_if_modified_since_follows_the_clock(
    para: MockPara, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    async with http.get(para.jwks_url) as response:
        stamp = response.headers["Last-Modified"]
    async with http.get(para.jwks_url, headers={"If-Modified-Since": stamp}) as response:
        assert response.status == 304
    clock.now += 10
    para.publish_next()
    async with http.get(para.jwks_url, headers={"If-Modified-Since": stamp}) as response:
        assert response.status == 200
        assert response.headers["Last-Modified"] == formatdate(START + 10, usegmt=True)
    # If-None-Match wins over If-Modified-Since (RFC 9110 §13.1.3).
    later = formatdate(START + 3600, usegmt=True)
    headers = {"If-None-Match": '"stale"', "If-Modified-Since": later}
    async with http.get(para.jwks_url, headers=headers) as response:
        assert response.status == 200


# --- faults ----------------------------------------------------------------------------


async def test_fail_next_answers_the_status_then_recovers(
    para: MockPara, http: aiohttp.ClientSession
) -> None:
    para.fail_next(times=2)
    for _ in range(2):
        async with http.get(para.jwks_url) as response:
            assert response.status == 503
            assert "message" in await response.json()
    await fetch_jwks(http, para)
    assert para.jwks_requests == 3


async def test_fail_next_with_custom_body_and_headers(
    para: MockPara, http: aiohttp.ClientSession
) -> None:
    headers = {"Retry-After": "30", "Content-Type": "text/plain"}
    para.fail_next(429, body="slow down", headers=headers)
    async with http.get(para.jwks_url) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == "30"
        assert response.content_type == "text/plain"
        assert await response.text() == "slow down"


async def test_faults_run_in_order_one_per_request(
    para: MockPara, http: aiohttp.ClientSession
) -> None:
    para.fail_next(500)
    para.malformed_next()
    para.oversized_next(4096)
    statuses, sizes = [], []
    for _ in range(4):
        async with http.get(para.jwks_url) as response:
            statuses.append(response.status)
            sizes.append(len(await response.read()))
    assert statuses == [500, 200, 200, 200]
    assert sizes[2] == 4096
    assert sizes[1] < sizes[3] < 4096


async def test_malformed_next_is_not_json(para: MockPara, http: aiohttp.ClientSession) -> None:
    para.malformed_next()
    async with http.get(para.jwks_url) as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        body = await response.read()
    assert body
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)


async def test_oversized_next_is_the_real_key_set_padded(
    para: MockPara, http: aiohttp.ClientSession
) -> None:
    para.oversized_next(2 * 1024 * 1024)
    async with http.get(para.jwks_url) as response:
        body = await response.read()
    assert len(body) == 2 * 1024 * 1024
    assert json.loads(body) == para.jwks()


async def test_drop_next_closes_without_an_answer(para: MockPara) -> None:
    para.drop_next()
    reader, writer = await asyncio.open_connection("127.0.0.1", para.port)
    try:
        writer.write(b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        assert await reader.read() == b""
    finally:
        writer.close()
        await writer.wait_closed()
    assert para.jwks_requests == 1


async def test_drop_next_is_a_disconnect_for_aiohttp(
    para: MockPara, http: aiohttp.ClientSession
) -> None:
    token = para.issue_verification_token()
    para.drop_next(endpoint="sessions")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post(http, para, "sessions/verify", {"verificationToken": token})
    assert (await post(http, para, "sessions/verify", {"verificationToken": token}))[0] == 200


async def test_redirect_next(para: MockPara, http: aiohttp.ClientSession) -> None:
    para.redirect_next("https://evil.example/jwks.json")
    async with http.get(para.jwks_url, allow_redirects=False) as response:
        assert response.status == 302
        assert response.headers["Location"] == "https://evil.example/jwks.json"


async def test_latency_delays_answers(para: MockPara, http: aiohttp.ClientSession) -> None:
    para.set_latency(0.5)
    with pytest.raises(asyncio.TimeoutError):
        async with http.get(para.jwks_url, timeout=aiohttp.ClientTimeout(total=0.05)):
            pass
    para.set_latency(0)
    await fetch_jwks(http, para)
    assert para.jwks_requests == 2


async def test_down_until_up_and_queued_faults_wait(
    para: MockPara, http: aiohttp.ClientSession
) -> None:
    para.fail_next(500)
    para.down()
    for _ in range(3):
        async with http.get(para.jwks_url) as response:
            assert response.status == 503
    para.up()
    async with http.get(para.jwks_url) as response:
        assert response.status == 500
    await fetch_jwks(http, para)
    assert para.jwks_requests == 5


async def test_faults_are_per_endpoint(para: MockPara, http: aiohttp.ClientSession) -> None:
    para.down("wallets")
    para.fail_next(502, endpoint="sessions")
    await fetch_jwks(http, para)
    assert (await post(http, para, "sessions/verify", {"verificationToken": "x"}))[0] == 502
    assert (await post(http, para, "sessions/verify", {"verificationToken": "x"}))[0] == 403
    assert (await post(http, para, "wallets/verify", {"address": "x"}))[0] == 503


@pytest.mark.parametrize(
    ("misuse", "message"),
    [
        (lambda p: p.fail_next(times=0), "times"),
        (lambda p: p.fail_next(101), "final HTTP status"),
        (lambda p: p.drop_next(endpoint="keys"), "unknown endpoint"),
        (lambda p: p.set_latency(-1), "latency"),
        (lambda p: p.oversized_next(-1), "size"),
        (lambda p: p.down("everything"), "unknown endpoint"),
    ],
)
def test_fault_arguments_are_checked(misuse: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        misuse(MockPara())


# --- /sessions/verify -------------------------------------------------------------------


async def test_sessions_verify_answers_like_para(
    para: MockPara, http: aiohttp.ClientSession
) -> None:
    token = para.issue_verification_token(identifier="a@example.com")
    assert uuid.UUID(token).version == 4
    status, body = await post(http, para, "sessions/verify", {"verificationToken": token})
    assert (status, body) == (200, {"authType": "email", "identifier": "a@example.com"})

    oauth = para.issue_verification_token(auth_type="phone", oauth_method="google")
    status, body = await post(http, para, "sessions/verify", {"verificationToken": oauth})
    assert status == 200
    assert body["authType"] == "phone"
    assert body["identifier"].startswith("+")
    assert body["oAuthMethod"] == "google"
    assert para.sessions_requests == 2


async def test_sessions_verify_refuses_unknown_and_expired_tokens(
    para: MockPara, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    forever = para.issue_verification_token()
    brief = para.issue_verification_token(expires_in=60)
    for token in (para.issue_jwt(), str(uuid.uuid4())):
        status, body = await post(http, para, "sessions/verify", {"verificationToken": token})
        assert status == 403
        assert body["message"]
    clock.now += 60
    assert (await post(http, para, "sessions/verify", {"verificationToken": brief}))[0] == 403
    assert (await post(http, para, "sessions/verify", {"verificationToken": forever}))[0] == 200
    para.expire_session(forever)
    assert (await post(http, para, "sessions/verify", {"verificationToken": forever}))[0] == 403


@pytest.mark.parametrize("path", ["sessions/verify", "wallets/verify"])
async def test_verify_endpoints_demand_the_secret_key(
    para: MockPara, http: aiohttp.ClientSession, path: str
) -> None:
    for key in ("", "sandbox_wrong", para.secret_api_key + "x"):
        status, body = await post(http, para, path, {}, key=key)
        assert status == 401
        assert para.secret_api_key not in json.dumps(body)
    async with http.post(para.base_url + path, json={}) as response:
        assert response.status == 401
    # HTTP header names are case-insensitive.
    headers = {"X-EXTERNAL-API-KEY": para.secret_api_key}
    async with http.post(para.base_url + path, json={}, headers=headers) as response:
        assert response.status == 400


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("sessions/verify", b"not json"),
        ("sessions/verify", b'["verificationToken"]'),
        ("sessions/verify", b"{}"),
        ("sessions/verify", b'{"verificationToken": 5}'),
        ("wallets/verify", b'{"address": null}'),
        ("wallets/verify", b'{"wallet": "0xabc"}'),
    ],
)
async def test_verify_endpoints_refuse_bad_bodies(
    para: MockPara, http: aiohttp.ClientSession, path: str, body: bytes
) -> None:
    headers = {"x-external-api-key": para.secret_api_key, "Content-Type": "application/json"}
    async with http.post(para.base_url + path, data=body, headers=headers) as response:
        assert response.status == 400
        assert (await response.json())["message"]


async def test_verify_endpoints_need_a_json_content_type(
    para: MockPara, http: aiohttp.ClientSession
) -> None:
    token = para.issue_verification_token()
    headers = {"x-external-api-key": para.secret_api_key, "Content-Type": "text/plain"}
    body = json.dumps({"verificationToken": token})
    async with http.post(para.base_url + "sessions/verify", data=body, headers=headers) as resp:
        assert resp.status == 400


async def test_expire_session_needs_a_known_token(para: MockPara) -> None:
    with pytest.raises(KeyError):
        para.expire_session("unknown")


# --- /wallets/verify --------------------------------------------------------------------


async def test_wallets_in_issued_tokens_verify(
    para: MockPara, http: aiohttp.ClientSession
) -> None:
    connected = MockPara.make_wallet("EVM")
    data = segments(para.issue_jwt(connected_wallets=[connected]))[1]["data"]
    for wallet in data["wallets"]:
        status, body = await post(http, para, "wallets/verify", {"address": wallet["address"]})
        assert (status, body) == (200, {"walletId": wallet["id"]})
    # Connected wallets are external: Para does not custody them.
    assert (await post(http, para, "wallets/verify", {"address": connected["address"]}))[0] == 404


async def test_register_wallet_matches_addresses_exactly(
    para: MockPara, http: aiohttp.ClientSession
) -> None:
    address = "0xAbCdEf0000000000000000000000000000000001"
    wallet_id = para.register_wallet(address)
    assert uuid.UUID(wallet_id).version == 4
    assert para.register_wallet("0x02", "w-2") == "w-2"
    assert await post(http, para, "wallets/verify", {"address": address}) == (
        200, {"walletId": wallet_id}
    )
    status, body = await post(http, para, "wallets/verify", {"address": address.lower()})
    assert status == 404
    assert body["message"]
    assert para.wallets_requests == 2


async def test_hostile_wallet_values_are_signed_but_not_registered(
    para: MockPara, http: aiohttp.ClientSession
) -> None:
    data = segments(para.issue_jwt(wallets=[{"address": "0x1"}, "junk"]))[1]["data"]
    assert data["wallets"] == [{"address": "0x1"}, "junk"]
    assert (await post(http, para, "wallets/verify", {"address": "0x1"}))[0] == 404


# --- request log -----------------------------------------------------------------------


async def test_requests_are_recorded(para: MockPara, http: aiohttp.ClientSession) -> None:
    await fetch_jwks(http, para)
    await post(http, para, "wallets/verify", {"address": "0x1"})
    async with http.get(para.base_url + "nowhere") as response:
        assert response.status == 404

    jwks_request, wallet_request, stray = para.requests
    assert (jwks_request.method, jwks_request.path, jwks_request.body) == (
        "GET", "/.well-known/jwks.json", b""
    )
    assert wallet_request.method == "POST"
    assert wallet_request.json() == {"address": "0x1"}
    assert wallet_request.headers["X-External-Api-Key"] == para.secret_api_key
    assert stray.path == "/nowhere"
    assert (para.jwks_requests, para.wallets_requests, para.sessions_requests) == (1, 1, 0)

    para.reset_counters()
    assert para.requests == []
    assert (para.jwks_requests, para.wallets_requests) == (0, 0)


async def test_recorded_request_repr_hides_credentials(
    para: MockPara, http: aiohttp.ClientSession
) -> None:
    await post(http, para, "sessions/verify", {"verificationToken": "t"})
    recorded = para.requests[-1]
    assert isinstance(recorded, RecordedRequest)
    assert para.secret_api_key not in repr(recorded)
    assert "<redacted>" in repr(recorded)
    assert f"<{len(recorded.body)} bytes>" in repr(recorded)


async def test_flood_of_concurrent_fetches_is_counted(
    para: MockPara, http: aiohttp.ClientSession
) -> None:
    results = await asyncio.gather(*(fetch_jwks(http, para) for _ in range(50)))
    assert all(document == para.jwks() for document in results)
    assert para.jwks_requests == 50
    assert len(para.requests) == 50


def test_mock_para_as_a_plain_context_manager_serves_sync_code(clock: FakeClock) -> None:
    """``with MockPara()`` runs the server on its own thread; the test's thread
    has no event loop and still scripts the mock and calls it over HTTP."""
    with MockPara(clock=clock) as para:
        thread = [t for t in threading.enumerate() if t.name == "MockPara"]
        assert len(thread) == 1
        with urllib.request.urlopen(para.jwks_url, timeout=10) as response:  # noqa: S310 - http://127.0.0.1
            kids = [key["kid"] for key in json.load(response)["keys"]]
        assert kids == [para.current_kid]
        new_kid = para.rotate()
        with para.sync_verifier() as verifier:
            assert verifier.verify(para.issue_jwt("u-1")).user_id == "u-1"
            assert verifier.verify(para.issue_jwt("u-1")).key_id == new_kid
        assert para.jwks_requests == 2
        with pytest.raises(RuntimeError, match="already started"):
            para.__enter__()
    assert not thread[0].is_alive()


async def test_factories_are_typed(para: MockPara) -> None:
    from para_jwt import ParaAPI, ParaVerifier, SyncParaAPI, SyncParaVerifier

    async with para.verifier() as verifier, para.api() as api:
        assert isinstance(verifier, ParaVerifier)
        assert isinstance(api, ParaAPI)
    with para.sync_verifier() as sync_verifier, para.sync_api() as sync_api:
        assert isinstance(sync_verifier, SyncParaVerifier)
        assert isinstance(sync_api, SyncParaAPI)
