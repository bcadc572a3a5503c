"""The ``para-jwt`` command, through its entry point, against MockPara on 127.0.0.1.

Commands that reach the network run ``main`` in a thread (``asyncio.to_thread``)
so the test's event loop keeps serving MockPara meanwhile; ``main`` runs its own
loop there, as it does from the shell.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from para_jwt import __version__
from para_jwt._terminal import Style, duration
from para_jwt.cli import main
from para_jwt.testing import FakeClock, MockPara

SCRIPT = Path(sys.executable).with_name("para-jwt")
# A 1024-bit RSA modulus: too weak for para_jwt, so the key is skipped.
WEAK_N = base64.urlsafe_b64encode((1 << 1023 | 1).to_bytes(128)).rstrip(b"=").decode()


async def cli(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


def source(para: MockPara) -> list[str]:
    return ["--api-key-id", para.api_key_id, "--jwks-url", para.jwks_url]


def assert_not_echoed(token: str, *texts: str) -> None:
    for text in texts:
        assert token not in text
        for segment in token.split("."):
            middle = len(segment) // 2
            assert segment[middle : middle + 16] not in text


def use_stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))


# --- verify -------------------------------------------------------------------------------


async def test_verify_prints_the_typed_claims_as_stable_json(
    mock_para: MockPara, capsys: pytest.CaptureFixture[str]
) -> None:
    evm = MockPara.make_wallet("EVM")
    token = mock_para.issue_jwt(
        "user-1", wallets=[evm], email="ada@example.com", oauth_method="google"
    )
    assert await cli("verify", token, *source(mock_para)) == 0
    out, err = capsys.readouterr()
    claims = json.loads(out)
    assert list(claims) == [
        "user_id",
        "auth_type",
        "identifier",
        "email",
        "phone",
        "oauth_method",
        "telegram_user_id",
        "farcaster_username",
        "external_wallet_address",
        "wallets",
        "connected_wallets",
        "audience",
        "subject",
        "key_id",
        "issued_at",
        "expires_at",
    ]
    assert claims["user_id"] == claims["subject"] == "user-1"
    assert claims["auth_type"] == "email"
    assert claims["oauth_method"] == "GOOGLE"
    assert claims["phone"] is None
    assert claims["wallets"] == [
        {"type": "EVM", "address": evm["address"], "id": evm["id"], "public_key": evm["publicKey"]}
    ]
    assert claims["key_id"] == mock_para.current_kid
    expires = datetime.fromtimestamp(mock_para.clock() + 1800, UTC).replace(microsecond=0)
    assert datetime.fromisoformat(claims["expires_at"]) == expires
    assert "valid: expires in 29m" in err
    assert_not_echoed(token, err)


async def test_verify_reads_the_token_from_stdin(
    mock_para: MockPara, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = mock_para.issue_jwt("user-2")
    # As copied from an Authorization header, with the newline echo adds.
    use_stdin(monkeypatch, f"  Bearer {token}\n")
    assert await cli("verify", "-", *source(mock_para)) == 0
    assert json.loads(capsys.readouterr().out)["user_id"] == "user-2"


@pytest.mark.parametrize(
    ("make_token", "message"),
    [
        (
            lambda para: para.issue_jwt(expires_in=-3600),
            re.compile(r"invalid token \(expired\): .* \(\S+, 1h ago\)"),
        ),
        (
            lambda para: para.issue_jwt(audience="0e8f4b7a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"),
            re.compile(
                r"invalid token \(invalid_audience\): .*its aud is '0e8f4b7a-.*--api-key-id"
            ),
        ),
        (
            # Another Para's key: what a token from another environment looks like.
            lambda para: MockPara(api_key_id=para.api_key_id).issue_jwt(),
            re.compile(r"invalid token \(unknown_key\): .*check --env"),
        ),
        (
            lambda para: para.issue_jwt()[:-8] + "AAAAAAAA",
            re.compile(r"invalid token \(invalid_signature\)"),
        ),
    ],
    ids=["expired", "another-app", "unknown-key", "bad-signature"],
)
async def test_verify_exits_1_for_an_invalid_token_and_says_why(
    mock_para: MockPara,
    capsys: pytest.CaptureFixture[str],
    make_token: Any,
    message: re.Pattern[str],
) -> None:
    token = make_token(mock_para)
    assert await cli("verify", token, *source(mock_para)) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert message.search(err), err
    assert len(err.splitlines()) == 1
    assert_not_echoed(token, err)


async def test_leeway_and_algorithms_are_passed_to_the_verifier(
    mock_para: MockPara, capsys: pytest.CaptureFixture[str]
) -> None:
    just_expired = mock_para.issue_jwt(expires_in=-10)
    assert await cli("verify", just_expired, *source(mock_para)) == 1
    assert await cli("verify", just_expired, *source(mock_para), "--leeway", "30") == 0

    mock_para.rotate("ES256")
    es256 = mock_para.issue_jwt()
    assert await cli("verify", es256, *source(mock_para)) == 1
    assert "unsupported_algorithm" in capsys.readouterr().err
    argv = ("verify", es256, *source(mock_para), "--algorithm", "RS256", "--algorithm", "ES256")
    assert await cli(*argv) == 0


async def test_verify_exits_2_when_paras_keys_are_unavailable(
    mock_para: MockPara, capsys: pytest.CaptureFixture[str]
) -> None:
    token = mock_para.issue_jwt()
    mock_para.down()
    assert await cli("verify", token, *source(mock_para)) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "cannot get Para's keys: could not fetch Para's key set: HTTP 503\n" in err
    assert_not_echoed(token, err)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--api-key-id", "prod_0123456789abcdef", "--env", "prod"], "looks like an API key"),
        (
            ["--api-key-id", str(uuid.uuid4()), "--jwks-url", "http://keys.example/jwks.json"],
            "plain http:// for a non-loopback host",
        ),
        (["--api-key-id", str(uuid.uuid4()), "--env", "prod", "--leeway", "301"], "leeway"),
        (["--api-key-id", str(uuid.uuid4()), "--env", "prod", "--algorithm", "HS256"], "HS*"),
        (["--api-key-id", str(uuid.uuid4())], "one of the arguments --env --jwks-url is required"),
        (["--api-key-id", str(uuid.uuid4()), "--env", "dev"], "invalid choice: 'dev'"),
    ],
    ids=["api-key-as-id", "plain-http", "leeway", "hmac", "no-key-source", "unknown-env"],
)
def test_verify_exits_2_on_bad_settings_before_any_request(
    capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    token = MockPara().issue_jwt()
    assert main(["verify", token, *options]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert_not_echoed(token, err)


def test_an_empty_stdin_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    use_stdin(monkeypatch, " \n")
    assert main(["inspect", "-"]) == 2
    assert "no token given on stdin" in capsys.readouterr().err


# --- inspect ------------------------------------------------------------------------------


def test_inspect_decodes_without_verifying_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    para = MockPara(clock=FakeClock(time.time() - 60))
    token = para.issue_jwt("user-3", audience="anything at all")
    assert main(["inspect", token]) == 0
    out, err = capsys.readouterr()
    shown = json.loads(out)
    assert shown["verified"] is False
    assert shown["warning"].startswith("NOT VERIFIED")
    assert err.startswith("NOT VERIFIED")
    assert shown["header"] == {"alg": "RS256", "typ": "JWT", "kid": para.current_kid}
    assert shown["payload"]["sub"] == "user-3"
    assert shown["payload"]["aud"] == "anything at all"
    exp = shown["times"]["exp"]
    assert exp["expired"] is False
    assert re.fullmatch(r"28m 5\ds left", exp["relative"])
    assert shown["times"]["iat"]["relative"] in ("1m ago", "1m 1s ago")
    assert datetime.fromisoformat(exp["at"]).timestamp() == shown["payload"]["exp"]
    assert shown["signature_bytes"] == 256


def test_inspect_shows_how_long_ago_a_token_expired(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = MockPara().issue_jwt(issued_at=time.time() - 3 * 86_400, expires_in=1800)
    use_stdin(monkeypatch, token + "\n")
    assert main(["inspect", "-"]) == 0
    exp = json.loads(capsys.readouterr().out)["times"]["exp"]
    assert exp["expired"] is True
    assert re.fullmatch(r"expired 2d 23h ago", exp["relative"])


def test_inspect_decodes_padded_segments(capsys: pytest.CaptureFixture[str]) -> None:
    # Padding the verifier refuses, so inspect must show what is inside.
    token = MockPara().issue_jwt("user-pad")
    padded = ".".join(part + "=" * (-len(part) % 4) for part in token.split("."))
    assert padded != token
    assert main(["inspect", padded]) == 0
    assert json.loads(capsys.readouterr().out)["payload"]["sub"] == "user-pad"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("not-a-jwt", "a JWT has 3 dot-separated segments, this has 1"),
        ("a.b.c.d.e", "this has 5 segments: an encrypted token (JWE)? Para's JWTs are signed"),
        ("e30.e30.sig!", "the signature is not base64url"),
        ("eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln", "the payload is not UTF-8 JSON"),
        ("WyJhbGciXQ.e30.c2ln", "the header is not a JSON object"),
    ],
)
def test_inspect_exits_1_for_a_malformed_token(
    capsys: pytest.CaptureFixture[str], token: str, reason: str
) -> None:
    assert main(["inspect", token]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"para-jwt: error: malformed token: {reason}")
    assert len(err.splitlines()) == 1


def test_inspect_output_cannot_drive_the_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    token = MockPara().issue_jwt(extra_data={"email": "\x1b]0;pwned\x07\x9b2J"})
    assert main(["inspect", token]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x9b" not in out
    assert json.loads(out)["payload"]["data"]["email"] == "\x1b]0;pwned\x07\x9b2J"


# --- jwks ---------------------------------------------------------------------------------


def publish_bad_keys(para: MockPara) -> None:
    para.publish_jwk({"kty": "RSA", "kid": "weak-1024", "n": WEAK_N, "e": "AQAB"})
    para.publish_jwk({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"})
    para.publish_jwk(
        {"kty": "RSA", "kid": "for-encryption", "use": "enc", "n": "AQAB", "e": "AQAB"}
    )
    para.publish_jwk({"kty": "RSA", "kid": "\x1b[31mred", "n": "AQAB", "e": "AQAB"})


async def test_jwks_lists_usable_and_skipped_keys(
    mock_para: MockPara, capsys: pytest.CaptureFixture[str]
) -> None:
    publish_bad_keys(mock_para)
    assert await cli("jwks", "--jwks-url", mock_para.jwks_url) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"Key set  {mock_para.jwks_url}"
    assert re.fullmatch(r"Fetched  \S+\+00:00, fresh for 10m .*", lines[1])
    usable = lines.index("1 usable key")
    assert lines[usable + 1].split() == ["KID", "KTY", "ALG", "SIZE"]
    assert lines[usable + 2].split() == [mock_para.current_kid, "RSA", "RS256", "2048", "bits"]
    skipped = lines.index("4 skipped")
    assert lines[skipped + 1 :] == [
        "  KID             WHY",
        "  weak-1024       RSA key of 1024 bits (allowed: 2048-16384)",
        "  hmac            symmetric key (kty 'oct')",
        "  for-encryption  'use' is not 'sig'",
        # A kid that would drive the terminal is shown escaped.
        "  \\x1b[31mred     no usable 'kid' (a short printable string is required)",
    ]


async def test_jwks_as_json(mock_para: MockPara, capsys: pytest.CaptureFixture[str]) -> None:
    publish_bad_keys(mock_para)
    mock_para.publish_next("ES256")
    assert await cli("jwks", "--json", "--jwks-url", mock_para.jwks_url) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["url"] == mock_para.jwks_url
    assert {key["kid"]: key for key in listing["keys"]} == {
        mock_para.current_kid: {
            "kid": mock_para.current_kid,
            "kty": "RSA",
            "alg": "RS256",
            "algorithms": ["RS256"],
            "bits": 2048,
            "curve": None,
        },
        mock_para.next_kid: {
            "kid": mock_para.next_kid,
            "kty": "EC",
            "alg": "ES256",
            "algorithms": ["ES256"],
            "bits": None,
            "curve": "P-256",
        },
    }
    kids = ["weak-1024", "hmac", "for-encryption", "\x1b[31mred"]
    assert [skip["kid"] for skip in listing["skipped"]] == kids


async def test_jwks_exits_2_when_the_fetch_fails_or_no_key_is_usable(
    mock_para: MockPara, capsys: pytest.CaptureFixture[str]
) -> None:
    mock_para.fail_next(500)
    assert await cli("jwks", "--jwks-url", mock_para.jwks_url) == 2
    assert "could not fetch Para's key set: HTTP 500" in capsys.readouterr().err

    mock_para.set_jwks({"keys": [{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}]})
    assert await cli("jwks", "--jwks-url", mock_para.jwks_url) == 2
    out, err = capsys.readouterr()
    assert "0 usable keys" in out
    assert "no usable key: every token would be refused" in err


# --- mock-server --------------------------------------------------------------------------


def test_mock_server_serves_until_sigterm_and_its_token_verifies(
    capsys: pytest.CaptureFixture[str],
) -> None:
    api_key_id = str(uuid.uuid4())
    server = subprocess.Popen(  # noqa: S603 - our own script, fixed arguments
        [SCRIPT, "mock-server", "--api-key-id", api_key_id, "--expires-in", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        banner = []
        for line in server.stdout:
            banner.append(line.rstrip("\n"))
            if line.startswith("Ctrl-C"):
                break
        fields = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in banner[2:7])
        token = banner[banner.index(next(b for b in banner if b.startswith("Sample token"))) + 1]
        assert fields["API key ID"].startswith(api_key_id)
        assert "local fake" in fields["secret key"]
        jwks_url = fields["JWKS URL"]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\.well-known/jwks\.json", jwks_url)

        user = re.search(r"user (\S+),", banner[8])
        assert user is not None
        assert main(["verify", token, "--api-key-id", api_key_id, "--jwks-url", jwks_url]) == 0
        assert json.loads(capsys.readouterr().out)["user_id"] == user.group(1)
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=10)
    assert server.returncode == 0
    assert err == "MockPara stopped\n"


async def test_mock_server_exits_2_when_the_port_is_taken(
    mock_para: MockPara, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("mock-server", "--port", str(mock_para.port)) == 2
    assert f"cannot listen on 127.0.0.1:{mock_para.port}" in capsys.readouterr().err


# --- the command line itself --------------------------------------------------------------


def test_help_version_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("verify", "inspect", "jwks", "mock-server", "demo"):
        assert command in out
    assert "Exit codes: 0 done, 1 invalid or malformed token" in out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"para-jwt {__version__}\n"
    assert main([]) == 2
    assert main(["verify"]) == 2


async def run_program(*argv: str, stdin: bytes = b"") -> tuple[int | None, bytes, bytes]:
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await process.communicate(stdin)
    return process.returncode, out, err


async def test_the_installed_script_and_python_m_run_the_command(mock_para: MockPara) -> None:
    token = mock_para.issue_jwt("user-4")
    code, out, err = await run_program(
        str(SCRIPT), "verify", "-", *source(mock_para), stdin=token.encode()
    )
    assert code == 0, err
    assert json.loads(out)["user_id"] == "user-4"

    another_app = ["--api-key-id", str(uuid.uuid4()), "--jwks-url", mock_para.jwks_url]
    code, out, err = await run_program(
        sys.executable, "-m", "para_jwt", "verify", token, *another_app
    )
    assert (code, out) == (1, b"")
    assert b"invalid token (invalid_audience)" in err
    assert_not_echoed(token, err.decode())


def closed_early(*argv: str) -> tuple[int, str]:
    """Run the script with its stdout pipe closed before it writes anything."""
    process = subprocess.Popen(  # noqa: S603 - our own script, fixed arguments
        [str(SCRIPT), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader has gone: every write gets EPIPE
    err = process.stderr.read().decode()
    process.stderr.close()
    return process.wait(60), err


def into_head(*argv: str) -> tuple[int, str, str]:
    """``para-jwt ARGV | head -1``: the exit code of para-jwt, head's output, stderr."""
    producer = subprocess.Popen(  # noqa: S603 - our own script, fixed arguments
        [str(SCRIPT), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert producer.stdout is not None and producer.stderr is not None
    head = subprocess.run(
        ["head", "-1"],  # noqa: S607 - from PATH, as a user's shell finds it
        stdin=producer.stdout,
        capture_output=True,
        text=True,
        check=True,
    )
    producer.stdout.close()
    err = producer.stderr.read().decode()
    producer.stderr.close()
    return producer.wait(60), head.stdout, err


# Three attempts for a race between the pipe's close and the write; make test runs one.
@pytest.mark.parametrize("attempt", [0, *(pytest.param(n, marks=pytest.mark.slow) for n in (1, 2))])
async def test_a_closed_stdout_ends_quietly_with_the_real_exit_code(
    mock_para: MockPara, attempt: int
) -> None:
    good = mock_para.issue_jwt("user-5")
    foreign = MockPara(api_key_id=mock_para.api_key_id).issue_jwt()
    cases = [
        (["verify", good, *source(mock_para)], 0),
        (["verify", foreign, *source(mock_para)], 1),
        (["inspect", good], 0),
        (["jwks", "--jwks-url", mock_para.jwks_url, "--json"], 0),
        (["--help"], 0),
    ]
    for argv, expected in cases:
        code, err = await asyncio.to_thread(closed_early, *argv)
        assert (code, "Traceback" in err, "BrokenPipe" in err) == (expected, False, False), err
    code, first, err = await asyncio.to_thread(into_head, "inspect", good)
    assert (code, first, err.count("NOT VERIFIED")) == (0, "{\n", 1)
    assert "Traceback" not in err


# --- output helpers -----------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert Style(Terminal()).red("x") == "\033[31mx\033[0m"
    assert Style(io.StringIO()).red("x") == "x"
    monkeypatch.setenv("NO_COLOR", "1")
    assert Style(Terminal()).red("x") == "x"


def test_symbols_fall_back_to_ascii_where_they_cannot_be_encoded() -> None:
    latin1 = io.TextIOWrapper(io.BytesIO(), encoding="latin-1")
    assert (Style(latin1).ok, Style(latin1).fail) == ("OK", "FAIL")
    utf8 = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    assert Style(utf8).ok == "✓"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (59.9, "59s"),
        (60, "1m"),
        (1799, "29m 59s"),
        (3600, "1h"),
        (3720, "1h 2m"),
        (90_061, "1d 1h"),
        (-125, "2m 5s"),
    ],
)
def test_duration(seconds: float, text: str) -> None:
    assert duration(seconds) == text
