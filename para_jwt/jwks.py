"""Para's public keys: key-set hygiene and the ``JWKSCache`` that fetches them.

The cache is built for the two moments verifiers usually fail their users:

* **Outages.** A failed fetch never empties the cache. Past its lifetime the
  last good set keeps serving for ``max_stale`` (stale-if-error), then the
  cache fails closed with ``JWKSUnavailableError`` (a 503, not a 401).
* **Rotations and floods.** A token with an unknown ``kid`` triggers a refetch,
  so keys Para rotates in are found without a restart; a budget of refetches
  per ``cooldown`` window and a per-kid negative cache bound what a flood of
  invented kids can cost (at most ``refetch_budget`` requests per window).

Fetches are single-flight (a thousand concurrent cold verifies cost one
request), time-bounded, never follow redirects and read at most
``max_body_size`` bytes. While a set is fresh, requests never wait: a refresh
starts in the background once 80-90 % of its lifetime has passed.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import logging
import math
import random
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any, Literal, NoReturn, TypedDict

import aiohttp
from cachetools import TTLCache
from joserfc.jwk import ECKey, OKPKey, RSAKey

from ._jws import ALGORITHMS, Algorithm, SignatureCheck, decode_json_object
from ._options import check_callable, check_int, check_seconds
from ._version import __version__
from .environments import check_endpoint_url
from .errors import ConfigurationError, JWKSError, JWKSUnavailableError, UnknownKeyError

__all__ = [
    "CacheOptions",
    "JWKSCache",
    "JWKSEvent",
    "JWKSEventKind",
    "JWKSHealth",
    "KeySet",
    "SkippedKey",
    "VerificationKey",
]

logger = logging.getLogger("para_jwt.jwks")

# --- key-set hygiene -------------------------------------------------------------------

#: RSA moduli outside this range are refused: small ones are breakable, huge ones
#: make every verification slow (a remote key set must not set our CPU budget).
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 16384
#: A key set larger than this is truncated: Para publishes a handful of keys.
MAX_KEYS = 64
#: Kids are short printable strings (Para: 43-char thumbprints). Anything else in a
#: token is refused before it can cost a refetch.
_WELL_FORMED_KID = re.compile(r"[\x21-\x7e]{1,128}")
#: Members of a JWK that only a private or symmetric key has.
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
_KEY_TYPES: Mapping[str, Any] = {"RSA": RSAKey, "EC": ECKey, "OKP": OKPKey}
_SIGNATURE_CURVES = {"EC": {"P-256", "P-384", "P-521"}, "OKP": {"Ed25519", "Ed448"}}


@dataclass(frozen=True, slots=True, eq=False)
class VerificationKey:
    """A public key from the set, imported once per fetch and ready to verify."""

    kid: str
    kty: str
    #: The curve for EC and OKP keys, ``None`` for RSA.
    curve: str | None
    #: Algorithms this key may verify: one if the JWK names its ``alg``, else all
    #: algorithms of its type and curve.
    algorithms: frozenset[str]
    #: The public JWK as published (compared across fetches to reuse this object).
    jwk: Mapping[str, Any] = field(repr=False)
    key: Any = field(repr=False)
    #: A ready signature check per name in ``algorithms`` (``Algorithm.bind``), so a
    #: verify costs one dict lookup and one cryptography call.
    checks: Mapping[str, SignatureCheck] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        checks = {name: ALGORITHMS[name].bind(self.key) for name in self.algorithms}
        object.__setattr__(self, "checks", checks)

    def verify(self, algorithm: Algorithm, signing_input: bytes, signature: bytes) -> bool:
        """False also when ``algorithm`` is not one of this key's ``algorithms``."""
        check = self.checks.get(algorithm.name)
        return check is not None and check(signing_input, signature)


@dataclass(frozen=True, slots=True)
class SkippedKey:
    """A member of the published set that is not used, and why."""

    kid: str | None
    reason: str


class _Unusable(Exception):
    pass


_TO_STANDARD_ALPHABET = str.maketrans("-_", "+/")


def _rsa_bits(jwk: Mapping[str, Any]) -> int:
    modulus = jwk.get("n")
    if type(modulus) is not str:
        raise _Unusable("malformed RSA key: 'n' is not a string")
    try:
        raw = binascii.a2b_base64(modulus.translate(_TO_STANDARD_ALPHABET) + "==")
    except ValueError:  # binascii.Error, or a non-ASCII str (a plain ValueError)
        raise _Unusable("malformed RSA key: 'n' is not base64url") from None
    return int.from_bytes(raw, "big").bit_length()


def _import_jwk(jwk: Any) -> VerificationKey:
    if not isinstance(jwk, dict):
        raise _Unusable("not a JSON object")
    kid = jwk.get("kid")
    if type(kid) is not str or _WELL_FORMED_KID.fullmatch(kid) is None:
        raise _Unusable("no usable 'kid' (a short printable string is required)")
    kty = jwk.get("kty")
    if type(kty) is not str:
        raise _Unusable("no 'kty'")
    if kty == "oct":
        raise _Unusable("symmetric key (kty 'oct')")
    if kty not in _KEY_TYPES:
        raise _Unusable("unsupported key type")
    if any(name in jwk for name in _PRIVATE_MEMBERS):
        raise _Unusable("carries private key material")
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise _Unusable("'use' is not 'sig'")
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (type(key_ops) is not list or "verify" not in key_ops):
        raise _Unusable("'key_ops' does not allow 'verify'")
    curve: str | None = None
    if kty == "RSA":
        bits = _rsa_bits(jwk)
        if not MIN_RSA_BITS <= bits <= MAX_RSA_BITS:
            raise _Unusable(f"RSA key of {bits} bits (allowed: {MIN_RSA_BITS}-{MAX_RSA_BITS})")
    else:
        curve = jwk.get("crv")
        if type(curve) is not str or curve not in _SIGNATURE_CURVES[kty]:
            raise _Unusable("not a signature curve")
    fitting = frozenset(
        a.name
        for a in ALGORITHMS.values()
        if a.kty == kty and (a.curves is None or curve in a.curves)
    )
    alg = jwk.get("alg")
    if alg is not None:
        # type() first: an unhashable "alg" (a list) would raise in the set lookup.
        if type(alg) is not str or alg not in fitting:
            raise _Unusable("'alg' does not fit the key or is not supported")
        fitting = frozenset((alg,))
    try:
        key = _KEY_TYPES[kty].import_key(jwk)
    except Exception:  # joserfc and cryptography raise many types for bad numbers
        raise _Unusable("malformed key parameters") from None
    if key.is_private:
        raise _Unusable("carries private key material")
    return VerificationKey(kid, kty, curve, fitting, jwk, key)


@dataclass(frozen=True, slots=True)
class KeySet:
    """An imported key set: the usable keys by kid, and what was skipped."""

    keys: Mapping[str, VerificationKey]
    #: Kids that appear in the set but must not be used (skipped or duplicated).
    unusable: Mapping[str, str]
    skipped: tuple[SkippedKey, ...]

    @classmethod
    def from_jwks(cls, document: Any, *, previous: KeySet | None = None) -> KeySet:
        """Import a JWKS document, skipping (never failing on) bad members.

        Raises ``ValueError`` only if the document itself is not ``{"keys": [...]}``.
        Keys whose JWK did not change since ``previous`` are reused, so a refetch
        costs no re-import and keeps the verified-token cache valid.
        """
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("the key set is not a JSON object with a 'keys' list")
        members: list[Any] = document["keys"]
        keys: dict[str, VerificationKey] = {}
        unusable: dict[str, str] = {}
        skipped: list[SkippedKey] = []
        seen: set[str] = set()
        for index, jwk in enumerate(members):
            member_kid = jwk.get("kid") if isinstance(jwk, dict) else None
            kid = member_kid if type(member_kid) is str else None
            if index >= MAX_KEYS:
                skipped.append(SkippedKey(kid, f"beyond the first {MAX_KEYS} keys"))
                continue
            if kid is not None and kid in seen:
                # Two keys under one kid: choosing either would let the publisher's
                # ordering decide what verifies. The kid becomes unusable.
                keys.pop(kid, None)
                unusable[kid] = "the kid is published more than once"
                skipped.append(SkippedKey(kid, unusable[kid]))
                continue
            if kid is not None:
                seen.add(kid)
            old = previous.keys.get(kid) if previous is not None and kid is not None else None
            if old is not None and old.jwk == jwk:
                keys[old.kid] = old
                continue
            try:
                key = _import_jwk(jwk)
            except _Unusable as why:
                skipped.append(SkippedKey(kid, str(why)))
                if kid is not None:
                    unusable[kid] = str(why)
                continue
            keys[key.kid] = key
        return cls(keys, unusable, tuple(skipped))

    def key(self, kid: str) -> VerificationKey:
        """The usable key named ``kid``; ``UnknownKeyError`` says why there is none."""
        key = self.keys.get(kid)
        if key is not None:
            return key
        if kid in self.unusable:
            raise UnknownKeyError(f"the key named by 'kid' is unusable: {self.unusable[kid]}")
        raise UnknownKeyError("'kid' names no key in Para's key set")


# --- HTTP caching (RFC 9111 §4.2, for a private cache) -------------------------------


def _max_age(cache_control: str) -> float | None:
    directives: dict[str, str] = {}
    for part in cache_control.split(","):
        name, _, value = part.strip().partition("=")
        directives[name.strip().lower()] = value.strip().strip('"')
    if "no-store" in directives or "no-cache" in directives:
        return 0.0
    max_age = directives.get("max-age", "")
    # isdecimal, not isdigit: "²" is a digit that float() refuses.
    return float(max_age) if max_age.isdecimal() and max_age.isascii() else None


def _http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def freshness_lifetime(headers: Mapping[str, str]) -> float | None:
    """Seconds the response stays fresh per its headers, or ``None`` if they say nothing.

    ``max-age`` wins over ``Expires``; ``Age`` (time spent in caches on the way)
    is subtracted. ``no-cache``/``no-store`` and an unparseable ``Expires`` count
    as already stale (lifetime 0; the caller floors it at ``min_ttl``).
    """
    lifetime = _max_age(headers.get("Cache-Control", ""))
    if lifetime is None and "Expires" in headers:
        expires = _http_date(headers["Expires"])
        date = _http_date(headers.get("Date")) or time.time()
        lifetime = 0.0 if expires is None else expires - date
    if lifetime is None:
        return None
    age = headers.get("Age", "")
    if age.isdecimal() and age.isascii():
        # float, not int: int() refuses more than 4300 digits, float() says inf.
        lifetime -= float(age)
    return max(lifetime, 0.0)


# --- events and health -------------------------------------------------------------------


class JWKSEventKind(StrEnum):
    FETCH_STARTED = "fetch_started"
    FETCH_SUCCEEDED = "fetch_succeeded"
    FETCH_FAILED = "fetch_failed"
    REVALIDATED = "revalidated"
    STALE_STARTED = "stale_started"
    STALE_ENDED = "stale_ended"
    REFETCH_REFUSED = "refetch_refused"
    KEY_SKIPPED = "key_skipped"


@dataclass(frozen=True, slots=True)
class JWKSEvent:
    """Something the cache did, for metrics and alerts (see ``on_event``)."""

    kind: JWKSEventKind
    url: str | None
    #: HTTP status of the fetch, when there was a response.
    status: int | None = None
    #: Seconds the fetch took.
    duration: float | None = None
    #: Kids that appeared and disappeared with this fetch.
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    #: Why: the fetch error, the refusal or skip reason, or why staleness ended.
    reason: str | None = None
    kid: str | None = None


_EVENT_LEVELS = {
    JWKSEventKind.FETCH_STARTED: logging.DEBUG,
    JWKSEventKind.FETCH_SUCCEEDED: logging.INFO,
    JWKSEventKind.FETCH_FAILED: logging.WARNING,
    JWKSEventKind.REVALIDATED: logging.DEBUG,
    JWKSEventKind.STALE_STARTED: logging.WARNING,
    JWKSEventKind.STALE_ENDED: logging.WARNING,
    JWKSEventKind.REFETCH_REFUSED: logging.DEBUG,
    JWKSEventKind.KEY_SKIPPED: logging.WARNING,
}


def _when(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


@dataclass(frozen=True, slots=True)
class JWKSHealth:
    """A snapshot of the cache, for a readiness endpoint.

    ``status``: ``fresh`` (within its lifetime), ``stale`` (expired, serving the
    last good set because fetching fails), ``unavailable`` (nothing usable:
    verifies fail with ``JWKSUnavailableError``), or ``empty`` (nothing fetched yet).
    """

    status: Literal["fresh", "stale", "unavailable", "empty"]
    url: str | None
    kids: tuple[str, ...]
    skipped: tuple[SkippedKey, ...]
    #: Seconds since the set was last fetched or revalidated.
    age: float | None
    fetched_at: datetime | None
    expires_at: datetime | None
    #: When a stale set stops being served (fail-closed).
    stale_until: datetime | None
    next_refresh: datetime | None
    last_success: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    #: A fetch is in flight (in the background or awaited by requests).
    refreshing: bool

    @property
    def ready(self) -> bool:
        """Whether verifies can succeed now (fresh or stale)."""
        return self.status in ("fresh", "stale")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (datetimes as ISO 8601)."""
        return {
            "status": self.status,
            "ready": self.ready,
            "url": self.url,
            "kids": list(self.kids),
            "skipped": [{"kid": s.kid, "reason": s.reason} for s in self.skipped],
            "age": self.age,
            "fetched_at": _iso(self.fetched_at),
            "expires_at": _iso(self.expires_at),
            "stale_until": _iso(self.stale_until),
            "next_refresh": _iso(self.next_refresh),
            "last_success": _iso(self.last_success),
            "last_error": self.last_error,
            "last_error_at": _iso(self.last_error_at),
            "consecutive_failures": self.consecutive_failures,
            "refreshing": self.refreshing,
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


# --- the cache ---------------------------------------------------------------------------


class _FetchError(Exception):
    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


_STATE_VERSION = 1


class CacheOptions(TypedDict, total=False):
    """The tuning options of ``JWKSCache``, as ``ParaVerifier`` passes them through."""

    timeout: float
    min_ttl: float
    max_ttl: float
    default_ttl: float
    max_stale: float
    cooldown: float
    refetch_budget: int
    negative_ttl: float
    max_body_size: int
    refresh_ahead: bool
    on_event: Callable[[JWKSEvent], None] | None
    initial_state: Mapping[str, Any] | None


class JWKSCache:
    """Fetches and caches one JWKS URL. Use one per process and share it.

    ``await get_key(kid)`` returns a ready-to-verify key or raises
    ``UnknownKeyError`` / ``JWKSUnavailableError``. An async context manager;
    ``close()`` stops background work and closes the session it created.
    """

    def __init__(
        self,
        url: str,
        *,
        session: aiohttp.ClientSession | None = None,
        # Whole-request timeout. 5 s as in panva/jose: long enough for a slow
        # link, short enough that a hung Para does not hold requests for long.
        timeout: float = 5.0,
        # Lifetime bounds applied to Cache-Control/Expires. The floor stops a
        # `max-age=0` refetch loop; the ceiling bounds how long a removed key lives.
        min_ttl: float = 60.0,
        max_ttl: float = 86_400.0,
        # Lifetime when Para sends no caching headers (jose, jwks-rsa: 10 min).
        default_ttl: float = 600.0,
        # How long past its lifetime the last good set is served while fetches
        # fail. After that the cache fails closed (503s), bounding how long a key
        # Para withdrew during an outage can still verify.
        max_stale: float = 3_600.0,
        # The unknown-kid refetch window and budget: at most `refetch_budget`
        # fetches per `cooldown` seconds are caused by unknown kids. Two, as in
        # Nimbus, so one junk kid cannot use up the window a real rotation needs.
        cooldown: float = 30.0,
        refetch_budget: int = 2,
        # After a refetch did not find a kid, asking for it again within this
        # many seconds costs nothing. Equal to the cooldown, so a kid that Para
        # publishes just after we looked is still found within one cooldown.
        negative_ttl: float = 30.0,
        # Cap on the response body: Para's set is ~2 KiB; 1 MiB leaves room for
        # any sane set (Nimbus's 50 KiB proved too small for some issuers).
        max_body_size: int = 1024 * 1024,
        # Refresh in the background once 80-90 % (jittered per fetch, so a fleet
        # does not refetch in lockstep) of the lifetime has passed.
        refresh_ahead: bool = True,
        on_event: Callable[[JWKSEvent], None] | None = None,
        initial_state: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = check_endpoint_url(url, what="jwks_url")
        for name, value in (("timeout", timeout), ("min_ttl", min_ttl), ("cooldown", cooldown)):
            check_seconds(name, value, allow_zero=False)
        for name, value in (
            ("max_ttl", max_ttl),
            ("default_ttl", default_ttl),
            ("max_stale", max_stale),
            ("negative_ttl", negative_ttl),
        ):
            check_seconds(name, value, allow_zero=True)
        if max_ttl < min_ttl:
            raise ConfigurationError("max_ttl must be at least min_ttl")
        check_int("refetch_budget", refetch_budget, minimum=1)
        check_int("max_body_size", max_body_size, minimum=1024)
        check_callable("clock", clock, "returning seconds since the epoch")
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._min_ttl, self._max_ttl, self._default_ttl = min_ttl, max_ttl, default_ttl
        self._max_stale = max_stale
        self._cooldown = cooldown
        self._refetch_budget = refetch_budget
        self._max_body_size = max_body_size
        self._refresh_ahead = refresh_ahead
        self._on_event = on_event
        self._clock = clock

        self._keyset: KeySet | None = None
        self._document: dict[str, Any] | None = None
        self._fetched_at = -math.inf
        self._expires_at = -math.inf
        self._refresh_at = math.inf
        self._etag: str | None = None
        self._last_modified: str | None = None
        self._last_success: float | None = None
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._failures = 0
        self._next_attempt_at = -math.inf
        self._serving_stale = False
        self._refetches: deque[float] = deque()
        self._not_found: TTLCache[str, bool] = TTLCache(
            maxsize=10_000, ttl=negative_ttl, timer=clock
        )
        self._inflight: asyncio.Task[KeySet] | None = None
        self._closed = False
        if initial_state is not None:
            self._load_state(initial_state)

    def __repr__(self) -> str:
        return f"JWKSCache({self._url!r})"

    @property
    def url(self) -> str:
        return self._url

    async def __aenter__(self) -> JWKSCache:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Cancel a refresh in flight and close the session this cache created."""
        self._closed = True
        task, self._inflight = self._inflight, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    # --- lookups ---------------------------------------------------------------------

    def peek(self, kid: str) -> VerificationKey | None:
        """The key for ``kid`` if the cached set is fresh, without I/O; else ``None``.

        Starts a background refresh once the set is past its refresh point.
        """
        # The verify hot path: one clock read and one comparison while fresh.
        now = self._clock()
        if now >= self._refresh_at:
            if now >= self._expires_at:
                return None
            self._maybe_refresh_ahead(now)
        keyset = self._keyset
        return None if keyset is None else keyset.keys.get(kid)

    async def get_key(self, kid: str) -> VerificationKey:
        """The key for ``kid``, fetching or refetching the set as the rules allow."""
        keyset = await self._usable_keyset()
        key = keyset.keys.get(kid)
        if key is not None:
            return key
        if kid not in keyset.unusable:
            if await self._refetch_allowed(kid):
                keyset = await self._fetch()
                if kid not in keyset.keys:
                    self._not_found[kid] = True
            elif self._clock() >= self._expires_at:
                # Serving a stale set through an outage: the kid may be a key Para
                # rotated in since, so "unknown" would blame the user for our outage.
                raise JWKSUnavailableError(
                    "'kid' is not in the last key set fetched, and Para's key set "
                    "cannot be refreshed right now",
                    retry_after=max(self._next_attempt_at - self._clock(), 1.0),
                )
        return keyset.key(kid)

    async def refresh(self) -> KeySet:
        """Fetch now (joining a fetch in flight). Raises ``JWKSUnavailableError`` on failure."""
        return await self._fetch()

    async def _usable_keyset(self) -> KeySet:
        now = self._clock()
        keyset = self._keyset
        if keyset is not None and now < self._expires_at:
            self._maybe_refresh_ahead(now)
            return keyset
        stale_usable = keyset is not None and now < self._expires_at + self._max_stale
        if keyset is not None and stale_usable:
            # Once a refresh is in flight or has failed, requests stop waiting on
            # Para: they get the last good set while retries go on in the background.
            if self._inflight is not None or self._failures:
                if self._inflight is None and now >= self._next_attempt_at:
                    self._start_fetch()
                return self._serve_stale(keyset)
            try:
                return await self._fetch()
            except JWKSError:
                return self._serve_stale(keyset)
        if keyset is not None and self._serving_stale:
            self._serving_stale = False
            self._emit(JWKSEventKind.STALE_ENDED, reason="max_stale exceeded: failing closed")
        if self._inflight is None and now < self._next_attempt_at:
            raise JWKSUnavailableError(
                "Para's key set is unavailable (last fetch failed; retrying shortly)",
                retry_after=max(self._next_attempt_at - now, 1.0),
            )
        return await self._fetch()

    def _serve_stale(self, keyset: KeySet) -> KeySet:
        if not self._serving_stale:
            self._serving_stale = True
            self._emit(JWKSEventKind.STALE_STARTED, reason=self._last_error)
        return keyset

    async def _refetch_allowed(self, kid: str) -> bool:
        if _WELL_FORMED_KID.fullmatch(kid) is None:
            return False
        if self._inflight is not None:
            return True  # joining a fetch in flight costs nothing
        if kid in self._not_found:
            self._emit(JWKSEventKind.REFETCH_REFUSED, kid=kid, reason="negative cache")
            return False
        now = self._clock()
        while self._refetches and self._refetches[0] <= now - self._cooldown:
            self._refetches.popleft()
        if len(self._refetches) >= self._refetch_budget or now < self._next_attempt_at:
            self._emit(JWKSEventKind.REFETCH_REFUSED, kid=kid, reason="cooldown")
            return False
        self._refetches.append(now)
        return True

    # --- fetching ----------------------------------------------------------------------

    def _maybe_refresh_ahead(self, now: float) -> None:
        if (
            now >= max(self._refresh_at, self._next_attempt_at)
            and self._inflight is None
            and not self._closed
        ):
            self._start_fetch()

    def _start_fetch(self) -> asyncio.Task[KeySet]:
        task = asyncio.get_running_loop().create_task(self._fetch_and_store())
        self._inflight = task
        task.add_done_callback(self._fetch_done)
        return task

    def _fetch_done(self, task: asyncio.Task[KeySet]) -> None:
        if self._inflight is task:
            self._inflight = None
        if not task.cancelled():
            task.exception()  # retrieved here so a background failure is not "never retrieved"

    async def _fetch(self) -> KeySet:
        if self._closed:
            raise JWKSUnavailableError("the key cache is closed")
        task = self._inflight or self._start_fetch()
        # Shielded: a request that gives up must not cancel the fetch others share.
        return await asyncio.shield(task)

    async def _fetch_and_store(self) -> KeySet:
        started = self._clock()
        self._emit(JWKSEventKind.FETCH_STARTED)
        try:
            status, headers, body = await self._get()
            if status == 304 and self._keyset is not None:
                return self._revalidated(headers, started)
            if status != 200:
                raise _FetchError(f"HTTP {status}", status)
            try:
                document = decode_json_object(body, "key set", ValueError)
                keyset = KeySet.from_jwks(document, previous=self._keyset)
            except ValueError as exc:
                raise _FetchError(str(exc), status) from None
        except _FetchError as exc:
            self._failed(exc.reason, exc.status, started)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._failed(_describe(exc), None, started)
        return self._stored(keyset, document, headers, started)

    async def _get(self) -> tuple[int, Mapping[str, str], bytes]:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {
            "Accept": "application/jwk-set+json, application/json",
            "User-Agent": f"para_jwt/{__version__}",
        }
        if self._keyset is not None:
            if self._etag:
                headers["If-None-Match"] = self._etag
            if self._last_modified:
                headers["If-Modified-Since"] = self._last_modified
        async with self._session.get(
            self._url, headers=headers, allow_redirects=False, timeout=self._timeout
        ) as response:
            if response.status != 200:
                return response.status, response.headers, b""
            if (response.content_length or 0) > self._max_body_size:
                raise _FetchError(f"body larger than {self._max_body_size} bytes", 200)
            body = bytearray()
            async for chunk in response.content.iter_any():
                body += chunk
                if len(body) > self._max_body_size:
                    raise _FetchError(f"body larger than {self._max_body_size} bytes", 200)
            return 200, response.headers, bytes(body)

    def _lifetime(self, headers: Mapping[str, str]) -> float:
        lifetime = freshness_lifetime(headers)
        if lifetime is None:
            lifetime = self._default_ttl
        return min(max(lifetime, self._min_ttl), self._max_ttl)

    def _set_lifetime(self, lifetime: float, now: float) -> None:
        self._fetched_at = now
        self._expires_at = now + lifetime
        self._refresh_at = self._refresh_point(now, lifetime)

    def _refresh_point(self, fetched_at: float, lifetime: float) -> float:
        if not self._refresh_ahead:
            return fetched_at + lifetime
        return fetched_at + lifetime * random.uniform(0.8, 0.9)  # noqa: S311 (jitter, not crypto)

    def _succeeded(self, now: float) -> None:
        self._last_success = now
        self._failures = 0
        self._next_attempt_at = -math.inf
        if self._serving_stale:
            self._serving_stale = False
            self._emit(JWKSEventKind.STALE_ENDED, reason="fetch succeeded")

    def _revalidated(self, headers: Mapping[str, str], started: float) -> KeySet:
        now = self._clock()
        self._set_lifetime(self._lifetime(headers), now)
        self._succeeded(now)
        self._emit(JWKSEventKind.REVALIDATED, status=304, duration=now - started)
        assert self._keyset is not None
        return self._keyset

    def _stored(
        self, keyset: KeySet, document: dict[str, Any], headers: Mapping[str, str], started: float
    ) -> KeySet:
        now = self._clock()
        previous = self._keyset
        old_kids = set(previous.keys) if previous is not None else set()
        old_skips = set(previous.skipped) if previous is not None else set()
        self._keyset, self._document = keyset, document
        self._etag = headers.get("ETag")
        self._last_modified = headers.get("Last-Modified")
        self._set_lifetime(self._lifetime(headers), now)
        self._succeeded(now)
        for skip in keyset.skipped:
            if skip not in old_skips:
                self._emit(JWKSEventKind.KEY_SKIPPED, kid=skip.kid, reason=skip.reason)
        self._emit(
            JWKSEventKind.FETCH_SUCCEEDED,
            status=200,
            duration=now - started,
            added=tuple(sorted(set(keyset.keys) - old_kids)),
            removed=tuple(sorted(old_kids - set(keyset.keys))),
        )
        return keyset

    def _failed(self, reason: str, status: int | None, started: float) -> NoReturn:
        now = self._clock()
        self._failures += 1
        # Back off 1, 2, 4 ... seconds up to the cooldown: an outage costs Para a
        # trickle of requests, and a blip heals within a second.
        self._next_attempt_at = now + min(2.0 ** (self._failures - 1), self._cooldown)
        self._last_error, self._last_error_at = reason, now
        self._emit(JWKSEventKind.FETCH_FAILED, status=status, duration=now - started, reason=reason)
        raise JWKSUnavailableError(
            f"could not fetch Para's key set: {reason}",
            retry_after=self._next_attempt_at - now,
        )

    # --- observability and warm start ------------------------------------------------

    def _emit(self, kind: JWKSEventKind, **details: Any) -> None:
        event = JWKSEvent(kind, self._url, **details)
        level = _EVENT_LEVELS[kind]
        if logger.isEnabledFor(level):
            logger.log(level, "jwks %s %s", kind.value, _event_details(event))
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                logger.exception("the on_event callback raised; the cache is unaffected")

    def health(self) -> JWKSHealth:
        """A snapshot of the cache's state (cheap; no I/O)."""
        now = self._clock()
        keyset = self._keyset
        status: Literal["fresh", "stale", "unavailable", "empty"]
        if keyset is None:
            status = "unavailable" if self._failures else "empty"
        elif now < self._expires_at:
            status = "fresh"
        elif now < self._expires_at + self._max_stale:
            status = "stale"
        else:
            status = "unavailable"
        have = keyset is not None
        return JWKSHealth(
            status=status,
            url=self._url,
            kids=tuple(sorted(keyset.keys)) if keyset is not None else (),
            skipped=keyset.skipped if keyset is not None else (),
            age=now - self._fetched_at if have else None,
            fetched_at=_when(self._fetched_at) if have else None,
            expires_at=_when(self._expires_at) if have else None,
            stale_until=_when(self._expires_at + self._max_stale) if have else None,
            next_refresh=_when(self._refresh_at) if have else None,
            last_success=_when(self._last_success),
            last_error=self._last_error,
            last_error_at=_when(self._last_error_at),
            consecutive_failures=self._failures,
            refreshing=self._inflight is not None,
        )

    def export_state(self) -> dict[str, Any] | None:
        """The last good set and its validity, JSON-ready, for ``initial_state=``.

        Lets short-lived processes start with keys. Store it where only your
        service can write: whoever writes it chooses which keys verify.
        """
        if self._document is None:
            return None
        return {
            "version": _STATE_VERSION,
            "url": self._url,
            "jwks": self._document,
            "fetched_at": self._fetched_at,
            "expires_at": self._expires_at,
            "etag": self._etag,
            "last_modified": self._last_modified,
        }

    def _load_state(self, state: Mapping[str, Any]) -> None:
        try:
            if state.get("version") != _STATE_VERSION:
                raise ValueError("unknown state version")
            if state["url"] != self._url:
                raise ValueError("it was exported for another JWKS URL")
            keyset = KeySet.from_jwks(state["jwks"])
            fetched_at, expires_at = float(state["fetched_at"]), float(state["expires_at"])
            # Finite and after 1970: anything else is no export of ours, and cannot
            # be shown by health() either.
            if not (0 <= fetched_at < math.inf and 0 <= expires_at < math.inf):
                raise ValueError("its times are not timestamps")
            etag, last_modified = state.get("etag"), state.get("last_modified")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigurationError(f"initial_state is not usable: {exc}") from None
        # A state cannot grant itself more lifetime than our own bounds allow: nor
        # by a fetch time in the future, which would move the max_ttl bound with it.
        fetched_at = min(fetched_at, self._clock())
        self._keyset, self._document = keyset, state["jwks"]
        self._fetched_at = fetched_at
        self._expires_at = min(expires_at, fetched_at + self._max_ttl)
        self._refresh_at = self._refresh_point(fetched_at, self._expires_at - fetched_at)
        self._etag = etag if isinstance(etag, str) else None
        self._last_modified = last_modified if isinstance(last_modified, str) else None


def _describe(exc: BaseException) -> str:
    # The exception text of a connection error names the host, never a token.
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _loggable(value: object) -> str:
    # Kids and reasons can come from a hostile key set: escape control characters
    # (no forged log lines or terminal escapes) and bound the length.
    text = ascii(str(value))[1:-1]
    return text if len(text) <= 80 else text[:77] + "..."


def _event_details(event: JWKSEvent) -> str:
    parts = [f"url={event.url}"]
    if event.status is not None:
        parts.append(f"status={event.status}")
    if event.duration is not None:
        parts.append(f"duration={event.duration:.3f}")
    if event.kid is not None:
        parts.append(f"kid={_loggable(event.kid)}")
    if event.reason is not None:
        parts.append(f"reason={_loggable(event.reason)}")
    if event.added:
        parts.append(f"added={','.join(event.added)}")
    if event.removed:
        parts.append(f"removed={','.join(event.removed)}")
    return " ".join(parts)
