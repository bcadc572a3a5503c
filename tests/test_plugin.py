"""The pytest plugin: its fixtures used here directly, and in a user's project (pytester).

The plugin is active through the ``pytest11`` entry point of the installed
package; nothing in this suite's conftest loads it.
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import entry_points
from pathlib import Path

import aiohttp
import pytest

from para_jwt import ParaAPI, ParaVerifier, TokenExpiredError
from para_jwt.testing import FakeClock, MockPara, plugin

pytest_plugins = ["pytester"]


def test_the_plugin_is_registered_as_a_pytest11_entry_point(
    pytestconfig: pytest.Config,
) -> None:
    (entry_point,) = entry_points(group="pytest11", name="para_jwt")
    assert entry_point.value == "para_jwt.testing.plugin"
    assert pytestconfig.pluginmanager.has_plugin("para_jwt")


async def test_mock_para_is_started_on_loopback(mock_para: MockPara) -> None:
    assert mock_para.base_url.startswith("http://127.0.0.1:")
    async with aiohttp.ClientSession() as http, http.get(mock_para.jwks_url) as response:
        assert response.status == 200
        keys = (await response.json())["keys"]
    assert [key["kid"] for key in keys] == [mock_para.current_kid]


async def test_para_verifier_verifies_mock_para_tokens(
    mock_para: MockPara, para_verifier: ParaVerifier
) -> None:
    assert para_verifier.api_key_id == mock_para.api_key_id
    claims = await para_verifier.verify(mock_para.issue_jwt("user-1"))
    assert claims.user_id == "user-1"
    assert mock_para.jwks_requests == 1


async def test_one_clock_moves_the_mock_and_the_verifier(
    para_clock: FakeClock, mock_para: MockPara, para_verifier: ParaVerifier
) -> None:
    assert mock_para.clock is para_clock
    token = mock_para.issue_jwt(expires_in=60)
    await para_verifier.verify(token)
    para_clock.advance(60)
    with pytest.raises(TokenExpiredError):
        await para_verifier.verify(token)


async def test_para_api_calls_mock_paras_endpoints(mock_para: MockPara, para_api: ParaAPI) -> None:
    token = mock_para.issue_verification_token(auth_type="phone", identifier="+12025550123")
    session = await para_api.verify_session(token)
    assert (session.auth_type, session.identifier) == ("phone", "+12025550123")
    wallet_id = mock_para.register_wallet("0xabc")
    assert await para_api.verify_wallet("0xabc") == wallet_id
    # backoff=0: a retried 503 costs no waiting.
    mock_para.fail_next(503, endpoint="wallets")
    assert await para_api.verify_wallet("0xabc") == wallet_id
    assert mock_para.wallets_requests == 3


# --- in a user's project ---------------------------------------------------------------------

QUICK = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")

USER_TESTS = """
import aiohttp
import pytest

from para_jwt import JWKSUnavailableError, TokenExpiredError

seen = {}


@pytest.mark.asyncio
async def test_uses_all_fixtures(mock_para, para_verifier, para_api, para_clock):
    token = mock_para.issue_jwt("user-1", expires_in=60)
    assert (await para_verifier.verify(token)).user_id == "user-1"
    wallet = mock_para.register_wallet("0xabc")
    assert await para_api.verify_wallet("0xabc") == wallet
    para_clock.advance(61)
    with pytest.raises(TokenExpiredError):
        await para_verifier.verify(token)
    seen.update(url=mock_para.jwks_url, verifier=para_verifier)


@pytest.mark.asyncio
async def test_fixtures_were_closed_after_the_test():
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(seen["url"])
    with pytest.raises(JWKSUnavailableError, match="closed"):
        await seen["verifier"].refresh()
"""

USER_OVERRIDE = """
import pytest
import pytest_asyncio


@pytest_asyncio.fixture
async def para_verifier(mock_para):  # as the plugin's docstring shows
    async with mock_para.verifier(leeway=5) as verifier:
        yield verifier


@pytest.mark.asyncio
async def test_a_fixture_can_be_overridden(mock_para, para_verifier, para_clock):
    token = mock_para.issue_jwt(expires_in=60)
    para_clock.advance(62)
    await para_verifier.verify(token)  # within the 5 s leeway
"""


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_the_fixtures_work_in_a_users_project(pytester: pytest.Pytester, mode: str) -> None:
    pytester.makepyfile(test_user=USER_TESTS, test_override=USER_OVERRIDE)
    pytester.makeini(
        f"[pytest]\nasyncio_mode = {mode}\nasyncio_default_fixture_loop_scope = function\n"
    )
    # In-process, para_jwt is imported already, so pytest cannot rewrite its asserts;
    # hypothesis's plugin only costs time here.
    result = pytester.runpytest(
        *QUICK, "-W", "error", "-W", "ignore::pytest.PytestAssertRewriteWarning"
    )
    result.assert_outcomes(passed=3)


def test_the_readme_example_passes(pytester: pytest.Pytester) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme[readme.index("## Testing your app") :]
    example = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert example is not None
    pytester.makepyfile(test_readme=example.group(1))
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    result = pytester.runpytest(*QUICK, "-W", "ignore::pytest.PytestAssertRewriteWarning")
    result.assert_outcomes(passed=2)


def test_pytest_fixtures_lists_them_with_their_docs(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest("--fixtures", *QUICK)
    result.stdout.fnmatch_lines(
        [
            "*fixtures defined from para_jwt.testing.plugin*",
            "mock_para*",
            "*A started ``MockPara`` on 127.0.0.1*",
        ]
    )
    for name in ("para_verifier", "para_api", "para_clock", "sync_mock_para"):
        assert any(line.startswith(name) for line in result.outlines), name


def test_without_pytest_asyncio_the_fixtures_are_plain_async_fixtures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Left to whichever plugin runs the async tests (anyio's, say).
    monkeypatch.setitem(sys.modules, "pytest_asyncio", None)  # makes the import fail
    assert plugin._async_fixture_decorator() is pytest.fixture


def test_sync_mock_para_serves_synchronous_tests(
    sync_mock_para: MockPara, para_clock: FakeClock
) -> None:
    assert sync_mock_para.clock is para_clock
    token = sync_mock_para.issue_jwt("user-1", expires_in=60)
    with sync_mock_para.sync_verifier() as verifier:
        assert verifier.verify(token).user_id == "user-1"
        para_clock.advance(60)
        with pytest.raises(TokenExpiredError):
            verifier.verify(token)
    assert sync_mock_para.jwks_requests == 1
