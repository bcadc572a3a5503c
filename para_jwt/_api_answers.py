"""Para's answers to ``ParaAPI``: reading them, and the exception each becomes.

``ParaAPI`` sends; this module reads what came back (capped), logs one line per
attempt (never a body, key or token) and maps every status to a documented
``ParaAPIError``; the table is in ``ParaAPI``'s docstring.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from .errors import ParaAPIError, ParaAuthenticationError, ParaUnavailableError

logger = logging.getLogger("para_jwt.api")

# Gateway answers (bad gateway, unavailable, gateway timeout): the request did not
# reach a healthy Para instance, which a rolling deploy or an overloaded instance
# causes and which usually clears within a second or two.
RETRYABLE_STATUSES: Final = frozenset({502, 503, 504})

__all__ = [
    "Answer",
    "Endpoint",
    "bad_body",
    "json_object",
    "log_attempt",
    "read_capped",
    "status_error",
]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One of Para's endpoints, as named in errors and logs (``POST <url>``)."""

    url: str
    #: The non-200 statuses Para documents for this endpoint: exception and meaning.
    documented: Mapping[int, tuple[type[ParaAPIError], str]]

    def __str__(self) -> str:
        return f"POST {self.url}"


@dataclass(frozen=True, slots=True)
class Answer:
    """What one attempt got: an HTTP status, or a failure before there was one.

    Attributes:
        status: The HTTP status, or ``None`` when the attempt failed before an answer.
        body: The body of a 200 answer; ``None`` otherwise, or when it was over the cap.
        failure: What went wrong when there was no usable answer (for the log).
        kind: The failure's kind: ``"timeout"``, ``"connection"``, ``"not-http"``,
            ``"too-large"`` or ``"unexpected"``.
    """

    status: int | None
    body: bytes | None = None
    failure: str | None = None
    kind: str | None = None

    @property
    def outcome(self) -> str:
        return f"HTTP {self.status}" if self.failure is None else self.failure

    @property
    def retryable(self) -> bool:
        return self.status in RETRYABLE_STATUSES or self.kind == "connection"


async def read_capped(content: aiohttp.StreamReader, limit: int) -> bytes | None:
    """The body, read as it streams in; ``None`` as soon as it exceeds ``limit``.

    At most ``limit + 1`` bytes are ever taken from the stream (one byte over is
    enough to know), so memory is bounded by the cap whatever the server sends,
    chunked or not; leaving the rest unread closes the connection.
    """
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await content.read(limit + 1 - size)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    return None


def log_attempt(
    endpoint: Endpoint, outcome: str, started: float, attempt: int, attempts: int
) -> None:
    """Log one attempt: never the body, the key or the token, only what helps to see
    Para's health."""
    logger.debug(
        "%s: %s after %.3f s (attempt %d of %d)",
        endpoint,
        outcome,
        time.perf_counter() - started,
        attempt,
        attempts,
    )


def status_error(endpoint: Endpoint, status: int, attempts: int) -> ParaAPIError:
    """The exception for a non-200 answer (after retries, for the retryable ones)."""
    if status in RETRYABLE_STATUSES:
        return ParaUnavailableError(
            f"{endpoint} answered HTTP {status}; tried {attempts} time(s)", status=status
        )
    if status == 401:
        return ParaAuthenticationError(
            f"Para refused the secret API key (HTTP 401 from {endpoint}): "
            "check it is the secret key of this environment",
            status=status,
        )
    if status in endpoint.documented:
        error, meaning = endpoint.documented[status]
        return error(f"{endpoint} answered HTTP {status}: {meaning}", status=status)
    if 300 <= status < 400:
        return ParaAPIError(
            f"{endpoint} answered with a redirect (HTTP {status}), which is not followed "
            "because it would send the secret API key elsewhere: check base_url",
            status=status,
        )
    if status >= 500:
        # Not retried: unlike a gateway error, an internal error is usually caused by
        # the request itself, so sending it again would fail the same way, later.
        return ParaUnavailableError(f"{endpoint} answered HTTP {status}", status=status)
    return ParaAPIError(f"{endpoint} answered HTTP {status}", status=status)


def json_object(endpoint: Endpoint, body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        # Raised below, outside this block: the decoder's exception keeps the body
        # (JSONDecodeError.doc, UnicodeDecodeError.object), which may echo the token.
        pass
    else:
        if isinstance(value, dict):
            return value
        raise bad_body(endpoint, "that is not a JSON object")
    raise bad_body(endpoint, "that is not JSON")


def bad_body(endpoint: Endpoint, problem: str) -> ParaAPIError:
    return ParaAPIError(f"{endpoint} answered HTTP 200 with a body {problem}", status=200)
