"""One GET of a JWKS URL: conditional, time-bounded, no redirects, a capped body."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from ._version import __version__

__all__ = ["FetchError", "get_jwks"]


class FetchError(Exception):
    """A fetch that got an answer it cannot use (``reason`` says why)."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


async def get_jwks(
    session: aiohttp.ClientSession,
    url: str,
    *,
    etag: str | None,
    last_modified: str | None,
    time_limits: aiohttp.ClientTimeout,
    max_body_size: int,
) -> tuple[int, Mapping[str, str], bytes]:
    """GET ``url``, revalidating the copy named by ``etag``/``last_modified``.

    Returns:
        The status, the headers, and the body (empty unless the status is 200).

    Raises:
        FetchError: The body is larger than ``max_body_size`` bytes.
        aiohttp.ClientError: As aiohttp raises them (and ``TimeoutError``).
    """
    headers = {
        "Accept": "application/jwk-set+json, application/json",
        "User-Agent": f"para_jwt/{__version__}",
    }
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    too_large = f"body larger than {max_body_size} bytes"
    async with session.get(
        url, headers=headers, allow_redirects=False, timeout=time_limits
    ) as response:
        if response.status != 200:
            return response.status, response.headers, b""
        if (response.content_length or 0) > max_body_size:
            raise FetchError(too_large, 200)
        body = bytearray()
        async for chunk in response.content.iter_any():
            body += chunk
            if len(body) > max_body_size:
                raise FetchError(too_large, 200)
        return 200, response.headers, bytes(body)
