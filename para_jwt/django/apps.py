"""The ``para_jwt.django`` app: listed in ``INSTALLED_APPS``, it checks ``PARA_JWT`` at startup."""

from __future__ import annotations

from django.apps import AppConfig

from ._settings import para

__all__ = ["ParaJWTConfig"]


class ParaJWTConfig(AppConfig):
    """Checks ``settings.PARA_JWT`` when Django starts (``ImproperlyConfigured``).

    Optional: ``ParaMiddleware`` checks it too. A project that only uses DRF's
    ``ParaAuthentication`` lists the app to fail at startup rather than at the
    first request.
    """

    name = "para_jwt.django"
    label = "para_jwt"
    verbose_name = "Para JWT"

    def ready(self) -> None:
        """Build the verifier from ``PARA_JWT`` now, so a wrong setting stops startup."""
        para()
