"""Strict compact-JWS parsing (``para_jwt._jws.TokenParser``), rule by rule.

Each rejected token differs from a well-formed one only in the part under
test, so each test fails if its rule is removed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from tokens import (
    ABSENT,
    assert_no_token_leak,
    b64url,
    b64url_decode_leniently,
    forge,
    json_bytes,
    non_canonical,
    para_key,
    para_payload,
    with_padding,
)

from para_jwt import InvalidTokenError, MalformedTokenError, UnsupportedAlgorithmError
from para_jwt._jws import (
    MAX_JSON_DEPTH,
    ParsedToken,
    TokenParser,
    base64url_decode,
    decode_json_object,
)

RS256_ONLY = frozenset({"RS256"})
DEFAULT_MAX_SIZE = 16 * 1024
#: A signature that parses (RS256-sized); parsing never checks it.
SIGNATURE = bytes(range(256))


def header(**members: Any) -> dict[str, Any]:
    """The usual header; ``members`` add to or override it (``ABSENT`` removes one)."""
    usual = {"alg": "RS256", "typ": "JWT", "kid": para_key().kid, **members}
    return {name: value for name, value in usual.items() if value is not ABSENT}


def token_with(
    header_part: dict[str, Any] | bytes | str | None = None,
    payload_part: dict[str, Any] | bytes | str | None = None,
    signature: bytes = SIGNATURE,
) -> str:
    return forge(
        header() if header_part is None else header_part,
        para_payload() if payload_part is None else payload_part,
        signature=signature,
    )


def parse(token: Any, *, max_size: int = DEFAULT_MAX_SIZE) -> ParsedToken:
    return TokenParser(max_size=max_size, algorithms=RS256_ONLY).parse(token)


def assert_refused(
    token: Any,
    error: type[InvalidTokenError] = MalformedTokenError,
    says: str | None = None,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
) -> None:
    with pytest.raises(InvalidTokenError) as info:
        parse(token, max_size=max_size)
    assert type(info.value) is error, repr(info.value)
    if says is not None:
        assert says in str(info.value), str(info.value)
    assert_no_token_leak(info.value, token)


def test_a_para_token_parses_into_its_parts() -> None:
    payload = para_payload()
    token = para_key().sign(payload)
    jws = parse(token)
    assert jws.header == {"alg": "RS256", "typ": "JWT", "kid": para_key().kid}
    assert jws.payload == payload
    assert jws.signing_input == token.rpartition(".")[0].encode("ascii")
    assert b64url(jws.signature) == token.rpartition(".")[2]
    assert parse(token.encode("ascii")) == jws


# --- type and size, before any parsing -------------------------------------------------


@pytest.mark.parametrize(
    "token", [None, 42, 4.2, ["a.b.c"], {"token": "a.b.c"}, bytearray(b"a.b.c"), memoryview(b"a")]
)
def test_only_str_and_bytes_are_tokens(token: Any) -> None:
    assert_refused(token, says="must be str or bytes")


@pytest.mark.parametrize("as_bytes", [False, True])
def test_size_cap_is_inclusive_and_applies_to_str_and_bytes(as_bytes: bool) -> None:
    token: str | bytes = para_key().sign(para_payload(filler="x" * 1000))
    if as_bytes:
        token = token.encode("ascii")
    assert parse(token, max_size=len(token)).payload["filler"] == "x" * 1000
    assert_refused(token, says="larger than", max_size=len(token) - 1)


@pytest.mark.parametrize("junk", ["x" * (DEFAULT_MAX_SIZE + 1), b"." * (DEFAULT_MAX_SIZE + 1)])
def test_the_size_cap_applies_before_parsing(junk: str | bytes) -> None:
    # Without the cap first, these would fail on their segment count instead.
    assert_refused(junk, says="larger than 16384 bytes")


@pytest.mark.parametrize("intruder", ["é", "\u2024", "\uff41", "\u00a0", "\x00"])
def test_non_ascii_text_tokens_are_refused(intruder: str) -> None:
    head, payload, signature = token_with().split(".")
    text = f"{head}.{payload}{intruder}.{signature}"
    expected = "non-ASCII" if not intruder.isascii() else "base64url"
    assert_refused(text, says=expected)
    assert_refused(text.encode("utf-8"), says="base64url")


# --- exactly three non-empty segments --------------------------------------------------

Reshape = Callable[[str, str, str], str]


@pytest.mark.parametrize(
    ("reshape", "says"),
    [
        (lambda h, p, s: f"{h}.{p}", "this has 2"),
        (lambda h, p, s: f"{h}.{p}.{s}.{s}", "this has 4"),
        (lambda h, p, s: f"{h}.{p}.{s}.{s}.{s}", "this has 5"),  # JWE shape
        (lambda h, p, s: f"{h}{p}{s}", "this has 1"),
        (lambda h, p, s: f"{h}.{p}.{s}.", "this has 4"),
        (lambda h, p, s: f".{h}.{p}.{s}", "this has 4"),
        (lambda h, p, s: f"{h}..{p}.{s}", "this has 4"),
        (lambda h, p, s: "", "this has 1"),
        (lambda h, p, s: "..", "header is not UTF-8 JSON"),
        (lambda h, p, s: f".{p}.{s}", "header is not UTF-8 JSON"),
        (lambda h, p, s: f"{h}..{s}", "payload is not UTF-8 JSON"),
        (lambda h, p, s: f"{h}.{p}.", "signature is empty"),
    ],
)
def test_exactly_three_non_empty_segments(reshape: Reshape, says: str) -> None:
    assert_refused(reshape(*token_with().split(".")), says=says)


# --- canonical unpadded base64url -------------------------------------------------------

#: Header and payload JSON whose base64url leaves 4 or 2 unused bits, and signatures
#: of 256 and 257 bytes, so each segment is tested with a last character that can
#: carry unused bits. The note encodes to both '-' and '_'.
NOTE = "?????~~~~~"
PAYLOAD_JSON = json_bytes(para_payload(note=NOTE))
HEADER_JSON = json_bytes(header())
SEGMENT_SHAPES = [
    pytest.param(0, with_padding(HEADER_JSON, 1), PAYLOAD_JSON, SIGNATURE, id="header-4-bits"),
    pytest.param(0, with_padding(HEADER_JSON, 2), PAYLOAD_JSON, SIGNATURE, id="header-2-bits"),
    pytest.param(1, HEADER_JSON, with_padding(PAYLOAD_JSON, 1), SIGNATURE, id="payload-4-bits"),
    pytest.param(1, HEADER_JSON, with_padding(PAYLOAD_JSON, 2), SIGNATURE, id="payload-2-bits"),
    pytest.param(2, HEADER_JSON, PAYLOAD_JSON, bytes(256), id="signature-4-bits"),
    pytest.param(2, HEADER_JSON, PAYLOAD_JSON, bytes(257), id="signature-2-bits"),
]
SEGMENTS = {"header": 0, "payload": 1, "signature": 2}


def replace_segment(token: str, index: int, segment: str) -> str:
    segments = token.split(".")
    segments[index] = segment
    return ".".join(segments)


@pytest.mark.parametrize(("index", "head", "payload", "signature"), SEGMENT_SHAPES)
def test_unused_bits_must_be_zero(
    index: int, head: bytes, payload: bytes, signature: bytes
) -> None:
    token = forge(head, payload, signature=signature)
    parse(token)
    original = token.split(".")[index]
    variant = non_canonical(original)
    # A forgiving decoder reads the same bytes: accepting it would make tokens malleable.
    assert variant != original
    assert b64url_decode_leniently(variant) == b64url_decode_leniently(original)
    assert_refused(replace_segment(token, index, variant), says="base64url")


@pytest.mark.parametrize(("index", "head", "payload", "signature"), SEGMENT_SHAPES)
def test_padding_is_refused(index: int, head: bytes, payload: bytes, signature: bytes) -> None:
    token = forge(head, payload, signature=signature)
    original = token.split(".")[index]
    padded = original + "=" * (-len(original) % 4)
    assert padded != original
    assert b64url_decode_leniently(padded) == b64url_decode_leniently(original)
    assert_refused(replace_segment(token, index, padded), says="base64url")
    assert_refused(replace_segment(token, index, original + "===="), says="base64url")


@pytest.mark.parametrize("index", SEGMENTS.values(), ids=SEGMENTS.keys())
def test_the_standard_base64_alphabet_is_refused(index: int) -> None:
    token = token_with(header(note=NOTE), PAYLOAD_JSON, signature=b"\xfb\xff\xbf" * 86)
    original = token.split(".")[index]
    for url_safe, standard in (("-", "+"), ("_", "/")):
        assert url_safe in original
        variant = replace_segment(token, index, original.replace(url_safe, standard))
        assert_refused(variant, says="base64url")


def whitespace_variants(token: str, blank: str) -> list[str]:
    first_dot, last_dot = token.index("."), token.rindex(".")
    positions = [0, 5, first_dot, first_dot + 1, first_dot + 9, last_dot, last_dot + 1, -3]
    variants = [token[:at] + blank + token[at:] for at in positions]
    return [*variants, token + blank]


@pytest.mark.parametrize("blank", [" ", "\n", "\r\n", "\t", "\r", "\x0b", "\x0c"])
def test_whitespace_anywhere_is_refused(blank: str) -> None:
    for variant in whitespace_variants(token_with(), blank):
        assert_refused(variant, says="base64url")
        assert_refused(variant.encode("ascii"), says="base64url")


@pytest.mark.parametrize("index", SEGMENTS.values(), ids=SEGMENTS.keys())
def test_a_length_of_1_mod_4_is_refused(index: int) -> None:
    token = token_with()
    original = token.split(".")[index]
    too_long = original + "A" * ((1 - len(original)) % 4 or 4)
    assert len(too_long) % 4 == 1
    assert_refused(replace_segment(token, index, too_long), says="base64url")


# --- header and payload: strict UTF-8 JSON objects ----------------------------------------


@pytest.mark.parametrize("part", ["header", "payload"])
@pytest.mark.parametrize("text", ["[]", '["RS256"]', '"RS256"', "1", "null", "true", "", " "])
def test_header_and_payload_must_be_json_objects(part: str, text: str) -> None:
    parts: dict[str, str | None] = {"header": None, "payload": None, part: text}
    assert_refused(token_with(parts["header"], parts["payload"]), says=f"the {part} is not")


@pytest.mark.parametrize("part", ["header", "payload"])
@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig"])
def test_header_and_payload_must_be_utf8_without_bom(part: str, encoding: str) -> None:
    text = json.dumps(header() if part == "header" else para_payload())
    raw = text.encode(encoding)
    token = token_with(raw, None) if part == "header" else token_with(None, raw)
    assert_refused(token, says=f"the {part} is not UTF-8 JSON")


@pytest.mark.parametrize(
    "invalid_utf8",
    [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xf8\x88\x80\x80\x80"],
    ids=["ff", "overlong", "surrogate", "truncated", "five-byte"],
)
def test_invalid_utf8_is_refused(invalid_utf8: bytes) -> None:
    payload = json_bytes(para_payload()).replace(b"ada@", b"ada" + invalid_utf8 + b"@")
    assert_refused(token_with(None, payload), says="payload is not UTF-8 JSON")


@pytest.mark.parametrize(
    ("head", "payload"),
    [
        pytest.param(b'{"alg":"none","alg":"RS256","kid":"k"}', None, id="header-alg"),
        pytest.param(b'{"alg":"RS256","kid":"a","kid":"b"}', None, id="header-kid"),
        pytest.param(None, b'{"aud":"x","exp":1,"aud":"y"}', id="payload-aud"),
        pytest.param(None, b'{"aud":"x","\\u0061ud":"y"}', id="escaped-name"),
        pytest.param(None, b'{"data":{"userId":"a","userId":"b"}}', id="nested-object"),
        pytest.param(None, b'{"data":{"wallets":[{"id":"1","id":"2"}]}}', id="in-array"),
        pytest.param(b'{"alg":"RS256","kid":"k","x":{"y":[{"z":1,"z":1}]}}', None, id="deep"),
    ],
)
def test_duplicate_member_names_are_refused(head: bytes | None, payload: bytes | None) -> None:
    assert_refused(token_with(head, payload), says="duplicate member name")


@pytest.mark.parametrize("part", ["header", "payload"])
@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_literals_are_refused(part: str, literal: str) -> None:
    base = header() if part == "header" else para_payload()
    raw = json_bytes(base).replace(b"{", b'{"n":' + literal.encode() + b",", 1)
    token = token_with(raw, None) if part == "header" else token_with(None, raw)
    assert_refused(token, says=f"{literal} is not valid JSON")


@pytest.mark.parametrize(
    "text",
    [
        '{"a":1}',
        ' {"a":1}\n',
        '\t\r\n {"a": [1, {"b": 2}]} \r\n\t',
        '{"a":1} x',
        '{"a":1}{"b":2}',
        '{"a":1},',
        '\x0c{"a":1}',
        '{"a":1}\x0b',
        '\u00a0{"a":1}',
        '{"a":1}\u2028',
        '{"a":1}\x00',
        "",
        " \n",
        '{"a":1',
    ],
)
def test_the_decoder_takes_what_json_decode_takes_around_the_value(text: str) -> None:
    """decode_json_object (raw_decode on the stripped text) against JSONDecoder.decode."""
    try:
        expected: Any = json.JSONDecoder().decode(text)
    except ValueError:
        expected = MalformedTokenError
    try:
        got: Any = decode_json_object(text.encode(), "payload")
    except MalformedTokenError:
        got = MalformedTokenError
    assert got == expected


def test_integers_beyond_pythons_digit_limit_are_refused_as_malformed() -> None:
    payload = json_bytes(para_payload()).replace(b'"exp":', b'"exp":' + b"9" * 5000 + b',"e":')
    assert_refused(token_with(None, payload), says="payload is not UTF-8 JSON")


def nested(depth: int, container: str) -> str:
    """JSON text nesting ``depth`` containers of one kind."""
    if container == "array":
        return "[" * depth + "]" * depth
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


@pytest.mark.parametrize("part", ["header", "payload"])
@pytest.mark.parametrize("container", ["array", "object"])
@pytest.mark.parametrize("depth", [20, 100, 5000, 50_000])
def test_deep_nesting_is_malformed_never_a_recursion_error(
    part: str, container: str, depth: int
) -> None:
    base = header() if part == "header" else para_payload()
    raw = json_bytes(base)[:-1] + b',"deep":' + nested(depth, container).encode() + b"}"
    token = token_with(raw, None) if part == "header" else token_with(None, raw)
    assert_refused(token, max_size=len(token))


@pytest.mark.parametrize("container", ["array", "object"])
def test_nesting_limit_is_exact(container: str) -> None:
    # The payload object is level 1, so a member may nest MAX_JSON_DEPTH - 1 deep.
    def payload(depth: int) -> bytes:
        return json_bytes(para_payload(deep=json.loads(nested(depth, container))))

    assert "deep" in parse(token_with(None, payload(MAX_JSON_DEPTH - 1))).payload
    assert_refused(token_with(None, payload(MAX_JSON_DEPTH)), says="nests deeper")


# --- header rules ----------------------------------------------------------------------------


@pytest.mark.parametrize("alg", [ABSENT, None, 256, ["RS256"], {"name": "RS256"}, True])
def test_alg_must_be_a_string(alg: Any) -> None:
    assert_refused(token_with(header(alg=alg)), says="no string 'alg'")


@pytest.mark.parametrize(
    "alg",
    [
        "none",
        "None",
        "NONE",
        "nOnE",
        "HS256",
        "RS384",
        "PS256",
        "ES256",
        "EdDSA",
        "rs256",
        "RS256 ",
    ],
)
def test_alg_must_be_allowed(alg: str) -> None:
    assert_refused(token_with(header(alg=alg)), UnsupportedAlgorithmError, says="is not accepted")


@pytest.mark.parametrize("kid", [ABSENT, None, "", 7, ["k"], {"kid": "k"}, False])
def test_kid_must_be_a_non_empty_string(kid: Any) -> None:
    assert_refused(token_with(header(kid=kid)), says="no string 'kid'")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("jwk", para_key().jwk()),
        ("jku", "https://attacker.example/jwks.json"),
        ("x5u", "https://attacker.example/cert.pem"),
        ("x5c", ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]),
        ("jwk", None),
        ("x5c", []),
    ],
)
def test_headers_that_point_at_keys_are_refused(name: str, value: Any) -> None:
    assert_refused(token_with(header(**{name: value})), says=f"carries '{name}'")


@pytest.mark.parametrize("crit", [["exp"], [], ["b64"], "b64"])
def test_crit_is_refused(crit: Any) -> None:
    assert_refused(token_with(header(crit=crit)), says="'crit'")


@pytest.mark.parametrize("typ", ["JWT", "jwt", "Jwt"])
def test_typ_jwt_is_accepted_in_any_case(typ: str) -> None:
    assert parse(token_with(header(typ=typ))).header["typ"] == typ


@pytest.mark.parametrize("typ", ["at+jwt", "JOSE", "JWS", "", "JWT ", 5, ["JWT"], True])
def test_typ_other_than_jwt_is_refused(typ: Any) -> None:
    assert_refused(token_with(header(typ=typ)), says="'typ' is not 'JWT'")


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("", b""),
        ("AQ", b"\x01"),
        ("AQI", b"\x01\x02"),
        ("AQID", b"\x01\x02\x03"),
        ("-_8", b"\xfb\xff"),
    ],
)
def test_base64url_decode(encoded: str, decoded: bytes) -> None:
    assert base64url_decode(encoded) == decoded
    assert base64url_decode(encoded.encode()) == decoded


@pytest.mark.parametrize("bad", ["AQ==", "A", "AR", "+/8", "AQ\n", "é", "AQ I"])
def test_base64url_decode_refuses_with_value_error(bad: str) -> None:
    with pytest.raises(ValueError, match="base64url"):
        base64url_decode(bad)


def test_a_bearer_prefix_is_named() -> None:
    for prefixed in ("Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "bearer x.y", "Bearer x"):
        with pytest.raises(MalformedTokenError, match="strip the scheme"):
            parse(prefixed)
