"""Regenerate the committed seed corpus and ``pinned_jwks.json``.

    .venv/bin/python -m fuzz.make_corpus

Makes a fresh RSA-2048 key, signs Para-shaped tokens with it (valid at
``targets.NOW``), writes its *public* half to ``pinned_jwks.json`` and throws
the private half away: no private key is committed, and the fuzzer cannot sign
tokens of its own with it, so any raw token it gets accepted that is not a seed
is a forgery. Rerunning replaces every generated seed (hand-written ones, not
named here, stay).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey, OKPKey, RSAKey

from fuzz.common import API_KEY_ID, CORPUS, HERE, NOW, default_header, ed25519_jwk
from para_jwt.testing._fakes import make_wallet
from para_jwt.testing._keys import SigningKey, sign_compact


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _payload(**overrides: Any) -> dict[str, Any]:
    user = str(uuid.uuid4())
    data: dict[str, Any] = {
        "userId": user,
        "wallets": [make_wallet("EVM"), make_wallet("SOLANA")],
        "email": "ada@example.com",
        "authType": "email",
        "identifier": "ada@example.com",
    }
    data.update(overrides.pop("data", {}))
    payload = {"data": data, "iat": int(NOW) - 60, "exp": int(NOW) + 1800, "sub": user}
    payload["aud"] = API_KEY_ID
    payload.update(overrides)
    return payload


def _write(directory: Path, name: str, content: bytes) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(content)


def main() -> None:
    key = SigningKey.generate("RS256")
    (HERE / "pinned_jwks.json").write_text(json.dumps({"keys": [key.public_jwk()]}, indent=1))
    header = _compact({"alg": "RS256", "typ": "JWT", "kid": key.kid})
    verify = CORPUS / "verify"

    def token(payload: dict[str, Any], head: bytes = header, alg: str = "RS256") -> bytes:
        return sign_compact(head, _compact(payload), key.private, alg).encode()

    # Tokens that verify: the only raw inputs the fuzzer may ever get accepted.
    _write(verify, "valid-email", token(_payload()))
    _write(
        verify,
        "valid-phone-connected",
        token(
            _payload(
                data={
                    "authType": "phone",
                    "identifier": "+12025550142",
                    "phone": "+12025550142",
                    "email": None,
                    "oAuthMethod": "google",
                    "connectedWallets": [make_wallet("EVM")],
                    "telegramUserId": 42,
                }
            )
        ),
    )
    _write(verify, "valid-aud-list", token(_payload(aud=["other", API_KEY_ID.upper()])))
    # Signed, but refused for a claim: mutations start next to each rule.
    _write(verify, "expired", token(_payload(exp=int(NOW) - 1)))
    _write(verify, "future-nbf", token(_payload(nbf=int(NOW) + 60)))
    _write(verify, "wrong-aud", token(_payload(aud=str(uuid.uuid4()))))
    _write(verify, "sub-mismatch", token(_payload(sub="someone-else")))
    # Header attacks, signed with the real key so only the header rule refuses them.
    for name, fields in {
        "header-none": {"alg": "none"},
        "header-hs256": {"alg": "HS256"},
        "header-jwk": {"jwk": key.public_jwk()},
        "header-jku": {"jku": "https://attacker.example/jwks.json"},
        "header-crit": {"crit": ["exp"]},
        "header-unknown-kid": {"kid": "not-a-kid"},
    }.items():
        head = _compact({"alg": "RS256", "typ": "JWT", "kid": key.kid, **fields})
        _write(verify, name, token(_payload(), head))
    # Payloads the fuzz target signs itself (inputs starting with "{").
    _write(verify, "signed-payload", _compact(_payload()))
    _write(
        verify,
        "signed-header-and-payload",
        default_header() + b"\0" + _compact(_payload(nbf=int(NOW) - 5)),
    )

    jwks = CORPUS / "jwks"
    rsa = key.public_jwk()
    ec = ECKey.generate_key("P-256").as_dict(private=False) | {"kid": "ec", "use": "sig"}
    okp = OKPKey.generate_key("Ed25519").as_dict(private=False) | {"kid": "okp"}
    small = RSAKey.generate_key(1024).as_dict(private=False) | {"kid": "small"}
    _write(jwks, "para", _compact({"keys": [rsa]}))
    _write(jwks, "mixed", _compact({"keys": [rsa, ec, okp, ed25519_jwk()]}))
    _write(
        jwks,
        "hostile",
        _compact(
            {
                "keys": [
                    rsa,
                    small,
                    {**rsa, "kid": "private", "d": "AQAB"},
                    {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
                    {**ec, "kid": "enc", "use": "enc"},
                    {**okp, "kid": "x25519", "crv": "X25519"},
                    {**rsa, "kid": "alg", "alg": "HS256"},
                    {**rsa, "kid": "ops", "key_ops": ["sign"]},
                    {"kty": "AKP", "kid": "pq", "alg": "ML-DSA-44", "pub": "AAAA"},
                    ec,
                    "not an object",
                    {"kid": rsa["kid"], "kty": "RSA"},
                ]
            }
        ),
    )
    _write(jwks, "not-a-set", b'{"keys": {"kty": "RSA"}}')


if __name__ == "__main__":
    main()
