import pytest

from para_jwt import ConfigurationError, Environment
from para_jwt.environments import check_endpoint_url, is_loopback


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("prod", Environment.PROD),
        ("PROD", Environment.PROD),
        (" Beta ", Environment.BETA),
        ("sandbox", Environment.SANDBOX),
        ("development", Environment.BETA),
        ("PRODUCTION", Environment.PROD),
        (Environment.BETA, Environment.BETA),
    ],
)
def test_parse_accepts_names_case_insensitively(value: object, expected: Environment) -> None:
    assert Environment.parse(value) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["dev", "staging", "", "prod_", 3])
def test_parse_refuses_unknown_environments_with_the_choices(value: object) -> None:
    with pytest.raises(ConfigurationError, match=r"'sandbox', 'beta', 'prod'|string"):
        Environment.parse(value)  # type: ignore[arg-type]


def test_urls_per_environment() -> None:
    assert Environment.PROD.jwks_url == "https://api.getpara.com/.well-known/jwks.json"
    assert Environment.BETA.api_base == "https://api.beta.getpara.com/"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("beta_239a31fee5298dc110ee6a78e274b809", Environment.BETA),
        ("prod_0123456789abcdef", Environment.PROD),
        ("sandbox_0123", Environment.SANDBOX),
        ("PROD_abc", Environment.PROD),
    ],
)
def test_environment_from_api_key_prefix(key: str, expected: Environment) -> None:
    assert Environment.from_api_key(key) is expected


@pytest.mark.parametrize(
    "key", ["239a31fee5298dc110ee6a78e274b809", "sk_secretvalue", "dev_123secret", "_secretvalue"]
)
def test_environment_from_api_key_refuses_without_echoing_the_key(key: str) -> None:
    with pytest.raises(ConfigurationError, match="environment=") as info:
        Environment.from_api_key(key)
    tail = key.partition("_")[2] or key
    assert tail not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://api.getpara.com/.well-known/jwks.json",
        "http://127.0.0.1:8080/jwks",
        "http://localhost/jwks",
        "http://[::1]:9000/jwks",
        "http://127.5.5.5/jwks",
    ],
)
def test_check_endpoint_url_accepts_https_and_loopback_http(url: str) -> None:
    assert check_endpoint_url(url, what="jwks_url") == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://api.getpara.com/.well-known/jwks.json", "non-loopback"),
        ("http://10.0.0.1/jwks", "non-loopback"),
        ("ftp://api.getpara.com/jwks", "https://"),
        ("api.getpara.com/jwks", "https://"),
        ("https://user:hunter2@api.getpara.com/jwks", "credentials"),
        ("", "non-empty"),
    ],
)
def test_check_endpoint_url_refuses_unsafe_urls(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        check_endpoint_url(url, what="jwks_url")
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.9.8.7", True),
        ("::1", True),
        ("10.0.0.1", False),
        ("api.getpara.com", False),
        ("localhost.example.com", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
