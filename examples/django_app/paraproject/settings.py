"""A Django REST framework API protected by Para: two settings do it, PARA_JWT and
REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]."""

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "paraproject.urls"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "rest_framework"]
DATABASES: dict[str, dict[str, str]] = {}

PARA_JWT = {
    "API_KEY_ID": os.environ.get("PARA_API_KEY_ID"),
    # Your Para environment; the tests point JWKS_URL at a local MockPara instead.
    **(
        {"JWKS_URL": os.environ["PARA_JWKS_URL"]}
        if "PARA_JWKS_URL" in os.environ
        else {"ENVIRONMENT": os.environ.get("PARA_ENVIRONMENT", "prod")}
    ),
}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["para_jwt.django.rest_framework.ParaAuthentication"],
}
