"""No token, secret API key or verification token ever shows where people look.

Every public path we can reach runs against a real loopback Para (MockPara)
with the root logger at DEBUG, and everything it shows is collected: log
records (with their tracebacks), every exception's ``str``/``repr``/attributes
and traceback (chained ones too), the ``repr`` of every public object, JWKS
events and health snapshots, and the HTTP error bodies MockPara sends. None of
it may contain a secret:

* a JWT, or its payload or signature segment (each token a scenario used);
* the secret API key (whole, or without its ``sandbox_`` prefix), right or wrong;
* a verification token (a session-lookup ID).

To cover a new path, write one more ``@scenario`` coroutine: it gets a
``World``, calls ``world.show(...)`` / ``world.shown_error(...)`` on whatever
users or operators could see, and registers any new secret with
``world.secret(...)`` / ``world.token(...)``. ``para_jwt.aiohttp`` (written
plugs in that way: the decorated handlers are driven with an aiohttp test
client, the token in ``Authorization``, and the status, headers and body of
each refusal are shown.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from para_jwt import (
    ConfigurationError,
    InvalidAudienceError,
    InvalidClaimsError,
    InvalidSignatureError,
    InvalidVerificationTokenError,
    JWKSEvent,
    JWKSUnavailableError,
    MalformedTokenError,
    ParaAPI,
    ParaAPIError,
    ParaAuthenticationError,
    ParaJWTError,
    ParaUnavailableError,
    ParaVerifier,
    SessionExpiredError,
    TokenExpiredError,
    TokenNotYetValidError,
    UnknownKeyError,
    UnsupportedAlgorithmError,
    WalletNotFoundError,
)
from para_jwt.testing import FakeClock, MockPara


def everything_shown(error: BaseException) -> str:
    """str, repr, attributes and traceback of an error and of every error chained to it."""
    texts = ["".join(traceback.format_exception(error))]
    current: BaseException | None = error
    while current is not None:
        texts += [str(current), repr(current), repr(getattr(current, "__dict__", {}))]
        current = current.__cause__ or current.__context__
    return "\n".join(texts)


@dataclass
class World:
    """One MockPara, clients bound to it, and everything they showed."""

    para: MockPara
    clock: FakeClock
    events: list[JWKSEvent] = field(default_factory=list)
    shown: list[str] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)
    #: What a scenario expects to have been shown (proves the collection works).
    expected: list[str] = field(default_factory=list)

    def token(self, token: str) -> str:
        """Register a JWT: it, its payload and its signature segment are secret."""
        _, payload, signature = token.split(".")
        self.secrets.update({token, payload, signature})
        return token

    def secret(self, value: str) -> str:
        self.secrets.add(value)
        _, underscore, rest = value.partition("_")
        if underscore and len(rest) >= 8:
            self.secrets.add(rest)
        return value

    def show(self, *values: object) -> None:
        self.shown += [v if isinstance(v, str) else repr(v) for v in values]

    def shown_error(self, error: BaseException) -> None:
        self.shown.append(everything_shown(error))

    def verifier(self, **options: Any) -> ParaVerifier:
        verifier: ParaVerifier = self.para.verifier(on_event=self.events.append, **options)
        return verifier

    def api(self, **options: Any) -> ParaAPI:
        api: ParaAPI = self.para.api(backoff=0, **options)
        return api

    async def expect_error(
        self, error: type[BaseException], call: Awaitable[Any], *, says: str | None = None
    ) -> BaseException:
        with pytest.raises(error) as info:
            await call
        self.shown_error(info.value)
        if says is not None:
            self.expected.append(says)
        return info.value


Scenario = Callable[[World], Awaitable[None]]
SCENARIOS: list[Scenario] = []


def scenario(run: Scenario) -> Scenario:
    SCENARIOS.append(run)
    return run


# --- the verifier ------------------------------------------------------------------------


@scenario
async def valid_token_and_its_claims(world: World) -> None:
    para = world.para
    token = world.token(para.issue_jwt(email="ada@example.com"))
    async with world.verifier() as verifier:
        claims = await verifier.verify(token)
        again = await verifier.verify(token)  # the verified-token cache's path
        world.show(claims, again, claims.wallets, verifier, verifier.jwks, verifier.health())
        world.show(str(verifier.health().as_dict()), str(claims.payload))
    world.expected.append("ada@example.com")


@scenario
async def every_rejection(world: World) -> None:
    para, stranger = world.para, MockPara(api_key_id=world.para.api_key_id, clock=world.clock)
    good = world.token(para.issue_jwt())
    head, payload, signature = good.split(".")
    # Signed by another key under Para's kid.
    forged = world.token(stranger.issue_jwt(header={"kid": para.current_kid}))
    cases: list[tuple[type[ParaJWTError], str | bytes]] = [
        (MalformedTokenError, f"{head}.{payload}"),
        (MalformedTokenError, good[: len(head) + 10]),
        (MalformedTokenError, f"{head}. {payload}.{signature}"),
        (MalformedTokenError, good.encode() + b"\xff"),
        (MalformedTokenError, f"{head}.{payload}.{signature}="),
        (UnsupportedAlgorithmError, world.token(para.issue_jwt(header={"alg": "HS256"}))),
        (UnsupportedAlgorithmError, world.token(para.issue_jwt(alg="PS256"))),
        (UnknownKeyError, world.token(stranger.issue_jwt())),
        (InvalidSignatureError, forged),
        (InvalidSignatureError, f"{head}.{payload}.{signature[:-4]}AAAA"),
        (TokenExpiredError, world.token(para.issue_jwt(expires_in=-60))),
        (TokenNotYetValidError, world.token(para.issue_jwt(nbf=world.clock() + 600))),
        (InvalidAudienceError, world.token(para.issue_jwt(audience=str(uuid.uuid4())))),
        (InvalidClaimsError, world.token(para.issue_jwt(sub="someone-else"))),
        (InvalidClaimsError, world.token(para.issue_jwt(exp=MockPara.OMIT))),
    ]
    async with world.verifier() as verifier:
        for error, token in cases:
            await world.expect_error(error, verifier.verify(token), says=error.__name__)
        world.show(verifier, verifier.health())


@scenario
async def key_set_outage_and_stale_keys(world: World) -> None:
    para = world.para
    para.down()
    async with world.verifier() as cold:
        await world.expect_error(JWKSUnavailableError, cold.verify(world.token(para.issue_jwt())))
        world.show(cold.health(), str(cold.health().as_dict()))
    para.up()
    async with world.verifier() as verifier:
        await verifier.verify(world.token(para.issue_jwt()))
        world.clock.advance(3600)
        para.down()
        await verifier.verify(world.token(para.issue_jwt()))  # served stale
        rotated = MockPara(api_key_id=para.api_key_id, clock=world.clock)
        await world.expect_error(
            JWKSUnavailableError,
            verifier.verify(world.token(rotated.issue_jwt())),
            says="cannot be refreshed",
        )
        world.show(verifier.health(), str(verifier.health().as_dict()))
    world.expected.append("stale_started")


@scenario
async def key_set_fetch_failures(world: World) -> None:
    para = world.para
    token = world.token(para.issue_jwt())
    # Para's error body, a redirect and a broken body, each carrying the token.
    para.fail_next(500, body=token)
    para.redirect_next(f"http://127.0.0.1:9/?token={token}")
    para.malformed_next()
    para.oversized_next(2 * 1024 * 1024)
    async with world.verifier() as verifier:
        for _ in range(4):
            await world.expect_error(JWKSUnavailableError, verifier.refresh())
            world.clock.advance(60)
        para.set_jwks({"keys": [{**para.public_jwk(), "d": token}, {"kty": "oct", "k": token}]})
        await verifier.refresh()
        world.show(verifier.health(), str(verifier.health().as_dict()))
    world.expected += ["HTTP 500", "HTTP 302", "fetch_failed", "key_skipped"]


@scenario
async def unknown_kid_refetches_and_refusals(world: World) -> None:
    para = world.para
    async with world.verifier() as verifier:
        await verifier.verify(world.token(para.issue_jwt()))
        for _ in range(4):
            stranger = MockPara(api_key_id=para.api_key_id, clock=world.clock)
            token = world.token(stranger.issue_jwt())
            await world.expect_error(UnknownKeyError, verifier.verify(token))
            await world.expect_error(UnknownKeyError, verifier.verify(token))
    world.expected.append("refetch_refused")


@scenario
async def misconfigured_verifier(world: World) -> None:
    secret = world.secret(world.para.secret_api_key)
    for bad in (secret, "prod_" + uuid.uuid4().hex):
        world.secret(bad)
        with pytest.raises(ConfigurationError) as info:
            ParaVerifier(bad, environment="prod")
        world.shown_error(info.value)
    world.expected.append("looks like an API key")


# --- Para's verification endpoints -------------------------------------------------------


@scenario
async def verify_session_success_and_expiry(world: World) -> None:
    para = world.para
    world.secret(para.secret_api_key)
    live = world.secret(para.issue_verification_token(oauth_method="google"))
    expired = world.secret(para.issue_verification_token())
    para.expire_session(expired)
    async with world.api() as api:
        info = await api.verify_session(live)
        world.show(info, info.raw, api)
        await world.expect_error(SessionExpiredError, api.verify_session(expired), says="403")
        await world.expect_error(
            SessionExpiredError, api.verify_session(world.secret(str(uuid.uuid4())))
        )
    world.show(para, para.requests)


@scenario
async def verify_wallet_found_and_not_found(world: World) -> None:
    para = world.para
    world.secret(para.secret_api_key)
    address = "0x" + uuid.uuid4().hex + "abcdef01"
    wallet_id = para.register_wallet(address)
    async with world.api() as api:
        assert await api.verify_wallet(address) == wallet_id
        await world.expect_error(WalletNotFoundError, api.verify_wallet("0xnot-ours"), says="404")
    world.show(para, para.requests)


@scenario
async def wrong_secret_key_is_401(world: World) -> None:
    para = world.para
    world.secret(para.secret_api_key)
    wrong = world.secret("sandbox_" + uuid.uuid4().hex)
    token = world.secret(para.issue_verification_token())
    async with ParaAPI(wrong, base_url=para.base_url, backoff=0) as api:
        world.show(api)
        await world.expect_error(ParaAuthenticationError, api.verify_session(token), says="401")
        await world.expect_error(ParaAuthenticationError, api.verify_wallet("0xabc"))
    world.show(para.requests)


@scenario
async def para_failures_5xx_and_others(world: World) -> None:
    para = world.para
    key = world.secret(para.secret_api_key)
    token = world.secret(para.issue_verification_token())
    echo = f'{{"echo": "{token}", "key": "{key}"}}'
    async with world.api(retries=2) as api:
        para.fail_next(500, endpoint="sessions", body=echo)
        await world.expect_error(ParaUnavailableError, api.verify_session(token), says="500")
        para.fail_next(503, times=3, endpoint="sessions", body=echo)
        await world.expect_error(ParaUnavailableError, api.verify_session(token), says="503")
        para.fail_next(429, endpoint="wallets", body=echo)
        await world.expect_error(ParaAPIError, api.verify_wallet("0xabc"), says="429")
        para.drop_next(3, endpoint="sessions")
        await world.expect_error(ParaUnavailableError, api.verify_session(token))
        para.malformed_next(endpoint="sessions")
        await world.expect_error(ParaAPIError, api.verify_session(token))
        # A 200 that is not the documented answer, echoing what was sent.
        for body in (f'["{token}", "{key}"]', f'{{"authType": 5, "echo": "{token}"}}', token):
            para.fail_next(200, endpoint="sessions", body=body)
            await world.expect_error(ParaAPIError, api.verify_session(token), says="HTTP 200")
        para.redirect_next(f"http://127.0.0.1:9/?key={key}", endpoint="sessions")
        await world.expect_error(ParaAPIError, api.verify_session(token), says="redirect")


def report_with_locals(error: BaseException) -> str:
    """What an error reporter recording frame locals (Sentry and the like) sends,
    for the frames below the scenario's own (which holds the World and its secrets)."""
    tb = error.__traceback__.tb_next if error.__traceback__ is not None else None
    report = traceback.TracebackException(type(error), error, tb, capture_locals=True)
    return "".join(report.format())


@scenario
async def api_outage_seen_by_an_error_reporter(world: World) -> None:
    para = world.para
    world.secret(para.secret_api_key)
    # Not registered: the verification token is the caller's own argument, in
    # verify_session's frame; the key is in no frame at all.
    token = para.issue_verification_token()
    para.drop_next(3, endpoint="sessions")
    para.malformed_next(endpoint="sessions")
    para.fail_next(200, endpoint="sessions", body=f'["{para.secret_api_key}"]')
    async with world.api(retries=2) as api:
        for _ in range(3):
            try:
                await api.verify_session(token)
            except ParaAPIError as error:
                world.show(report_with_locals(error))
    world.expected += ["verification_token =", "could not be reached"]


@scenario
async def refused_before_any_request(world: World) -> None:
    para = world.para
    key = world.secret(para.secret_api_key)
    jwt = world.token(para.issue_jwt())
    async with world.api() as api:
        await world.expect_error(InvalidVerificationTokenError, api.verify_session(jwt))
        await world.expect_error(InvalidVerificationTokenError, api.verify_session(" " + jwt))
    for bad in (key + "\n", " " + key):
        with pytest.raises(ConfigurationError) as info:
            ParaAPI(bad, base_url=para.base_url)
        world.shown_error(info.value)
    assert para.sessions_requests == 0
    world.expected.append("not a verification token")


@scenario
async def mock_para_error_bodies(world: World) -> None:
    # What the testing kit answers, as a client of it would see it.
    para = world.para
    key = world.secret(para.secret_api_key)
    token = world.secret(para.issue_verification_token())
    para.expire_session(token)
    url = para.base_url
    async with aiohttp.ClientSession() as session:
        for path, headers, body in (
            ("sessions/verify", {"x-external-api-key": key + "x"}, {"verificationToken": token}),
            ("sessions/verify", {"x-external-api-key": key}, {"verificationToken": token}),
            ("sessions/verify", {"x-external-api-key": key}, {"token": token}),
            ("wallets/verify", {"x-external-api-key": key}, {"address": token}),
        ):
            async with session.post(url + path, json=body, headers=headers) as response:
                assert response.status >= 400
                world.show(await response.text(), str(response.headers))
    world.show(para, para.requests)
    world.expected.append("session expired")


# --- the aiohttp integration ---------------------------------------------------------------


async def _protected_app_answers(
    world: World, requests: list[dict[str, str]], *, path: str, secret_api_key: str | None = None
) -> None:
    """Serve a protected app on loopback and show every answer's status, headers and body."""
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from para_jwt.aiohttp import get_session, para_required, para_session_required, setup

    @para_required
    async def me(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    @para_session_required
    async def session(request: web.Request) -> web.Response:
        return web.json_response({"auth": get_session(request).auth_type})

    app = web.Application()
    verifier = world.verifier()  # ours to close; setup closes the ParaAPI it builds
    setup(
        app,
        verifier,
        secret_api_key=secret_api_key or world.para.secret_api_key,
        api_options={"base_url": world.para.base_url, "backoff": 0},
    )
    app.router.add_get("/me", me)
    app.router.add_post("/session", session)
    async with verifier, TestClient(TestServer(app)) as client:
        for headers in requests:
            method = client.get if path == "/me" else client.post
            async with method(path, headers=headers) as response:
                assert response.status >= 400
                world.show(str(response.status), str(response.headers), await response.text())


@scenario
async def aiohttp_refusals(world: World) -> None:
    para = world.para
    expired = world.token(para.issue_jwt(expires_in=-60))
    wrong_aud = world.token(para.issue_jwt(audience=str(uuid.uuid4())))
    good = world.token(para.issue_jwt())
    head, payload, signature = good.split(".")
    tampered = f"{head}.{payload}.{signature[:-4]}AAAA"
    requests = [
        {"Authorization": f"Bearer {expired}"},
        {"Authorization": f"Bearer {wrong_aud}"},
        {"Authorization": f"Bearer {tampered}"},
        {"Authorization": f"Bearer {good} {good}"},  # malformed: two tokens
        {"Authorization": f"Basic {good}"},
    ]
    await _protected_app_answers(world, requests, path="/me")
    world.expected += ["invalid_token", "invalid_request"]


@scenario
async def aiohttp_key_outage(world: World) -> None:
    world.para.down()
    token = world.token(world.para.issue_jwt())
    await _protected_app_answers(world, [{"Authorization": f"Bearer {token}"}], path="/me")
    world.expected.append("Retry-After")


@scenario
async def aiohttp_session_refusals(world: World) -> None:
    para = world.para
    expired = world.secret(para.issue_verification_token())
    para.expire_session(expired)
    jwt = world.token(para.issue_jwt())
    header = "X-Para-Verification-Token"
    await _protected_app_answers(world, [{header: expired}, {header: jwt}], path="/session")
    wrong_key = world.secret("sandbox_" + uuid.uuid4().hex)
    live = world.secret(para.issue_verification_token())
    await _protected_app_answers(
        world, [{header: live}], path="/session", secret_api_key=wrong_key
    )
    world.expected += ["invalid_token", "invalid_request", "500"]


# --- the sweep ---------------------------------------------------------------------------


@pytest.fixture
async def world(clock: FakeClock) -> AsyncIterator[World]:
    async with MockPara(clock=clock) as para:
        yield World(para, clock)


@pytest.mark.parametrize("run", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
async def test_no_secret_is_shown(
    world: World, run: Scenario, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: para_jwt's and aiohttp's records
    await run(world)
    world.show(world.para, *world.events)
    shown = "\n".join([*world.shown, caplog.text])

    assert world.secrets, "the scenario registered no secret to look for"
    leaked = sorted(s[:24] + "..." for s in world.secrets if s in shown)
    assert not leaked, f"secrets shown: {leaked}"
    # The collection saw what it was meant to see, so the check above means something.
    missing = [text for text in world.expected if text not in shown]
    assert not missing, f"expected in the output: {missing}"
