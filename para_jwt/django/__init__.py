"""Protect Django views with Para: ``ParaMiddleware``, ``@para_required``, DRF's
``ParaAuthentication`` (in ``para_jwt.django.rest_framework``).

Configured by one setting, ``PARA_JWT = {"API_KEY_ID": ..., "ENVIRONMENT": "prod"}``
(see ``para_jwt.django._settings`` for every key). The refusals (statuses,
``WWW-Authenticate``, ``Retry-After``, JSON bodies) are those of every para_jwt
adapter; each is logged as one line on the ``para_jwt.django`` logger, never with
a token.

Needs the extra: ``pip install 'para-jwt[django]'``.
"""

from __future__ import annotations

try:
    import django  # noqa: F401 - only to fail early, naming the extra
except ImportError as _missing:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "para_jwt.django needs Django: install the extra with pip install 'para-jwt[django]'"
    ) from _missing

from ._user import ParaUser
from .decorators import ParaRequiredMixin, get_claims, para_required
from .middleware import ParaMiddleware

__all__ = ["ParaMiddleware", "ParaRequiredMixin", "ParaUser", "get_claims", "para_required"]
