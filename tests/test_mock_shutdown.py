"""MockPara.close() closes every server connection, even one accepted as it closes.

asyncio accepts a connection in one loop iteration and makes its transport in the
next. A MockPara that closed its listener in between left that accepted socket
open, and a later garbage collection, in whatever test ran then, raised an
unclosed-transport ResourceWarning (an error in this suite): a client connecting
just as a test ended was enough, so it surfaced only under CPU load.

The race is driven by counting loop iterations, not by time: a blocking connect on
loopback returns with the handshake done, so the listener is readable from the
loop's next iteration on, and the iterations let run before ``close()`` decide how
far asyncio got in accepting the connection (before, between or after the two
steps). Every count must end with the server's end closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import warnings
from collections.abc import AsyncIterator

import pytest

from para_jwt.testing import MockPara


def _unclosed_warnings_for(port: int) -> list[str]:
    """ResourceWarnings a full collection raises now about sockets on ``port``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    return [
        str(w.message)
        for w in caught
        if issubclass(w.category, ResourceWarning) and f"'127.0.0.1', {port})" in str(w.message)
    ]


async def _read_until_closed(client: socket.socket) -> bytes:
    """What the client reads once the server's end closed: EOF (b"") or a reset."""
    client.setblocking(False)
    try:
        # The bound only turns a leaked (never closing) server end into a failure.
        return await asyncio.wait_for(asyncio.get_running_loop().sock_recv(client, 1), 5)
    except ConnectionResetError:
        return b""


@contextlib.asynccontextmanager
async def _request_in_progress(para: MockPara) -> AsyncIterator[None]:
    """A JWKS request whose handler is still running (held by a latency fault)."""
    para.set_latency(3600)
    reader, writer = await asyncio.open_connection("127.0.0.1", para.port)
    writer.write(b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    # Counted as the handler starts, before the latency. MockPara offers no event
    # to wait on, so each pass lets the loop run one more step of the server.
    while para.jwks_requests == 0:  # noqa: ASYNC110
        await asyncio.sleep(0)
    try:
        yield
        assert await reader.read() == b""  # close() dropped it, unanswered
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


@pytest.mark.parametrize("handler_running", [False, True], ids=["idle", "handler-running"])
@pytest.mark.parametrize("iterations", range(5))
async def test_close_closes_a_connection_accepted_as_it_closes(
    iterations: int, handler_running: bool
) -> None:
    para = MockPara()
    await para.start()
    port = para.port
    held = _request_in_progress(para) if handler_running else contextlib.nullcontext()
    async with held:
        client = socket.create_connection(("127.0.0.1", port))
        try:
            for _ in range(iterations):
                await asyncio.sleep(0)
            await para.close()
            assert await _read_until_closed(client) == b""
        finally:
            client.close()
    assert _unclosed_warnings_for(port) == []
