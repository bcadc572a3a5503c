"""A Django project for the tests of para_jwt.django: sync and async views, class-based
views, DRF views. ``configure()`` sets it up once per test process (Django's settings
can only be configured once); tests point ``PARA_JWT`` at their MockPara with
``override_settings``."""

from __future__ import annotations

from typing import Any

import django
from django.conf import settings

# A closed port: no test talks to it; each overrides PARA_JWT with its MockPara.
PLACEHOLDER_PARA_JWT = {
    "API_KEY_ID": "0b8f2f4c-64a8-4b83-b36e-bd4c3e4b6c11",
    "JWKS_URL": "http://127.0.0.1:9/.well-known/jwks.json",
}


def configure() -> None:
    if settings.configured:
        return
    settings.configure(
        SECRET_KEY="tests-only",
        DEBUG=False,
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF="para_django_project.urls",
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "rest_framework",
        ],
        MIDDLEWARE=["para_jwt.django.ParaMiddleware"],
        DATABASES={},
        PARA_JWT=PLACEHOLDER_PARA_JWT,
        REST_FRAMEWORK={
            "DEFAULT_AUTHENTICATION_CLASSES": ["para_jwt.django.rest_framework.ParaAuthentication"],
        },
        LOGGING_CONFIG=None,
    )
    django.setup()


def para_jwt_for(para: Any, **more: Any) -> dict[str, Any]:
    """``PARA_JWT`` for a MockPara, on its clock."""
    return {
        "API_KEY_ID": para.api_key_id,
        "JWKS_URL": para.jwks_url,
        "VERIFIER_OPTIONS": {"clock": para.clock},
        **more,
    }
