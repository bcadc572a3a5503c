"""What the command line shows: colours, safe one-line text, tables, durations,
claims as JSON, and output streams that go quiet when their reader has gone.

Shared by ``cli.py`` and ``_demo.py``, so that neither imports the other.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TextIO

from .claims import ParaClaims, Wallet
from .jwks import JWKSHealth, KeySet, VerificationKey

__all__ = [
    "ClosedPipeSafe",
    "Output",
    "Style",
    "claims_json",
    "dump_json",
    "duration",
    "iso",
    "keyset_json",
    "keyset_lines",
    "printable",
    "table",
]


class Output(Protocol):
    """Where a command writes: ``sys.stdout``, a ``StringIO``, a ``ClosedPipeSafe``."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


class ClosedPipeSafe:
    """A stream that goes quiet once its reader has gone (``para-jwt ... | head -1``).

    Writing to a pipe whose reader has exited raises ``BrokenPipeError``; the
    command should still finish and exit with its own code. Following the Python
    documentation ("Note on SIGPIPE"), the stream's descriptor is then pointed at
    ``os.devnull``, so the interpreter's last flush at exit does not fail either.

    Args:
        stream: The stream to write to, usually ``sys.stdout`` or ``sys.stderr``.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        #: Set once the reader has gone; later writes are dropped.
        self.reader_gone = False

    @property
    def encoding(self) -> str | None:
        return getattr(self._stream, "encoding", None)

    def isatty(self) -> bool:
        return self._stream.isatty()

    def write(self, text: str, /) -> int:
        if not self.reader_gone:
            try:
                self._stream.write(text)
            except BrokenPipeError:
                self._silence()
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._silence()

    def _silence(self) -> None:
        self.reader_gone = True
        # Not a real descriptor (a test's capture): nothing is flushed at exit.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, self._stream.fileno())
            finally:
                os.close(devnull)


class Style:
    """ANSI colours for one stream, only when it is a terminal and ``NO_COLOR`` is unset.

    Symbols fall back to ASCII on streams that cannot encode them (a Windows pipe).
    """

    def __init__(self, stream: Output) -> None:
        isatty = getattr(stream, "isatty", None)
        self.enabled = (
            callable(isatty)
            and bool(isatty())
            and not os.environ.get("NO_COLOR")  # https://no-color.org: set and non-empty
            and os.environ.get("TERM") != "dumb"
        )
        self.ok, self.fail, self.arrow = "✓", "✗", "→"
        encoding = getattr(stream, "encoding", None)  # None: a str buffer, no bytes
        try:
            if encoding:
                "✓✗→".encode(encoding)
        except (UnicodeEncodeError, LookupError):
            self.ok, self.fail, self.arrow = "OK", "FAIL", "->"

    def _paint(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text

    def bold(self, text: str) -> str:
        return self._paint("1", text)

    def dim(self, text: str) -> str:
        return self._paint("2", text)

    def red(self, text: str) -> str:
        return self._paint("31", text)

    def green(self, text: str) -> str:
        return self._paint("32", text)

    def yellow(self, text: str) -> str:
        return self._paint("33", text)


def printable(value: object, limit: int = 64) -> str:
    """``value`` as one line safe for a terminal: data from tokens and key sets is
    untrusted and could carry escape sequences."""
    text = str(value)
    if not text.isprintable():
        text = ascii(text)[1:-1]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def table(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """Rows as lines with left-aligned columns (the last column is not padded)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        indent
        + "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    ]


def duration(seconds: float) -> str:
    """``"3h 2m"``, ``"29m 59s"``, ``"1h"``, ``"4s"``: the two largest units, rounded down."""
    remaining = int(abs(seconds))
    parts: list[tuple[int, str]] = []
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")):
        count, remaining = divmod(remaining, size)
        if count or parts:
            parts.append((count, unit))
    shown = parts[:2]
    if len(shown) == 2 and shown[1][0] == 0:
        shown.pop()
    return " ".join(f"{count}{unit}" for count, unit in shown) or "0s"


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def dump_json(value: Any, out: Output) -> None:
    # ASCII-only: escapes keep any control character from a token out of the terminal.
    json.dump(value, out, indent=2, ensure_ascii=True)
    out.write("\n")


def _wallet_json(wallet: Wallet) -> dict[str, Any]:
    return {
        "type": wallet.type,
        "address": wallet.address,
        "id": wallet.id,
        "public_key": wallet.public_key,
    }


def claims_json(claims: ParaClaims) -> dict[str, Any]:
    """The typed claims as a JSON-ready dict: always the same keys in the same order
    (``None`` when absent), times in ISO 8601. The raw payload is not repeated."""
    return {
        "user_id": claims.user_id,
        "auth_type": claims.auth_type,
        "identifier": claims.identifier,
        "email": claims.email,
        "phone": claims.phone,
        "oauth_method": claims.oauth_method,
        "telegram_user_id": claims.telegram_user_id,
        "farcaster_username": claims.farcaster_username,
        "external_wallet_address": claims.external_wallet_address,
        "wallets": [_wallet_json(w) for w in claims.wallets],
        "connected_wallets": [_wallet_json(w) for w in claims.connected_wallets],
        "audience": claims.audience,
        "subject": claims.subject,
        "key_id": claims.key_id,
        "issued_at": None if claims.issued_at is None else claims.issued_at.isoformat(),
        "expires_at": claims.expires_at.isoformat(),
    }




# --- key sets ----------------------------------------------------------------------------


def _key_size(key: VerificationKey) -> str:
    return key.curve or f"{key.bits} bits"


def keyset_json(keyset: KeySet, health: JWKSHealth) -> dict[str, Any]:
    return {
        "url": health.url,
        "fetched_at": None if health.fetched_at is None else health.fetched_at.isoformat(),
        "expires_at": None if health.expires_at is None else health.expires_at.isoformat(),
        "keys": [
            {
                "kid": key.kid,
                "kty": key.kty,
                # As published; "algorithms" are those it may verify either way.
                "alg": key.jwk.get("alg"),
                "algorithms": sorted(key.algorithms),
                "bits": key.bits,
                "curve": key.curve,
            }
            for key in keyset.keys.values()
        ],
        "skipped": [{"kid": skip.kid, "reason": skip.reason} for skip in keyset.skipped],
    }


def keyset_lines(keyset: KeySet, health: JWKSHealth, style: Style) -> list[str]:
    fetched = "?"
    if health.expires_at is not None and health.fetched_at is not None:
        lifetime = (health.expires_at - health.fetched_at).total_seconds()
        fetched = (
            f"{health.fetched_at.isoformat(timespec='seconds')}, "
            f"fresh for {duration(lifetime)} (from its caching headers, within para_jwt's bounds)"
        )
    lines = [
        f"{style.bold('Key set')}  {health.url}",
        f"{style.bold('Fetched')}  {fetched}",
        "",
        style.bold(f"{len(keyset.keys)} usable key{'' if len(keyset.keys) == 1 else 's'}"),
    ]
    if keyset.keys:
        rows = [["KID", "KTY", "ALG", "SIZE"]]
        rows += [
            [key.kid, key.kty, ",".join(sorted(key.algorithms)), _key_size(key)]
            for key in keyset.keys.values()
        ]
        lines += table(rows)
    if keyset.skipped:
        lines += ["", style.yellow(style.bold(f"{len(keyset.skipped)} skipped"))]
        rows = [["KID", "WHY"]]
        rows += [
            [printable(skip.kid) if skip.kid is not None else "(no kid)", skip.reason]
            for skip in keyset.skipped
        ]
        lines += table(rows)
    return lines


