"""The ``PARA_JWT`` setting, checked once and turned into the process's verifier.

::

    PARA_JWT = {
        "API_KEY_ID": "8c67b747-...",  # required: your API key's ID, the tokens' aud
        "ENVIRONMENT": "prod",          # or "JWKS_URL": "https://...": exactly one
        "REALM": "para",                # the WWW-Authenticate realm (default "para")
        "VERIFIER_OPTIONS": {},         # more SyncParaVerifier options (leeway, clock...)
        "USER": "myapp.auth.user_for",  # DRF: claims -> request.user (default ParaUser)
    }

The verifier is built on first need (``ParaMiddleware``'s construction and the
``para_jwt.django`` app's ``ready()`` both ask, so a wrong setting stops the server
at startup) and rebuilt when tests override the setting.
"""

from __future__ import annotations

import difflib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.http import HttpRequest, HttpResponse
from django.utils.encoding import escape_uri_path
from django.utils.module_loading import import_string

from .. import SyncParaVerifier
from .._http import Gate, Rejection, log_rejection
from .._http_options import check_realm
from ..claims import ParaClaims
from ..errors import ConfigurationError
from ._user import ParaUser

__all__ = ["Para", "answer", "log_refusal", "para", "refusal_response"]

logger = logging.getLogger("para_jwt.django")

_KEYS: Final = ("API_KEY_ID", "ENVIRONMENT", "JWKS_URL", "REALM", "VERIFIER_OPTIONS", "USER")
# The key sources, by setting key: exactly one must be given.
_SOURCES: Final = {"ENVIRONMENT": "environment", "JWKS_URL": "jwks_url"}


class _Misconfigured(ImproperlyConfigured, ConfigurationError):
    """Django's ``ImproperlyConfigured``, and para_jwt's ``ConfigurationError`` too."""


@dataclass(frozen=True, slots=True)
class Para:
    """What ``PARA_JWT`` configures: the verifiers, the refusals, the user hook.

    Attributes:
        verifier: Verifies tokens, for sync and async views (and DRF) alike.
        gate: Builds the refusals (``REALM``).
        user_for: Turns claims into DRF's ``request.user`` (``USER``).
    """

    verifier: SyncParaVerifier
    gate: Gate
    user_for: Callable[[ParaClaims], Any]


_lock = threading.Lock()
_para: Para | None = None


def para() -> Para:
    """The process's ``Para``, built from ``settings.PARA_JWT`` on first call.

    Raises:
        ImproperlyConfigured: ``PARA_JWT`` is missing or wrong (the exception is
            also a ``para_jwt.ConfigurationError``).
    """
    global _para
    current = _para
    if current is not None:
        return current
    with _lock:
        if _para is None:
            _para = _build(getattr(settings, "PARA_JWT", None))
        return _para


def _build(config: object) -> Para:
    if not isinstance(config, Mapping):
        raise _Misconfigured(
            "para_jwt.django needs settings.PARA_JWT = {'API_KEY_ID': '<your API key ID>', "
            "'ENVIRONMENT': 'prod'} (or 'JWKS_URL' instead of 'ENVIRONMENT'); got "
            + ("none" if config is None else type(config).__name__)
        )
    for key in config:
        if key not in _KEYS:
            close = difflib.get_close_matches(str(key), _KEYS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"the keys are {', '.join(_KEYS)}"
            raise _Misconfigured(f"PARA_JWT has an unknown key {key!r}: {hint}")
    # None is unset, as "API_KEY_ID": os.environ.get(...) gives when the variable is.
    if config.get("API_KEY_ID") is None:
        raise _Misconfigured("PARA_JWT['API_KEY_ID'] is missing: set it to your API key's ID")
    sources = {
        option: config[key] for key, option in _SOURCES.items() if config.get(key) is not None
    }
    if len(sources) != 1:
        raise _Misconfigured(
            "PARA_JWT needs exactly one of 'ENVIRONMENT' ('prod', 'beta', 'sandbox') and "
            f"'JWKS_URL' (got {len(sources)})"
        )
    options = config.get("VERIFIER_OPTIONS", {})
    if not isinstance(options, Mapping):
        raise _Misconfigured(
            "PARA_JWT['VERIFIER_OPTIONS'] must be a dict of SyncParaVerifier options, "
            f"not {type(options).__name__}"
        )
    try:
        gate = Gate(check_realm(config.get("REALM", "para")))
        verifier = SyncParaVerifier(config["API_KEY_ID"], **sources, **options)
    except (ConfigurationError, TypeError) as exc:
        raise _Misconfigured(f"PARA_JWT: {exc}") from None
    return Para(verifier, gate, _user_hook(config.get("USER")))


def _user_hook(hook: object) -> Callable[[ParaClaims], Any]:
    if hook is None:
        return ParaUser
    if isinstance(hook, str):
        try:
            hook = import_string(hook)
        except ImportError as exc:
            raise _Misconfigured(f"PARA_JWT['USER']: cannot import {hook!r}: {exc}") from None
    if not callable(hook):
        raise _Misconfigured(
            "PARA_JWT['USER'] must be a callable taking ParaClaims (or its dotted path), "
            f"not {type(hook).__name__}"
        )
    return hook


def _forget(*, setting: str, **_: Any) -> None:
    # override_settings(PARA_JWT=...) in tests: the next request builds anew.
    global _para
    if setting != "PARA_JWT":
        return
    with _lock:
        stale, _para = _para, None
    if stale is not None:
        stale.verifier.close()


setting_changed.connect(_forget)


def log_refusal(request: HttpRequest, rejection: Rejection) -> None:
    """One line on the ``para_jwt.django`` logger: method, path, status, error, reason."""
    log_rejection(logger, request.method or "", escape_uri_path(request.path), rejection)


def refusal_response(request: HttpRequest, rejection: Rejection) -> HttpResponse:
    """Log ``rejection`` and return the answer for it.

    Args:
        request: The refused request.
        rejection: Why.

    Returns:
        The JSON answer, with the rejection's status and headers.
    """
    log_refusal(request, rejection)
    return answer(rejection)


def answer(rejection: Rejection) -> HttpResponse:
    """The JSON answer for ``rejection``, with its status and headers; not logged."""
    return HttpResponse(
        rejection.body,
        status=rejection.status,
        content_type="application/json",
        headers=dict(rejection.headers),
    )
