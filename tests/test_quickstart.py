"""The README's first example does what it says, against a local Para."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from para_jwt import Environment, ParaVerifier
from para_jwt.testing import FakeClock, MockPara

README = Path(__file__).parent.parent / "README.md"


def first_python_example() -> str:
    match = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert match is not None
    return match.group(1)


async def test_the_quick_start_example_verifies_and_refuses() -> None:
    namespace: dict[str, Any] = {}
    exec(first_python_example(), namespace)  # noqa: S102 (our own README)
    verifier: ParaVerifier = namespace["verifier"]
    assert verifier.jwks is not None
    assert verifier.jwks.url == Environment.PROD.jwks_url
    await verifier.close()

    clock = FakeClock()
    async with MockPara(api_key_id=verifier.api_key_id, clock=clock) as para:
        # The same function, with its verifier pointed at the local Para.
        namespace["verifier"] = para.verifier()
        user = "0f7c5a0e-3f1e-4c55-8d0a-8f2a4f2b9d11"
        said = await namespace["who_is"](para.issue_jwt(user))
        assert said.startswith(f"{user} signed in by email, EVM Wallet(")
        with pytest.raises(PermissionError, match="expired"):
            await namespace["who_is"](para.issue_jwt(expires_in=-1))
        await namespace["verifier"].close()
