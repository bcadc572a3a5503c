"""Para verification tokens in a request, framework-neutral: the header, a JSON body
read up to a cap, and Para's answer turned into ``Refused``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Sequence
from typing import Final

from ._http import (
    VERIFICATION_TOKEN_HEADER,
    Gate,
    Refused,
    Rejection,
    session_token,
)
from .api import ParaAPI, SessionInfo
from .errors import InvalidVerificationTokenError, ParaAPIError


def verification_token_header(gate: Gate, values: Sequence[str]) -> str | None:
    """The verification token of ``X-Para-Verification-Token`` header ``values``."""
    if len(values) > 1:
        raise Refused(gate.bad_session_request(f"Send one {VERIFICATION_TOKEN_HEADER}"))
    return values[0] or None if values else None


def is_json(content_type: str) -> bool:
    """Whether a request body of ``content_type`` (no parameters) is JSON."""
    return content_type == "application/json" or content_type.endswith("+json")


async def read_capped(chunks: AsyncIterable[bytes], max_body_size: int) -> bytes:
    """The body, read chunk by chunk; memory stays bounded by ``max_body_size``.

    Raises:
        Refused: 413 as soon as the body grows past ``max_body_size``.
    """
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > max_body_size:
            raise Refused(too_large(max_body_size))
    return bytes(body)


def too_large(max_body_size: int) -> Rejection:
    """413: a body to search for ``verificationToken`` larger than the cap."""
    return Rejection(
        413,
        "invalid_request",
        f"The request body is larger than {max_body_size} bytes",
        "body_too_large",
    )


def verification_token_body(gate: Gate, body: bytes) -> str | None:
    """The ``verificationToken`` of a JSON body, ``None`` if it has none."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        # Raised below, outside this block: the decoder's error holds the body,
        # verification token included.
        document = _NOT_JSON
    if document is _NOT_JSON:
        raise Refused(gate.bad_session_request("The body is not valid JSON"))
    token = document.get("verificationToken") if isinstance(document, dict) else None
    if token is not None and not isinstance(token, str):
        raise Refused(gate.bad_session_request("verificationToken must be a string"))
    return token or None


_NOT_JSON: Final = object()


async def check_session(gate: Gate, api: ParaAPI, token: str | None) -> SessionInfo:
    """Ask Para whether ``token`` is an active session.

    Raises:
        Refused: 401 without a token or for an expired session, 400 for something
            that is not a verification token, 500/502/503 when Para cannot answer.
    """
    token = session_token(gate, token)
    try:
        return await api.verify_session(token)
    except (ParaAPIError, InvalidVerificationTokenError) as exc:
        # As _http.verify_token: the error leaves without this frame, which holds the token.
        error = exc.with_traceback(None)
    raise Refused(gate.session_rejection(error))
