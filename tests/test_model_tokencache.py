"""The verified-token cache against its rules, under random tokens, clocks and rotations.

A hit must never outlive ``exp`` (plus ``leeway``), never survive its key
leaving the set, never answer for a token it did not verify, and the LRU never
holds more than ``token_cache_size`` entries. The key set changes only when it
is fetched (``refresh()`` or an unknown-kid refetch; its lifetime is longer
than any run), so the model is: a genuine token verifies exactly when its kid
is in the last set Para served and the wall clock is inside its window.

Driven from one event loop, and (once the verifier is thread-safe) from
several threads at once, each with its own loop.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

import para_jwt
from para_jwt import InvalidTokenError, ParaClaims, ParaJWTError, ParaVerifier
from para_jwt.testing import MockPara
from tests._cache_model import Clocks, Figures, mutation_settings
from tests.test_model_keycache import run_machine

T = TypeVar("T")
SIZE = 3
LEEWAY = 5.0
FIGURES = Figures()
THREADED_FIGURES = Figures()
#: The thread-safe verifier arrives with the sync facades (issue "every caller").
THREAD_SAFE = hasattr(para_jwt, "SyncParaVerifier")


@dataclass(frozen=True)
class Token:
    token: str
    kid: str
    user: str
    iat: float
    exp: float
    genuine: bool  # False: the signature is not over this header and payload


def _segment(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _payload(token: str) -> dict[str, Any]:
    segment = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))  # type: ignore[no-any-return]


class TokenCacheMachine(RuleBasedStateMachine):
    figures = FIGURES
    threads = 1

    def __init__(self) -> None:
        super().__init__()
        self.figures.start()
        self.loop = asyncio.new_event_loop()
        self.clocks = Clocks()
        self.para = MockPara(alg="ES256", clock=self.clocks.fake, cache_control="max-age=10000000")
        self.run(self.para.start())
        self.verifier: ParaVerifier = self.para.verifier(
            algorithms=("ES256",),
            token_cache_size=SIZE,
            leeway=LEEWAY,
            min_ttl=60,
            max_ttl=10_000_000,
            refresh_ahead=False,
        )
        #: The kids of the last set Para served (None: nothing fetched yet).
        self.kids: frozenset[str] | None = None
        self.requests = 0
        self.tokens: list[Token] = []
        for life, skew in ((86_400.0, -10.0), (3600.0, -10.0), (30.0, -10.0), (2.0, 3.0)):
            self.issue(key=0, life=life, skew=skew)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        try:
            self.run(self.verifier.close())
            self.run(self.para.close())
        finally:
            self.loop.close()

    def published(self) -> list[str]:
        return [jwk["kid"] for jwk in self.para.jwks()["keys"]]

    def note_fetches(self) -> None:
        """A fetch (refresh or refetch) replaces the set with what Para serves now."""
        if self.para.jwks_requests != self.requests:
            self.figures.fetches += self.para.jwks_requests - self.requests
            self.requests = self.para.jwks_requests
            self.kids = frozenset(self.published())

    # --- tokens ----------------------------------------------------------------------------

    @rule(
        key=st.integers(0, 5),
        life=st.sampled_from([2.0, 30.0, 3600.0, 86_400.0]),
        skew=st.sampled_from([-10.0, 3.0, 8.0]),
    )
    def issue(self, key: int, life: float, skew: float) -> None:
        """A token from a published key; ``skew`` > 0 issues it in the future."""
        kids = self.published()
        if not kids:
            return
        kid = kids[key % len(kids)]
        token = self.para.issue_jwt(kid=kid, issued_at=self.clocks.wall + skew, expires_in=life)
        payload = _payload(token)
        self.add(Token(token, kid, payload["sub"], payload["iat"], payload["exp"], True))

    @rule(i=st.integers(0, 15))
    def tamper(self, i: int) -> None:
        """Another payload (another user) under a token's header and signature."""
        original = self.tokens[i % len(self.tokens)]
        header, _payload_segment, signature = original.token.split(".")
        claims = _payload(original.token)
        claims["sub"] = claims["data"]["userId"] = "00000000-0000-4000-8000-000000000000"
        forged = f"{header}.{_segment(claims)}.{signature}"
        self.add(Token(forged, original.kid, claims["sub"], original.iat, original.exp, False))

    def add(self, token: Token) -> None:
        self.tokens.append(token)
        del self.tokens[:-10]

    # --- Para and clocks -----------------------------------------------------------------

    @rule()
    def rotate(self) -> None:
        self.para.rotate()

    @rule(i=st.integers(0, 5))
    def withdraw(self, i: int) -> None:
        kids = self.published()
        if len(kids) > 1:
            self.para.retire(kids[i % len(kids)])

    @rule(i=st.integers(0, 5))
    def withdraw_and_refresh(self, i: int) -> None:
        """Para withdraws a key (a new one if it was the last) and the cache sees it."""
        kids = self.published()
        if len(kids) == 1:
            self.para.rotate()
        self.para.retire(kids[i % len(kids)])
        self.refresh()

    @rule()
    def refresh(self) -> None:
        self.run(self.verifier.refresh())
        self.note_fetches()

    @rule(seconds=st.sampled_from([0.5, 1.7, 4.9, 29.3, 3600.1]))
    def advance(self, seconds: float) -> None:
        self.clocks.advance(seconds)

    @rule(seconds=st.sampled_from([-3600.0, -6.1, -1.3, 1.3, 6.1, 3600.0]))
    def step_wall_clock(self, seconds: float) -> None:
        self.clocks.step(seconds)

    # --- verifying -------------------------------------------------------------------------

    def expected(self, token: Token, kids: frozenset[str] | None) -> bool:
        wall = self.clocks.wall
        return (
            token.genuine
            and kids is not None
            and token.kid in kids
            and wall < token.exp + LEEWAY
            and token.iat <= wall + LEEWAY
        )

    def check(self, token: Token, result: object, sets: list[frozenset[str] | None]) -> None:
        verdicts = {self.expected(token, kids) for kids in sets}
        if isinstance(result, ParaClaims):
            assert True in verdicts, f"verified a token the rules refuse (genuine={token.genuine})"
            assert result.user_id == token.user, "answered with another token's claims"
        else:
            assert isinstance(result, InvalidTokenError), f"{result!r} is not a token refusal"
            assert False in verdicts, f"refused a token the rules accept: {result!r}"

    async def verify_one(self, token: Token) -> ParaClaims | ParaJWTError:
        try:
            return await self.verifier.verify(token.token)
        except ParaJWTError as exc:
            return exc
        except BaseException as exc:
            raise AssertionError(f"verify raised {type(exc).__name__}, not a ParaJWTError") from exc

    @rule(i=st.integers(0, 15))
    def verify(self, i: int) -> None:
        token = self.tokens[i % len(self.tokens)]
        before = self.kids
        result = self.run(self.verify_one(token))
        self.figures.verifies += 1
        self.note_fetches()
        # A fetch during the call (a first fetch, or an unknown-kid refetch) is
        # awaited, so the verdict follows the set after it.
        self.check(token, result, [self.kids] if self.kids != before else [before])

    @rule(indexes=st.lists(st.integers(0, 15), min_size=2, max_size=10))
    def burst(self, indexes: list[int]) -> None:
        tokens = [self.tokens[i % len(self.tokens)] for i in indexes]
        before = self.kids
        if self.threads == 1:

            async def together() -> list[ParaClaims | ParaJWTError]:
                return await asyncio.gather(*(self.verify_one(t) for t in tokens))

            results = self.run(together())
        else:
            results = self.from_threads(tokens)
        self.figures.verifies += len(tokens)
        self.note_fetches()
        for token, result in zip(tokens, results, strict=True):
            self.check(token, result, [before, self.kids])

    def from_threads(self, tokens: list[Token]) -> list[ParaClaims | ParaJWTError]:
        """Each thread verifies its share of ``tokens`` on its own event loop."""
        results: list[Any] = [None] * len(tokens)
        start = threading.Barrier(self.threads)

        def work(offset: int) -> None:
            start.wait()
            for index in range(offset, len(tokens), self.threads):
                try:
                    results[index] = asyncio.run(self.verify_one(tokens[index]))
                except AssertionError as exc:
                    results[index] = exc

        workers = [threading.Thread(target=work, args=(n,)) for n in range(self.threads)]
        for worker in workers:
            worker.start()

        def join() -> None:
            for worker in workers:
                worker.join()

        self.run(asyncio.to_thread(join))  # MockPara answers on this loop meanwhile
        for result in results:
            if isinstance(result, AssertionError):
                raise result
        return results

    @invariant()
    def lru_is_bounded(self) -> None:
        self.figures.step()
        token_cache = getattr(self.verifier, "_token_cache", None)
        assert token_cache is None or len(token_cache) <= SIZE


class ThreadedTokenCacheMachine(TokenCacheMachine):
    figures = THREADED_FIGURES
    threads = 4


@pytest.mark.budget
def test_the_token_cache_keeps_its_rules() -> None:
    # quick: 20 examples run every rule at least 12 times.
    run_machine(
        TokenCacheMachine,
        FIGURES,
        examples=80,
        quick=20,
        steps=40,
        share=0.15 if THREAD_SAFE else 0.3,
    )


@pytest.mark.skipif(not THREAD_SAFE, reason="the thread-safe verifier is not on this branch")
def test_the_token_cache_keeps_its_rules_across_threads() -> None:
    # quick as ci: with 5 examples, four of its ten rules never run.
    run_machine(
        ThreadedTokenCacheMachine, THREADED_FIGURES, examples=15, quick=15, steps=25, share=0.15
    )


def test_regression_a_token_cache_hit_does_not_outlive_its_key() -> None:
    machine = TokenCacheMachine()
    try:
        machine.verify(i=0)  # cached
        machine.rotate()
        machine.withdraw(i=0)  # the key that signed it leaves the set...
        machine.refresh()  # ...and the cache sees it
        machine.verify(i=0)  # must be refused
    finally:
        machine.teardown()


def test_an_unbounded_lru_makes_the_machine_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    # Mutation: the LRU never evicts. The machine must notice within the CI profile.
    original = ParaVerifier.__init__

    def init(self: ParaVerifier, *args: Any, **options: Any) -> None:
        original(self, *args, **options)
        self._token_cache_size = 10**9

    monkeypatch.setattr(ParaVerifier, "__init__", init)
    with pytest.raises(AssertionError):
        run_state_machine_as_test(TokenCacheMachine, settings=mutation_settings(80))
