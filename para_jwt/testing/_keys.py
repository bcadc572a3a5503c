"""The mock Para's signing keys, and compact-JWS signing with them.

Signing goes straight to joserfc's algorithm objects instead of through
``joserfc.jws.serialize_compact``: the registry's policy (recommended-only
algorithms, strict header checks, a ``SecurityWarning`` for EdDSA) protects a
*verifier*, while a mock issuer must sign exactly what a test asks for, including
headers a strict registry would refuse.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

__all__ = ["SUPPORTED_ALGORITHMS", "SigningKey", "b64url", "sign_compact"]

PrivateKey = RSAKey | ECKey | OKPKey

#: Algorithms MockPara can generate keys for. Para itself uses RS256 with RSA-2048
#: keys; the others let tests check that a verifier pinned to RS256 refuses them.
SUPPORTED_ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")


def _generate(alg: str) -> PrivateKey:
    if alg in ("RS256", "PS256"):
        return RSAKey.generate_key(2048)
    if alg == "ES256":
        return ECKey.generate_key("P-256")
    if alg == "EdDSA":
        return OKPKey.generate_key("Ed25519")
    raise ValueError(f"MockPara cannot make {alg!r} keys: use one of {SUPPORTED_ALGORITHMS}")


@dataclass(frozen=True, slots=True, repr=False)
class SigningKey:
    """One key pair of the mock Para, named like Para names its keys."""

    #: The RFC 7638 SHA-256 thumbprint (43 base64url characters), as in Para's JWKS.
    kid: str
    alg: str
    private: PrivateKey

    @classmethod
    def generate(cls, alg: str) -> SigningKey:
        private = _generate(alg)
        return cls(private.thumbprint(), alg, private)

    def public_jwk(self) -> dict[str, Any]:
        """The JWK as published, members in the order of Para's JWKS."""
        return self._jwk(self.private.as_dict(private=False))

    def private_jwk(self) -> dict[str, Any]:
        return self._jwk(self.private.as_dict(private=True))

    def _jwk(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"kty": params.pop("kty"), "use": "sig", "alg": self.alg, "kid": self.kid, **params}

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r}, alg={self.alg!r})"


def b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _signature(signing_input: bytes, key: PrivateKey, alg: str) -> bytes:
    if alg == "none":
        return b""
    algorithm = JWSRegistry.algorithms.get(alg)
    if algorithm is None:
        raise ValueError(f"joserfc has no JWS algorithm {alg!r}")
    try:
        algorithm.check_key(key)
    except JoseError as exc:
        raise ValueError(f"a {key.key_type} key cannot sign with {alg}: {exc}") from None
    return algorithm.sign(signing_input, key)


def sign_compact(header: bytes, payload: bytes, key: PrivateKey, alg: str) -> str:
    """A compact JWS over the exact ``header`` and ``payload`` bytes.

    ``alg`` is the algorithm actually used to sign, whatever ``header`` claims, so
    tests can build tokens whose header lies. ``"none"`` gives an empty signature.
    """
    signing_input = b64url(header) + b"." + b64url(payload)
    return (signing_input + b"." + b64url(_signature(signing_input, key, alg))).decode("ascii")
