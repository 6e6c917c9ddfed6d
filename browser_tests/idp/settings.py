"""Settings of the test identity provider. IDP_DATA_DIR holds its database and the RSA key that
browser_tests/idp_server.py generated for it."""

import os
from pathlib import Path

DATA_DIR = Path(os.environ["IDP_DATA_DIR"])

SECRET_KEY = "test-identity-provider-only"  # noqa: S105 -- a throwaway IdP on 127.0.0.1 for the tests
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "oauth2_provider",
    "browser_tests.idp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "browser_tests.idp.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": DATA_DIR / "idp.sqlite3"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # test users only: fast

# The portal runs on the same host (127.0.0.1, another port), and cookies do not tell ports
# apart: the IdP's cookies must not overwrite the portal's.
SESSION_COOKIE_NAME = "idp_sessionid"
CSRF_COOKIE_NAME = "idp_csrftoken"
LOGIN_URL = "/accounts/login/"

# https://django-oauth-toolkit.readthedocs.io/en/latest/oidc.html
OAUTH2_PROVIDER = {
    "OIDC_ENABLED": True,
    "OIDC_RSA_PRIVATE_KEY": (DATA_DIR / "rsa.pem").read_text() if (DATA_DIR / "rsa.pem").exists() else "",
    "OIDC_RP_INITIATED_LOGOUT_ENABLED": True,
    # Log-out with the portal's id_token_hint ends the IdP session without asking.
    "OIDC_RP_INITIATED_LOGOUT_ALWAYS_PROMPT": False,
    "PKCE_REQUIRED": True,
    "SCOPES": {
        "openid": "OpenID Connect",
        "profile": "Your user name",
        "email": "Your e-mail address",
        "groups": "Your groups",
    },
    "OAUTH2_VALIDATOR_CLASS": "browser_tests.idp.validator.GroupsClaimValidator",
}
