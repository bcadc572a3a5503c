"""``para-jwt demo``: para_jwt protecting a real web app, against a local Para.

Everything is real HTTP on 127.0.0.1: ``MockPara`` plays Para, a small aiohttp
app trusts its tokens through ``ParaVerifier`` and asks ``ParaAPI`` about
sessions and wallets, and an aiohttp client plays the browser. MockPara and the
verifier share one ``FakeClock``, so expiry and outages take no waiting. Every
step checks that it behaved as narrated; ``run_demo`` returns 1 if one did not.
"""

from __future__ import annotations

import base64
import contextlib
import json
import textwrap
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final

import aiohttp
from aiohttp import web

from ._terminal import Output, Style, claims_json, duration, printable
from ._unverified import decode_unverified
from .aiohttp import API_CLIENT_KEY, get_claims, para_required, setup
from .api import ParaAPI
from .errors import SessionExpiredError, WalletNotFoundError
from .jwks import JWKSEvent, JWKSEventKind
from .testing import FakeClock, MockPara
from .verifier import ParaVerifier

__all__ = ["run_demo"]

# --- the app's handlers ----------------------------------------------------------------


@para_required
async def me(request: web.Request) -> web.Response:
    """Who is calling: the verified, typed claims."""
    return web.json_response(claims_json(get_claims(request)))


@para_required
async def wallet(request: web.Request) -> web.Response:
    """Is this address a Para wallet of one of our users? (Para's /wallets/verify)"""
    address = request.match_info["address"]
    try:
        wallet_id = await request.app[API_CLIENT_KEY].verify_wallet(address)
    except WalletNotFoundError:
        return web.json_response({"error": "not_a_para_wallet"}, status=404)
    return web.json_response({"address": address, "wallet_id": wallet_id})


async def session(request: web.Request) -> web.Response:
    """Sign-in with the value of ``para.getVerificationToken()`` (Para's /sessions/verify)."""
    body = await request.json()
    try:
        info = await request.app[API_CLIENT_KEY].verify_session(body["verificationToken"])
    except SessionExpiredError:
        return web.json_response({"error": "session_expired"}, status=401)
    return web.json_response(
        {
            "auth_type": info.auth_type,
            "identifier": info.identifier,
            "oauth_method": info.oauth_method,
        }
    )


def make_app(verifier: ParaVerifier, api: ParaAPI) -> web.Application:
    app = web.Application()
    setup(app, verifier, api=api)
    app.router.add_get("/me", me)
    app.router.add_get("/wallets/{address}", wallet)
    app.router.add_post("/session", session)
    return app


# --- the walk-through -------------------------------------------------------------------

#: MockPara's Cache-Control max-age: how long the verifier keeps the key set fresh.
KEYS_TTL: Final = 600
#: The verifier's max_stale (its default): how long a stale set serves through an outage.
MAX_STALE: Final = 3_600


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    headers: Mapping[str, str]
    #: The JSON object answered, or ``{}`` for any other body.
    body: dict[str, Any]


def _tampered(token: str, user_id: str) -> str:
    """The same token claiming another user, with the original signature kept."""
    header, _, signature = token.split(".")
    _, claims, _ = decode_unverified(token)
    claims["sub"] = claims["data"]["userId"] = user_id
    forged = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode())
    return f"{header}.{forged.rstrip(b'=').decode()}.{signature}"


# Routine or debug-level: telling them would drown the interesting ones.
_QUIET_EVENTS: Final = frozenset({JWKSEventKind.FETCH_STARTED, JWKSEventKind.REFETCH_REFUSED})


def _describe(event: JWKSEvent) -> str:
    text = event.kind.value.replace("_", " ")
    if event.added:
        text += f", new kid {', '.join(printable(kid, 12) for kid in event.added)}"
    if event.reason:
        text += f" ({event.reason})"
    return text


class _Walkthrough:
    """Makes the requests, narrates them and counts the checks."""

    def __init__(
        self,
        out: Output,
        para: MockPara,
        clock: FakeClock,
        verifier: ParaVerifier,
        http: aiohttp.ClientSession,
        events: list[JWKSEvent],
    ) -> None:
        self.out, self.style = out, Style(out)
        self.para, self.clock, self.verifier, self.http = para, clock, verifier, http
        #: The key cache's events (its on_event), told after the answer to each request.
        self.events = events
        self.steps = 0
        self.passed = 0
        self.failed: list[str] = []
        #: Seconds the 503 of the fail-closed step said to wait (its Retry-After).
        self.retry_after = 1

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def step(self, title: str, story: str) -> None:
        self.steps += 1
        self.say()
        self.say(self.style.bold(f"{self.steps:>2}. {title}"))
        for line in textwrap.wrap(story, width=88):
            self.say(self.style.dim(f"    {line}"))

    def check(self, ok: bool, what: str) -> None:
        if ok:
            self.passed += 1
            self.say(f"    {self.style.green(self.style.ok)} {what}")
        else:
            self.failed.append(what)
            self.say(f"    {self.style.red(self.style.fail + ' ' + what)}")

    async def request(
        self, method: str, path: str, *, token: str | None = None, json_body: Any = None
    ) -> _Reply:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        async with self.http.request(method, path, headers=headers, json=json_body) as response:
            body = await response.json() if response.content_type == "application/json" else {}
            reply = _Reply(
                response.status, response.headers, body if isinstance(body, dict) else {}
            )
        self.say(f"    {method} {printable(path, 60)}  {self.style.arrow}  {self._summary(reply)}")
        for event in self.events:
            if event.kind not in _QUIET_EVENTS:
                self.say(self.style.dim(f"      key cache: {_describe(event)}"))
        self.events.clear()
        return reply

    def _summary(self, reply: _Reply) -> str:
        text = f"{reply.status} {HTTPStatus(reply.status).phrase}"
        if "error" in reply.body:
            text += f"  {reply.body['error']}"
            if "error_description" in reply.body:
                text += f": {reply.body['error_description']}"
        if "Retry-After" in reply.headers:
            text += f"  (Retry-After: {reply.headers['Retry-After']})"
        return text

    async def me(self, token: str | None) -> _Reply:
        return await self.request("GET", "/me", token=token)

    def fetches_since(self, before: int) -> int:
        return self.para.jwks_requests - before

    def expect_401(self, reply: _Reply, description: str) -> None:
        self.check(
            reply.status == 401 and reply.body.get("error_description") == description,
            f"401 invalid_token: {description}",
        )


async def _valid_token(w: _Walkthrough) -> None:
    w.step(
        "A valid token",
        "The browser got a JWT from para.issueJwt() and sends it as a "
        "bearer token; the app fetches Para's key set once and verifies locally.",
    )
    user = "5f1c0a4e-9b7d-4c1e-8f3a-2d6b9e0c7a11"
    reply = await w.me(w.para.issue_jwt(user, email="ada@example.com"))
    claims = reply.body
    if claims:
        evm = next((x["address"] for x in claims["wallets"] if x["type"] == "EVM"), None)
        w.say(
            f"      user_id {claims['user_id']}, auth_type {claims['auth_type']}, "
            f"email {claims['email']}"
        )
        w.say(f"      EVM wallet {evm}, expires_at {claims['expires_at']}")
    w.check(reply.status == 200 and claims.get("user_id") == user, "200 with the typed claims")
    w.check(w.para.jwks_requests == 1, "one key-set fetch (the next requests reuse it)")


async def _no_token(w: _Walkthrough) -> None:
    w.step("No token", "A request without credentials never reaches the handler.")
    reply = await w.me(None)
    w.check(
        reply.status == 401 and reply.headers.get("WWW-Authenticate", "").startswith("Bearer"),
        "401 with a WWW-Authenticate: Bearer challenge",
    )


async def _expired(w: _Walkthrough) -> None:
    w.step("An expired token", "Issued an hour ago with Para's 30-minute lifetime.")
    before = w.para.jwks_requests
    reply = await w.me(w.para.issue_jwt(issued_at=w.clock() - 3600))
    w.expect_401(reply, "The token has expired")
    w.check(w.fetches_since(before) == 0, "refused before any key lookup: no fetch")


async def _other_app(w: _Walkthrough) -> None:
    w.step(
        "A token for another app",
        "Genuine and signed by Para, but its aud is another "
        "API key's ID: a token stolen from another Para app.",
    )
    other_app = "0e8f4b7a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
    w.expect_401(
        await w.me(w.para.issue_jwt(audience=other_app)),
        "The token was issued for another application",
    )


async def _tampered_token(w: _Walkthrough) -> None:
    w.step(
        "A tampered token",
        "A valid token whose payload was edited to claim another user, signature unchanged.",
    )
    token = _tampered(w.para.issue_jwt(), "00000000-0000-4000-8000-000000000001")
    w.expect_401(await w.me(token), "The token's signature is invalid")


async def _rotation(w: _Walkthrough) -> None:
    w.step(
        "Para rotates its signing key",
        "A token signed by a key the app has never "
        "seen: its kid is unknown, so the app refetches the key set, without a restart.",
    )
    kid = w.para.rotate()
    before = w.para.jwks_requests
    reply = await w.me(w.para.issue_jwt())
    w.check(
        reply.status == 200 and reply.body.get("key_id") == kid, "200, verified with the new key"
    )
    w.check(w.fetches_since(before) == 1, "exactly one extra key-set fetch")


async def _outage(w: _Walkthrough) -> None:
    w.step(
        "Para's key set is down",
        f"The clock moves {duration(KEYS_TTL + 60)}, past the "
        "set's lifetime, while MockPara answers 503: the last good set keeps serving.",
    )
    w.para.down()
    w.clock.advance(KEYS_TTL + 60)
    before = w.para.jwks_requests
    reply = await w.me(w.para.issue_jwt())
    health = w.verifier.health()
    status = None if health is None else health.status
    w.check(reply.status == 200, "200 from the stale key set")
    w.check(status == "stale" and w.fetches_since(before) == 1, "the refetch failed; cache stale")


async def _fail_closed(w: _Walkthrough) -> None:
    w.step(
        "Still down, past max_stale",
        f"{duration(MAX_STALE)} later the stale set is too "
        "old to trust: the app fails closed with a 503, never a 401 (not the user's fault).",
    )
    w.clock.advance(MAX_STALE)
    token = w.para.issue_jwt()
    reply = await w.me(token)
    retry_after = reply.headers.get("Retry-After", "")
    w.check(
        reply.status == 503 and retry_after.isdecimal() and int(retry_after) >= 1,
        "503 with a Retry-After in seconds",
    )
    if retry_after.isdecimal():
        w.retry_after = int(retry_after)


async def _recovery(w: _Walkthrough) -> None:
    w.step(
        "Para is back",
        f"MockPara answers again; the client retries after {w.retry_after} s, as Retry-After said.",
    )
    w.para.up()
    w.clock.advance(w.retry_after)
    reply = await w.me(w.para.issue_jwt())
    health = w.verifier.health()
    w.check(
        reply.status == 200 and health is not None and health.status == "fresh",
        "200, and the key cache is fresh again",
    )


async def _verification_token(w: _Walkthrough) -> None:
    w.step(
        "Sign-in with a verification token",
        "The browser sends "
        "para.getVerificationToken(); the app asks Para's /sessions/verify (ParaAPI).",
    )
    token = w.para.issue_verification_token(auth_type="email", identifier="ada@example.com")
    reply = await w.request("POST", "/session", json_body={"verificationToken": token})
    w.check(
        reply.status == 200 and reply.body.get("identifier") == "ada@example.com",
        "200: an active session, signed in by email as ada@example.com",
    )
    w.para.expire_session(token)
    reply = await w.request("POST", "/session", json_body={"verificationToken": token})
    w.check(reply.status == 401, "401 once Para says the session expired (its 403)")


async def _wallets(w: _Walkthrough) -> None:
    w.step(
        "Wallet ownership",
        "Is this address a Para wallet of one of our users? "
        "The app asks Para's /wallets/verify (ParaAPI).",
    )
    evm = MockPara.make_wallet("EVM")
    token = w.para.issue_jwt(wallets=[evm])
    reply = await w.request("GET", f"/wallets/{evm['address']}", token=token)
    w.check(
        reply.status == 200 and reply.body.get("wallet_id") == evm["id"],
        "200 with its wallet ID, for the EVM wallet in the user's token",
    )
    stranger = "0x000000000000000000000000000000000000dead"
    reply = await w.request("GET", f"/wallets/{stranger}", token=token)
    w.check(reply.status == 404, "404 for an address that is none of our users' wallets")


_STEPS: Final = (
    _valid_token,
    _no_token,
    _expired,
    _other_app,
    _tampered_token,
    _rotation,
    _outage,
    _fail_closed,
    _recovery,
    _verification_token,
    _wallets,
)


async def _walk(w: _Walkthrough) -> None:
    for step in _STEPS:
        # A step that breaks counts as failed, and the story goes on.
        try:
            await step(w)
        except Exception as exc:
            w.check(False, f"the step raised {type(exc).__name__}: {exc}")


async def run_demo(out: Output, *, verifier_options: Mapping[str, Any] | None = None) -> int:
    """Run the walk-through, narrating to ``out``; 0 if every check passed, else 1.

    ``verifier_options`` go to the app's ``ParaVerifier`` (tests use them to
    show that a check does fail when the library misbehaves).
    """
    started = time.perf_counter()
    clock = FakeClock()
    events: list[JWKSEvent] = []
    async with contextlib.AsyncExitStack() as stack:
        mock = MockPara(clock=clock, cache_control=f"public, max-age={KEYS_TTL}")
        para = await stack.enter_async_context(mock)
        options = {"max_stale": MAX_STALE, "on_event": events.append, **(verifier_options or {})}
        verifier: ParaVerifier = para.verifier(**options)
        api: ParaAPI = para.api(backoff=0)
        await stack.enter_async_context(verifier)
        await stack.enter_async_context(api)
        runner = web.AppRunner(make_app(verifier, api), access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        app_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        http = await stack.enter_async_context(aiohttp.ClientSession(base_url=app_url))

        w = _Walkthrough(out, para, clock, verifier, http, events)
        w.say(
            w.style.bold("para_jwt demo: a web app that trusts Para's users, against a local Para")
        )
        w.say(f"  Para (MockPara)  {para.base_url}")
        w.say(f"  the app          {app_url}/  GET /me, GET /wallets/{{address}}: a Para JWT")
        w.say(f"                   {' ' * len(app_url)}   POST /session: a verification token")
        w.say(
            "  one clock        shared by MockPara and the verifier; the demo moves it "
            "instead of sleeping"
        )
        await _walk(w)

    total = w.passed + len(w.failed)
    elapsed = time.perf_counter() - started
    w.say()
    if w.failed:
        w.say(
            w.style.red(
                w.style.bold(
                    f"{w.style.fail} {len(w.failed)} of {total} checks failed in {elapsed:.1f} s: "
                    + "; ".join(w.failed)
                )
            )
        )
        return 1
    w.say(
        w.style.green(
            w.style.bold(
                f"{w.style.ok} All {total} checks passed in {elapsed:.1f} s: para_jwt behaved as "
                "narrated."
            )
        )
    )
    return 0
