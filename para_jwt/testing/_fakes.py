"""Random, realistic-looking values for what Para puts in its tokens.

Fresh random values in every token keep tests from passing by accident on a
constant (two users with the same wallet, say). Nothing here is a real key or
address: EVM public keys are random bytes, not curve points.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

__all__ = ["email", "identifier", "make_wallet", "phone", "solana_address", "user_id"]

_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def user_id() -> str:
    return str(uuid.uuid4())


def _base58(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    digits = []
    while number:
        number, digit = divmod(number, 58)
        digits.append(_BASE58[digit])
    leading_zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * leading_zeros + "".join(reversed(digits))


def solana_address() -> str:
    """A base58 ed25519 public key, 44 characters like most real Solana addresses."""
    while True:
        # About 1 in 16 random keys encodes to 43 characters; draw again then.
        address = _base58(secrets.token_bytes(32))
        if len(address) == 44:
            return address


def evm_address() -> str:
    return "0x" + secrets.token_hex(20)


def make_wallet(
    wallet_type: str = "EVM",
    *,
    address: str | None = None,
    wallet_id: str | None = None,
    public_key: str | None = None,
) -> dict[str, Any]:
    """A wallet object shaped like the items of Para's ``data.wallets``.

    EVM wallets get a ``0x04…`` uncompressed public key and a lowercase address;
    every other type gets ``publicKey: ""``, as Para sends for Solana.
    """
    if address is None:
        address = evm_address() if wallet_type == "EVM" else solana_address()
    if public_key is None:
        public_key = "0x04" + secrets.token_hex(64) if wallet_type == "EVM" else ""
    return {
        "id": str(uuid.uuid4()) if wallet_id is None else wallet_id,
        "type": wallet_type,
        "address": address,
        "publicKey": public_key,
    }


def email() -> str:
    return f"user-{secrets.token_hex(4)}@example.com"


def phone() -> str:
    # NANP keeps 555-0100 to 555-0199 for fiction, so a generated number reaches nobody.
    return f"+1202555{100 + secrets.randbelow(100):04d}"


def identifier(auth_type: str, *, email: str | None, phone: str | None) -> str:
    """The login handle Para would report for ``auth_type``."""
    if auth_type == "email" and email is not None:
        return email
    if auth_type in ("phone", "phoneLegacy") and phone is not None:
        return phone
    if auth_type == "externalWallet":
        return evm_address()
    if auth_type == "telegram":
        return str(secrets.randbelow(10**10))
    return f"{auth_type.lower()}-user-{secrets.token_hex(4)}"
