"""Constants shared by the fuzz targets and the corpus generator."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc.jwk import OKPKey

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
#: The fixed "now" of every fuzz verifier; seed tokens are valid at this instant.
NOW = 1_800_000_000.0
API_KEY_ID = "8c67b747-0c1e-4a3b-9f6d-2a6b3c1d4e5f"

# A fuzz-only Ed25519 key derived from a public constant: deterministic so that
# seeds name its kid, worthless because anyone can derive it. It signs payloads
# the fuzzer writes, so that mutations get past the signature to the claim rules.
ED25519 = OKPKey.import_key(
    Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"para_jwt fuzz-only key").digest())
)
ED25519_KID = ED25519.thumbprint()


def ed25519_jwk() -> dict[str, Any]:
    return {"kid": ED25519_KID, "use": "sig", "alg": "Ed25519", **ED25519.as_dict(private=False)}


def default_header() -> bytes:
    return json.dumps({"alg": "Ed25519", "typ": "JWT", "kid": ED25519_KID}).encode()
