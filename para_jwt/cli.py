"""The ``para-jwt`` command: verify, inspect, list keys, run a local Para, run the demo.

Exit codes are the same for every subcommand:

* ``0``: done (the token is valid, the keys were listed...);
* ``1``: the token is invalid (``verify``) or malformed (``inspect``);
* ``2``: Para's keys are unavailable, the settings are wrong, or the command
  line is (argparse's own code for usage errors).

Tokens are credentials: no message on stderr ever contains one, and ``-`` reads
the token from stdin so it stays out of shell history and ``ps``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from ._terminal import (
    ClosedPipeSafe,
    Output,
    Style,
    claims_json,
    dump_json,
    duration,
    iso,
    keyset_json,
    keyset_lines,
    printable,
    table,
)
from ._unverified import UNVERIFIED, MalformedToken, decode_unverified, numeric_date, time_claim
from ._version import __version__
from .environments import Environment, is_loopback
from .errors import (
    ConfigurationError,
    InvalidAudienceError,
    InvalidTokenError,
    JWKSError,
    TokenExpiredError,
    UnknownKeyError,
)
from .jwks import JWKSCache
from .verifier import ParaVerifier

if TYPE_CHECKING:
    from .testing import MockPara

__all__ = ["EXIT_INVALID", "EXIT_OK", "EXIT_UNAVAILABLE", "main"]

EXIT_OK = 0
#: The token is invalid (verify) or malformed (inspect).
EXIT_INVALID = 1
#: Para's keys are unavailable, or the settings or command line are wrong.
EXIT_UNAVAILABLE = 2

_PROG = "para-jwt"

Command = Callable[[argparse.Namespace, Output, Output], Coroutine[Any, Any, int]]


class UsageError(Exception):
    """The command line cannot be acted on (exit 2); the message says why."""


# --- reading and decoding tokens ---------------------------------------------------------


def _read_token(argument: str, stdin: TextIO) -> str:
    token = (stdin.read() if argument == "-" else argument).strip()
    # Pasted from an Authorization header: the scheme is not part of the token.
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    if not token:
        raise UsageError("no token given" + (" on stdin" if argument == "-" else ""))
    return token


# --- subcommands -------------------------------------------------------------------------


async def _inspect(args: argparse.Namespace, out: Output, err: Output) -> int:
    token = _read_token(args.token, sys.stdin)
    try:
        header, payload, signature = decode_unverified(token)
    except MalformedToken as error:
        _error(err, f"malformed token: {error}")
        return EXIT_INVALID
    now = time.time()
    times = {
        name: time_claim(name, payload[name], now)
        for name in ("iat", "nbf", "exp")
        if name in payload
    }
    style = Style(err)
    err.write(style.bold(style.yellow(UNVERIFIED)) + "\n")
    dump_json(
        {
            "verified": False,
            "warning": UNVERIFIED,
            "header": header,
            "payload": payload,
            "times": times,
            "signature_bytes": len(signature),
        },
        out,
    )
    return EXIT_OK


async def _verify(args: argparse.Namespace, out: Output, err: Output) -> int:
    token = _read_token(args.token, sys.stdin)
    verifier = ParaVerifier(
        args.api_key_id,
        environment=args.env,
        jwks_url=args.jwks_url,
        leeway=args.leeway,
        algorithms=args.algorithms or ("RS256",),
        refresh_ahead=False,  # one verification: no background work
    )
    async with verifier:
        try:
            claims = await verifier.verify(token)
        except InvalidTokenError as error:
            _error(err, f"invalid token ({error.reason}): {error}{_hint(error, token, args)}")
            return EXIT_INVALID
    dump_json(claims_json(claims), out)
    style = Style(err)
    left = claims.expires_at.timestamp() - time.time()
    err.write(style.green(f"{style.ok} valid") + f": expires in {duration(left)}\n")
    return EXIT_OK


def _hint(error: InvalidTokenError, token: str, args: argparse.Namespace) -> str:
    """What to check next, from the (unverified) token: only dates and short IDs."""
    try:
        _, payload, _ = decode_unverified(token)
    except MalformedToken:
        return ""
    if isinstance(error, TokenExpiredError):
        exp = numeric_date(payload.get("exp"))
        if exp is not None:
            return f" ({iso(exp)}, {duration(time.time() - exp)} ago)"
    if isinstance(error, InvalidAudienceError):
        aud = payload.get("aud")
        if isinstance(aud, str):
            return f" (its aud is {printable(aud)!r}, not --api-key-id {args.api_key_id})"
    if isinstance(error, UnknownKeyError):
        return " (a token from another Para environment has a kid this key set lacks: check --env)"
    return ""


async def _jwks(args: argparse.Namespace, out: Output, err: Output) -> int:
    url = Environment.parse(args.env).jwks_url if args.env else args.jwks_url
    async with JWKSCache(url, refresh_ahead=False) as cache:
        keyset = await cache.refresh()
        health = cache.health()
    if args.json:
        dump_json(keyset_json(keyset, health), out)
    else:
        out.write("\n".join(keyset_lines(keyset, health, Style(out))) + "\n")
    if not keyset.keys:
        _error(err, "the key set holds no usable key: every token would be refused")
        return EXIT_UNAVAILABLE
    return EXIT_OK


async def _mock_server(args: argparse.Namespace, out: Output, err: Output) -> int:
    # Imported here: the testing kit is for tests and this subcommand only.
    from .testing import MockPara

    mock = MockPara(
        host=args.host,
        port=args.port,
        api_key_id=args.api_key_id,
        secret_api_key=args.secret_api_key,
    )
    # Signals first: whoever reads the banner may stop us as soon as it appears.
    with _stop_signals() as stopped:
        try:
            await mock.start()
        except OSError as error:
            raise UsageError(
                f"cannot listen on {args.host}:{args.port}: {error.strerror}"
            ) from None
        try:
            token = mock.issue_jwt(expires_in=args.expires_in)
            verification_token = mock.issue_verification_token()
            out.write("\n".join(_mock_banner(mock, token, verification_token, Style(out))) + "\n")
            out.flush()
            if not is_loopback(args.host):
                err.write(
                    f"{_PROG}: warning: para_jwt accepts plain http:// key set and API URLs "
                    "on loopback hosts only; clients elsewhere need an https:// proxy\n"
                )
            await stopped.wait()
        finally:
            await mock.close()
    err.write("MockPara stopped\n")
    return EXIT_OK


def _mock_banner(mock: MockPara, token: str, verification_token: str, style: Style) -> list[str]:
    _, payload, _ = decode_unverified(token)
    expires = iso(payload["exp"])
    rows = [
        ["JWKS URL", mock.jwks_url],
        ["sessions/verify", mock.base_url + "sessions/verify"],
        ["wallets/verify", mock.base_url + "wallets/verify"],
        ["API key ID", mock.api_key_id + style.dim("   tokens' aud: ParaVerifier(api_key_id)")],
        [
            "secret key",
            mock.secret_api_key
            + style.dim("   the mock's own, a local fake: ParaAPI(secret_api_key)"),
        ],
    ]
    return [
        style.bold(f"MockPara, a local fake of Para's API, listening on {mock.base_url}"),
        "",
        *table(rows),
        "",
        style.bold("Sample token") + f" (user {payload['sub']}, expires {expires}):",
        token,
        "",
        style.bold("Verification token") + " (for /sessions/verify): " + verification_token,
        "",
        style.bold("Configure your app:"),
        f'  ParaVerifier("{mock.api_key_id}", jwks_url="{mock.jwks_url}")',
        f'  ParaAPI("{mock.secret_api_key}", base_url="{mock.base_url}")',
        "",
        style.dim("Ctrl-C stops it."),
    ]


@contextlib.contextmanager
def _stop_signals() -> Iterator[asyncio.Event]:
    """An event set by SIGINT or SIGTERM.

    Where handlers cannot be installed (Windows, a thread other than the main one),
    Ctrl-C raises KeyboardInterrupt instead, which ``main`` turns into exit 130.
    """
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stopped.set)
            installed.append(sig)
    try:
        yield stopped
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def _demo(args: argparse.Namespace, out: Output, err: Output) -> int:
    from ._demo import run_demo

    return await run_demo(out)


# --- the command line ----------------------------------------------------------------------


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise argparse.ArgumentTypeError("must be a UUID") from None


def _add_token(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "token",
        metavar="TOKEN",
        help="the JWT, or - to read it from stdin (keeps it out of shell history and ps)",
    )


def _add_key_source(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--env",
        type=str.lower,
        choices=[e.name.lower() for e in Environment],
        help="the Para environment whose key set to use",
    )
    source.add_argument(
        "--jwks-url",
        metavar="URL",
        help="a key set URL instead: https://, or http:// on 127.0.0.1 (MockPara)",
    )


def _parser() -> argparse.ArgumentParser:
    """The whole command line, declared in one place.

    Longer than 60 lines on purpose: it reads top to bottom like ``--help``, one
    block per subcommand, and splitting it would only scatter the declarations.
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show para_jwt's log records (key fetches, retries) on stderr",
    )
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Verify and inspect Para (getpara.com) JWTs; run a local Para for development.",
        epilog="Exit codes: 0 done, 1 invalid or malformed token, "
        "2 keys unavailable, bad settings or usage.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    verify = commands.add_parser(
        "verify",
        parents=[common],
        help="verify a token against Para's keys and print its claims as JSON",
        description="Verify a Para JWT (signature, aud, exp...) and print its claims as JSON. "
        "Exit 0 valid, 1 invalid (reason on stderr), 2 keys unavailable or bad settings.",
    )
    _add_token(verify)
    verify.add_argument(
        "--api-key-id",
        required=True,
        metavar="ID",
        help="your API key's ID, a UUID from Para's developer portal: the tokens' aud",
    )
    _add_key_source(verify)
    verify.add_argument(
        "--leeway",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="clock skew tolerated on exp, nbf and iat (default 0, at most 300)",
    )
    verify.add_argument(
        "--algorithm",
        action="append",
        dest="algorithms",
        metavar="ALG",
        help="accept this JWS algorithm; repeat for several (default: RS256, Para's)",
    )
    verify.set_defaults(command=_verify)

    inspect = commands.add_parser(
        "inspect",
        parents=[common],
        help="decode a token's header and payload WITHOUT verifying it",
        description="Decode a JWT's header and payload without verifying anything, "
        "and show its times. Exit 0 decoded, 1 malformed.",
    )
    _add_token(inspect)
    inspect.set_defaults(command=_inspect)

    jwks = commands.add_parser(
        "jwks",
        parents=[common],
        help="fetch and list a key set, with the keys para_jwt would skip and why",
        description="Fetch a Para key set and list its keys. Exit 0 listed, "
        "2 fetch failed or no usable key.",
    )
    _add_key_source(jwks)
    jwks.add_argument("--json", action="store_true", help="print JSON instead of a table")
    jwks.set_defaults(command=_jwks)

    mock = commands.add_parser(
        "mock-server",
        parents=[common],
        help="run MockPara, a local fake of Para's API, until Ctrl-C",
        description="Run MockPara in the foreground for local development: it publishes "
        "a key set, answers /sessions/verify and /wallets/verify, and prints a sample "
        "token. Stops on Ctrl-C or SIGTERM.",
    )
    mock.add_argument("--host", default="127.0.0.1", help="where to listen (default 127.0.0.1)")
    mock.add_argument(
        "--port", type=int, default=0, help="TCP port (default 0: a free one, printed)"
    )
    mock.add_argument(
        "--api-key-id",
        type=_uuid,
        metavar="ID",
        help="the API key ID tokens carry as aud (default: a random UUID); "
        "fix it to keep your app's settings across restarts",
    )
    mock.add_argument(
        "--secret-api-key",
        metavar="KEY",
        help="the secret key the verify endpoints demand (default: random sandbox_...)",
    )
    mock.add_argument(
        "--expires-in",
        type=float,
        default=1800.0,
        metavar="SECONDS",
        help="lifetime of the sample token (default 1800, Para's default)",
    )
    mock.set_defaults(command=_mock_server)

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="a scripted end-to-end walk-through against a local Para (a few seconds)",
        description="Start MockPara and a web app protected by para_jwt, then narrate real "
        "HTTP requests: valid, expired, foreign and tampered tokens, a key rotation, an "
        "outage, the verification endpoints. Exit 0 if every step behaved as narrated.",
    )
    demo.set_defaults(command=_demo)
    return parser


def _error(err: Output, message: str) -> None:
    style = Style(err)
    err.write(f"{_PROG}: {style.red('error')}: {message}\n")


def _exit_code(code: object) -> int:
    if code is None:
        return EXIT_OK
    return code if isinstance(code, int) else EXIT_UNAVAILABLE


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``para-jwt`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code.

    A reader that goes away early (``para-jwt verify ... | head -1``) does not
    change the exit code and prints no ``BrokenPipeError``: see ``ClosedPipeSafe``.
    """
    out, err = ClosedPipeSafe(sys.stdout), ClosedPipeSafe(sys.stderr)
    try:
        return _run(argv, out, err)
    finally:
        # What is still buffered (argparse's --help writes to sys.stdout itself)
        # is flushed here, where a closed pipe is handled, not at interpreter exit.
        out.flush()
        err.flush()


def _run(argv: Sequence[str] | None, out: Output, err: Output) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version and usage errors
        return _exit_code(exit_.code)
    command: Command = args.command
    try:
        with _library_logs(err, verbose=args.verbose):
            return asyncio.run(command(args, out, err))
    except JWKSError as error:
        _error(err, f"cannot get Para's keys: {error}")
    except ConfigurationError as error:
        _error(err, f"bad settings: {error}")
    except UsageError as error:
        _error(err, str(error))
    except KeyboardInterrupt:
        return 130  # the shell's code for "stopped by SIGINT"
    return EXIT_UNAVAILABLE


@contextlib.contextmanager
def _library_logs(err: Output, *, verbose: bool) -> Iterator[None]:
    """para_jwt's log records on ``err`` with ``--verbose``, else none at all: what
    they warn about (a skipped key, a failed fetch) the command reports itself."""
    logger = logging.getLogger("para_jwt")
    handler: logging.Handler = logging.NullHandler()
    if verbose:
        handler = logging.StreamHandler(err)
        handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    saved = logger.level, logger.propagate
    logger.addHandler(handler)  # any handler keeps logging's last resort quiet
    logger.propagate = False
    if verbose:
        logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
