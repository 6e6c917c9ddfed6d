"""Settings for the WorkSpaces BYOL import portal.

Every value comes from the environment; README.md lists each variable with its default.
The defaults are the embedded development set-up: SQLite under var/, console email.
"""

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from imports import roles as portal_roles

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PORTAL_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_required(name: str, because: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ImproperlyConfigured(f"{name} must be set when {because}.")
    return value


def env_endpoint(name: str, *, required: bool, allow_http: bool) -> str:
    """An endpoint of the identity provider: https, or plain http where allowed (development)."""
    value = os.environ.get(name, "").strip()
    if not value:
        if required:
            raise ImproperlyConfigured(f"{name} must be set when PORTAL_OIDC_ENABLED is on.")
        return ""
    parts = urlsplit(value)
    if not parts.netloc or parts.scheme not in ({"https", "http"} if allow_http else {"https"}):
        raise ImproperlyConfigured(f"{name} must be an https:// URL, not {value!r}.")
    return value


def env_role_groups(name: str) -> dict[str, list[str]]:
    """`Role=idp-group[,idp-group...]` entries separated by `;`: the identity provider's groups
    that give each of the portal's roles."""
    mapping: dict[str, list[str]] = {}
    for entry in filter(None, (part.strip() for part in os.environ.get(name, "").split(";"))):
        role, equals, groups = (part.strip() for part in entry.partition("="))
        idp_groups = [group.strip() for group in groups.split(",") if group.strip()]
        if not equals or not role or not idp_groups:
            raise ImproperlyConfigured(f"{name}: {entry!r} is not Role=idp-group[,idp-group...].")
        if role not in portal_roles.ROLE_PERMISSIONS:
            raise ImproperlyConfigured(
                f"{name}: there is no role {role!r}; the roles are {', '.join(portal_roles.ROLE_PERMISSIONS)}."
            )
        if role in mapping:
            raise ImproperlyConfigured(f"{name}: {role} is given twice; list all its groups in one entry.")
        mapping[role] = idp_groups
    return mapping


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from exc


def env_cache(name: str) -> dict[str, Any]:
    """The default cache from NAME: empty for each process's own memory (the embedded set-up),
    or a redis:// or rediss:// URL for one cache every process shares. A Redis that is down or
    unreachable does not fail the page: the cache reads as empty and drops writes (portal.cache).
    https://docs.djangoproject.com/en/5.2/topics/cache/#redis"""
    url = os.environ.get(name, "").strip()
    if not url:
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    if not url.startswith(("redis://", "rediss://")):
        # The message does not repeat the URL: it may hold Redis's password.
        raise ImproperlyConfigured(
            f"{name} must be empty (each process caches in its own memory) or a redis:// or rediss:// URL "
            "such as redis://:password@127.0.0.1:6379/1."
        )
    return {
        "BACKEND": "portal.cache.FailSoftRedisCache",
        "LOCATION": url,
        "KEY_PREFIX": "portal",
        # Passed to redis-py's connection pool.
        # https://redis.readthedocs.io/en/stable/connections.html#connectionpool
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }


def env_secret(name: str) -> str:
    """A secret from NAME, or from the file NAME_FILE names (a Docker or Kubernetes secret)."""
    path = os.environ.get(f"{name}_FILE", "")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {path}: {exc.strerror}") from exc
    return os.environ.get(name, "")


DEBUG = env_bool("DJANGO_DEBUG", True)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off.")
    SECRET_KEY = "insecure-development-key-only-for-debug-mode"  # noqa: S105

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    # django.contrib.admin, with the admin behind a second factor (portal.admin_site).
    "portal.apps.PortalAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "crispy_forms",
    "crispy_bootstrap5",
    "django_filters",
    "bootstrap",
    # Only for its static files: Chart.js for the dashboard's charts.
    "chartkick.django",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "imports",
    # The REST API (imports/api/): Django REST framework, its OpenAPI description (drf-spectacular,
    # with Swagger UI's files served by the portal itself: the sidecar), and per-user API tokens
    # stored as digests (django-rest-knox, with the portal's named token model, api.ApiToken).
    "rest_framework",
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "imports.api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    # Changes to targets, users and groups are recorded with who made them (imports.admin_history).
    "imports.admin_history.ActingUserMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "imports.middleware.NoStoreForSignedInMiddleware",
    "imports.middleware.SessionLifetimeMiddleware",
    # Last, as django-axes asks: it answers a locked-out log-in.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "imports.context_processors.roles",
            ],
        },
    },
]

# SQLite by default. WAL lets the web server read while a worker writes, and IMMEDIATE
# transactions take the write lock up front, so two writers queue on the busy timeout
# instead of failing with "database is locked" when a read lock is upgraded mid-transaction.
# https://docs.djangoproject.com/en/5.2/ref/databases/#sqlite-transaction-behavior
VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'portal.sqlite3'}"),
        # A connection kept for a minute saves a connect (and, on PostgreSQL, a backend process
        # fork) per request; the health check replaces one the server dropped meanwhile.
        # https://docs.djangoproject.com/en/5.2/ref/databases/#persistent-connections
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
# On PostgreSQL, a statement run a few times on a connection is prepared: the server keeps its
# plan, and the next runs skip planning, which cost more than running most of the portal's queries
# (1 ms of the 1.2 the permissions' UNION takes, 3 of the dashboard's 6 ms per view). Parameters
# are then sent apart from the SQL (psycopg's server-side binding), so that one statement serves
# every value. A pooler in transaction mode (PgBouncer before 1.21) cannot keep prepared
# statements: DATABASE_PREPARED_STATEMENTS=off there.
# https://docs.djangoproject.com/en/5.2/ref/databases/#server-side-parameters-binding
# https://www.psycopg.org/psycopg3/docs/advanced/prepare.html
PREPARE_THRESHOLD = 5
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool("DATABASE_PREPARED_STATEMENTS", True):
    DATABASES["default"]["OPTIONS"] = {
        **DATABASES["default"].get("OPTIONS", {}),
        "server_side_binding": True,
        "prepare_threshold": PREPARE_THRESHOLD,
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The API's throttles and the dashboard's charts live in the cache: set PORTAL_CACHE_URL to a
# Redis wherever more than one process serves pages (gunicorn's workers), so that they count and
# compute once for all; without it each process keeps its own. A Redis that fails costs the
# cache, never the page (portal.cache).
# https://docs.djangoproject.com/en/5.2/topics/cache/
CACHES = {"default": env_cache("PORTAL_CACHE_URL")}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Log-in throttling: after PORTAL_LOGIN_FAILURE_LIMIT failures for one user name, or from one
# address, log-ins stop for PORTAL_LOGIN_LOCKOUT_MINUTES; each failure is logged.
# https://django-axes.readthedocs.io/en/latest/4_configuration.html
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "imports.accounts.PasswordBackend"]
AXES_FAILURE_LIMIT = env_int("PORTAL_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("PORTAL_LOGIN_LOCKOUT_MINUTES", 15))
# Per user name and per address; a single sign-on names no user to axes, so it counts per
# address only (imports.accounts.lockout_parameters).
AXES_LOCKOUT_PARAMETERS = "imports.accounts.lockout_parameters"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# A failed log-in is logged with the user name and address tried (never the password), so the
# log says which account is under attack; axes masks both by default.
AXES_SENSITIVE_PARAMETERS: list[str] = []
# Behind reverse proxies (the TLS proxy in front, say), every request comes from a proxy's
# address: with PORTAL_TRUSTED_PROXY_COUNT proxies, the address counted is the one the outermost
# of them appended to X-Forwarded-For, counted from the right, where a client cannot write; read
# with django-ipware, whose proxy count is the proxies listed in the header (the nearest one is
# the connection itself). Entries a client put in front are ignored, not a reason to give up.
# https://django-axes.readthedocs.io/en/latest/4_configuration.html
PORTAL_TRUSTED_PROXY_COUNT = env_int("PORTAL_TRUSTED_PROXY_COUNT", 0)
if PORTAL_TRUSTED_PROXY_COUNT:
    AXES_IPWARE_PROXY_COUNT = PORTAL_TRUSTED_PROXY_COUNT - 1
    AXES_IPWARE_PROXY_ORDER = "left-most"  # ipware's name for the usual order: client, then proxies
    AXES_IPWARE_META_PRECEDENCE_ORDER = ("HTTP_X_FORWARDED_FOR",)
    IPWARE_STRICT = False
# A session ends after PORTAL_SESSION_IDLE_MINUTES without a click, and PORTAL_SESSION_MAX_HOURS
# after log-in whatever happens (imports.middleware.SessionLifetimeMiddleware); the cookie
# itself lasts no longer than the latter.
PORTAL_SESSION_IDLE_MINUTES = env_int("PORTAL_SESSION_IDLE_MINUTES", 30)
PORTAL_SESSION_MAX_HOURS = env_int("PORTAL_SESSION_MAX_HOURS", 8)
SESSION_COOKIE_AGE = PORTAL_SESSION_MAX_HOURS * 3600
# Django's database sessions, the row read by SQL compiled once per process (imports.sessions).
SESSION_ENGINE = "imports.sessions"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
# The Django admin asks for a second factor (a TOTP code, or a one-time backup token) besides the
# password, and only a session verified by one may use it (portal.admin_site). On by default
# whenever DEBUG is off. https://django-otp-official.readthedocs.io/en/stable/overview.html
PORTAL_ADMIN_OTP = env_bool("PORTAL_ADMIN_OTP", not DEBUG)
OTP_TOTP_ISSUER = "BYOL image portal"  # the name authenticator apps show

# Single sign-on with OpenID Connect (imports/oidc.py, on mozilla-django-oidc); off by default.
# People, and their roles from the identity provider's (IdP's) group claim, are taken at every
# log-in. README.md "Single sign-on" says how to register the portal at an IdP.
# https://mozilla-django-oidc.readthedocs.io/en/stable/settings.html
PORTAL_OIDC_ENABLED = env_bool("PORTAL_OIDC_ENABLED", False)
# Off: the portal's log-in page offers single sign-on only and refuses passwords; a superuser can
# still sign in with a password at /admin/ (break-glass, with the admin's second factor).
PORTAL_PASSWORD_LOGIN = env_bool("PORTAL_PASSWORD_LOGIN", True)
if not PORTAL_PASSWORD_LOGIN and not PORTAL_OIDC_ENABLED:
    raise ImproperlyConfigured("PORTAL_PASSWORD_LOGIN=false leaves no way to sign in: turn PORTAL_OIDC_ENABLED on.")
PORTAL_OIDC_PROVIDER_NAME = os.environ.get("PORTAL_OIDC_PROVIDER_NAME", "").strip() or "single sign-on"
PORTAL_OIDC_USERNAME_CLAIM = os.environ.get("PORTAL_OIDC_USERNAME_CLAIM", "").strip() or "preferred_username"
PORTAL_OIDC_GROUPS_CLAIM = os.environ.get("PORTAL_OIDC_GROUPS_CLAIM", "").strip() or "groups"
PORTAL_OIDC_ROLE_GROUPS = env_role_groups("PORTAL_OIDC_ROLE_GROUPS")
PORTAL_OIDC_END_SESSION_ENDPOINT = ""
# What the re-check below leaves out: the request page's status polling (imports.middleware).
OIDC_EXEMPT_URLS = [re.compile(r"^/requests/[0-9]+/status/$")]
if PORTAL_OIDC_ENABLED:
    if not PORTAL_OIDC_ROLE_GROUPS:
        raise ImproperlyConfigured(
            "PORTAL_OIDC_ROLE_GROUPS must map the IdP's groups to roles when PORTAL_OIDC_ENABLED is on, e.g. "
            "Requesters=byol-requesters;Approvers=byol-approvers;Auditors=byol-auditors."
        )
    OIDC_RP_CLIENT_ID = env_required("PORTAL_OIDC_CLIENT_ID", "PORTAL_OIDC_ENABLED is on")
    # From the variable, or from the file PORTAL_OIDC_CLIENT_SECRET_FILE names (a Docker secret).
    OIDC_RP_CLIENT_SECRET = env_secret("PORTAL_OIDC_CLIENT_SECRET")
    if not OIDC_RP_CLIENT_SECRET:
        raise ImproperlyConfigured(
            "PORTAL_OIDC_CLIENT_SECRET (or PORTAL_OIDC_CLIENT_SECRET_FILE) must be set when PORTAL_OIDC_ENABLED is on."
        )
    # Plain http only for an IdP on a development machine.
    OIDC_OP_AUTHORIZATION_ENDPOINT = env_endpoint("PORTAL_OIDC_AUTHORIZATION_ENDPOINT", required=True, allow_http=DEBUG)
    OIDC_OP_TOKEN_ENDPOINT = env_endpoint("PORTAL_OIDC_TOKEN_ENDPOINT", required=True, allow_http=DEBUG)
    OIDC_OP_JWKS_ENDPOINT = env_endpoint("PORTAL_OIDC_JWKS_ENDPOINT", required=True, allow_http=DEBUG)
    # Empty: the claims of the (verified) ID token alone, as Entra ID puts the groups only there.
    OIDC_OP_USER_ENDPOINT = env_endpoint("PORTAL_OIDC_USERINFO_ENDPOINT", required=False, allow_http=DEBUG)
    PORTAL_OIDC_END_SESSION_ENDPOINT = env_endpoint(
        "PORTAL_OIDC_END_SESSION_ENDPOINT", required=False, allow_http=DEBUG
    )
    OIDC_RP_SIGN_ALGO = os.environ.get("PORTAL_OIDC_SIGN_ALGO", "").strip() or "RS256"
    OIDC_RP_SCOPES = os.environ.get("PORTAL_OIDC_SCOPES", "").strip() or "openid email profile"
    OIDC_USE_PKCE = True
    OIDC_TIMEOUT = 10
    # The axes backend stays first: a locked-out address cannot sign in through the IdP either.
    AUTHENTICATION_BACKENDS.insert(1, "imports.oidc.PortalOIDCBackend")
    if PORTAL_OIDC_END_SESSION_ENDPOINT:
        # Log-out ends the IdP's session too (OpenID Connect RP-Initiated Logout), which needs the ID token.
        OIDC_STORE_ID_TOKEN = True
        OIDC_OP_LOGOUT_URL_METHOD = "imports.oidc.provider_logout_url"
    # Every PORTAL_OIDC_RECHECK_MINUTES the next page a person opens goes through the IdP again
    # without a prompt (SessionRefresh): someone disabled there, or moved to other groups, is out
    # or has the new roles within that time. The request page's own status polling is left out
    # (a redirect to the IdP would only fail in the background); the idle timeout still ends it.
    PORTAL_OIDC_RECHECK_MINUTES = env_int("PORTAL_OIDC_RECHECK_MINUTES", 15)
    OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS = PORTAL_OIDC_RECHECK_MINUTES * 60
    if PORTAL_OIDC_RECHECK_MINUTES:
        MIDDLEWARE.insert(
            MIDDLEWARE.index("imports.middleware.SessionLifetimeMiddleware") + 1,
            "mozilla_django_oidc.middleware.SessionRefresh",
        )

# The REST API under /api/v1/ (imports/api/): JSON only, a token in `Authorization: Bearer ...`
# on every call (no session, so no CSRF to forget), the caller's own permissions checked as the
# pages check them, errors in one JSON shape (imports.api.errors), and throttled per user (and per
# address before a token is known), counted in the cache: across all processes with
# PORTAL_CACHE_URL set, else in each process apart.
# https://www.django-rest-framework.org/api-guide/settings/
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["imports.api.auth.TokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": os.environ.get("PORTAL_API_ANON_RATE", "") or "30/minute",
        "user": os.environ.get("PORTAL_API_USER_RATE", "") or "600/hour",
    },
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "imports.api.errors.api_exception_handler",
}
# API tokens: 64 random hex digits after a "byol_" prefix (secret scanners can spot a leaked one),
# stored only as a SHA-512 digest; each has a name and an expiry its owner chose.
# https://jazzband.github.io/django-rest-knox/settings/
KNOX_TOKEN_MODEL = "api.ApiToken"  # noqa: S105 (a model, not a secret)
# knox's own migrations make a table for its AuthToken, which api.ApiToken replaces: an unused
# table whose foreign key to the users would block emptying them (TRUNCATE, as the tests'
# flush does on PostgreSQL). Its migrations are not run; its models are swapped out anyway.
MIGRATION_MODULES = {"knox": None}
REST_KNOX = {
    "AUTH_HEADER_PREFIX": "Bearer",
    "TOKEN_PREFIX": "byol_",
    "TOKEN_TTL": timedelta(days=90),
    "AUTO_REFRESH": False,
}
# https://drf-spectacular.readthedocs.io/en/latest/settings.html
SPECTACULAR_SETTINGS = {
    "TITLE": "WorkSpaces BYOL image import portal API",
    "DESCRIPTION": (
        "File WorkSpaces BYOL image import requests, follow them and, as an approver, decide them: the same "
        "rules, messages and audit history as the portal's pages. Authenticate with an API token from the "
        "portal's *API tokens* page: `Authorization: Bearer byol_...`."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"RequestState": "imports.models.RequestState"},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "imports.api.schema.closed_request_bodies",
    ],
    # Swagger UI from the portal's static files (drf-spectacular-sidecar): no CDN, and its
    # set-up script is a file of its own (SpectacularSwaggerSplitView), so the CSP stays strict.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("PORTAL_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# Email: the console backend in development; SMTP (or any backend) from the environment.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
# Where django.core.mail.backends.filebased.EmailBackend writes each message (the browser tests read them).
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "byol-portal@localhost")
PORTAL_BASE_URL = os.environ.get("PORTAL_BASE_URL", "http://127.0.0.1:8000").rstrip("/")

# Celery. Redis in production; the embedded default uses kombu's filesystem transport so that
# `make run` needs no server. https://docs.celeryq.dev/en/stable/userguide/configuration.html
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
# A task is acknowledged only when it ends, and one whose worker process dies is requeued;
# every task is safe to run twice (compare-and-set transitions, reconcile before import).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 120)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 180)
# Publishing fails fast: a broker that is down must not hold up an approval (the sweeper
# re-queues what was not published). The connection timeout is what bounds the wait; publish
# retries are off as well, so a broker that accepts connections but fails is not retried either.
CELERY_TASK_PUBLISH_RETRY = False
CELERY_BROKER_CONNECTION_TIMEOUT = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# The import's timings. https://docs.celeryq.dev/en/stable/userguide/configuration.html
# A worker renews its lease every third of PORTAL_IMPORT_LEASE_SECONDS while it works; when it
# dies, the next sweep after the lease ran out hands the import to another worker.
PORTAL_IMPORT_LEASE_SECONDS = env_int("PORTAL_IMPORT_LEASE_SECONDS", 30)
PORTAL_RETRY_BUDGET_SECONDS = env_int("PORTAL_RETRY_BUDGET_SECONDS", 6 * 3600)
PORTAL_RETRY_MAX_SECONDS = env_int("PORTAL_RETRY_MAX_SECONDS", 60)
PORTAL_LIMIT_RETRY_SECONDS = env_int("PORTAL_LIMIT_RETRY_SECONDS", 900)
PORTAL_BYOL_CACHE_SECONDS = env_int("PORTAL_BYOL_CACHE_SECONDS", 3600)
PORTAL_STALLED_AFTER_HOURS = env_int("PORTAL_STALLED_AFTER_HOURS", 8)
# A request undecided this long reminds the approvers who may decide it, and after the longer time
# is escalated to PORTAL_ESCALATION_GROUP (every approver when empty); once each per version.
PORTAL_REMIND_AFTER_HOURS = env_int("PORTAL_REMIND_AFTER_HOURS", 24)
PORTAL_ESCALATE_AFTER_HOURS = env_int("PORTAL_ESCALATE_AFTER_HOURS", 72)
PORTAL_ESCALATION_GROUP = os.environ.get("PORTAL_ESCALATION_GROUP", "")
PORTAL_OVERDUE_CHECK_SECONDS = env_int("PORTAL_OVERDUE_CHECK_SECONDS", 600)
PORTAL_UNCLAIMED_AFTER_SECONDS = env_int("PORTAL_UNCLAIMED_AFTER_SECONDS", 15)
PORTAL_RESEND_AFTER_SECONDS = env_int("PORTAL_RESEND_AFTER_SECONDS", 300)
PORTAL_POLL_SECONDS = env_int("PORTAL_POLL_SECONDS", 60)
PORTAL_POLL_PASS_SECONDS = env_int("PORTAL_POLL_PASS_SECONDS", min(60, CELERY_TASK_SOFT_TIME_LIMIT // 2))
PORTAL_SWEEP_SECONDS = env_int("PORTAL_SWEEP_SECONDS", 15)
PORTAL_AMI_CACHE_SECONDS = env_int("PORTAL_AMI_CACHE_SECONDS", 300)
# Where a target's endpoint URL may point (imports/endpoints.py): AWS's own hosts, and these
# (an exact host, or a domain starting with a dot), e.g. a VPC endpoint. Plain http, and the
# local AWS sandbox's hosts, only where allowed: in development by default.
PORTAL_ALLOW_HTTP_ENDPOINTS = env_bool("PORTAL_ALLOW_HTTP_ENDPOINTS", DEBUG)
PORTAL_ENDPOINT_HOSTS = env_list("PORTAL_ENDPOINT_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
# Webhooks (imports/webhooks.py): receivers' hosts must resolve to public addresses (private,
# loopback and link-local ones only where allowed: development, where receivers run locally);
# PORTAL_WEBHOOK_HOSTS, when set, is the only hosts (or .domains) they may name. Each attempt
# waits at most PORTAL_WEBHOOK_TIMEOUT_SECONDS; a delivery is retried with backoff (from
# PORTAL_WEBHOOK_RETRY_BASE_SECONDS up to PORTAL_WEBHOOK_RETRY_MAX_SECONDS between attempts, or
# as long as a 429 or 503 asks in Retry-After, up to the same maximum) for
# PORTAL_WEBHOOK_RETRY_HOURS, beat sending what is due every PORTAL_WEBHOOK_SWEEP_SECONDS.
PORTAL_WEBHOOK_HOSTS = env_list("PORTAL_WEBHOOK_HOSTS", "")
PORTAL_WEBHOOK_ALLOW_PRIVATE = env_bool("PORTAL_WEBHOOK_ALLOW_PRIVATE", DEBUG)
PORTAL_WEBHOOK_TIMEOUT_SECONDS = env_int("PORTAL_WEBHOOK_TIMEOUT_SECONDS", 5)
PORTAL_WEBHOOK_RETRY_BASE_SECONDS = env_int("PORTAL_WEBHOOK_RETRY_BASE_SECONDS", 30)
PORTAL_WEBHOOK_RETRY_MAX_SECONDS = env_int("PORTAL_WEBHOOK_RETRY_MAX_SECONDS", 1800)
PORTAL_WEBHOOK_RETRY_HOURS = env_int("PORTAL_WEBHOOK_RETRY_HOURS", 24)
PORTAL_WEBHOOK_SWEEP_SECONDS = env_int("PORTAL_WEBHOOK_SWEEP_SECONDS", 30)
# AWS documents 2 WorkSpaces API calls per second with bursts of 5, per account; the portal's
# own calls stay within it across all processes. https://docs.aws.amazon.com/workspaces/latest/api/welcome.html
PORTAL_WORKSPACES_CALLS_PER_SECOND = env_int("PORTAL_WORKSPACES_CALLS_PER_SECOND", 2)
PORTAL_WORKSPACES_BURST = env_int("PORTAL_WORKSPACES_BURST", 5)

# Redis and other virtual-ack transports redeliver a message not acknowledged within the
# visibility timeout. A scheduled retry waits unacknowledged in the worker, for as long as its
# turn at AWS's rate is away; a redelivered duplicate is harmless (it finds nothing to resume)
# but wasteful, and recovery never waits for redelivery (the sweeper resends lost work), so
# the timeout is long. https://docs.celeryq.dev/en/stable/getting-started/backends-and-brokers/redis.html#visibility-timeout
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 12 * 3600}
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's filesystem transport, with each message written whole before it is visible.
    CELERY_BROKER_TRANSPORT = "portal.filesystem_broker:Transport"
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS |= {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }

# The audit history's MAC key (imports/audit.py): it lives outside the database, so nobody who
# can only write to the database can re-seal an edited history. Rotation: make the new key
# PORTAL_AUDIT_KEY and add the old one to PORTAL_AUDIT_RETIRED_KEYS (comma-separated), which
# verification still needs for the events sealed with it.
PORTAL_AUDIT_KEY = env_secret("PORTAL_AUDIT_KEY")
if not PORTAL_AUDIT_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("PORTAL_AUDIT_KEY (or PORTAL_AUDIT_KEY_FILE) must be set when DJANGO_DEBUG is off.")
    PORTAL_AUDIT_KEY = "insecure-development-audit-key-only-for-debug-mode"
elif len(PORTAL_AUDIT_KEY) < 32:
    raise ImproperlyConfigured("PORTAL_AUDIT_KEY must be at least 32 characters (e.g. `openssl rand -hex 32`).")
PORTAL_AUDIT_RETIRED_KEYS = [key.strip() for key in env_secret("PORTAL_AUDIT_RETIRED_KEYS").split(",") if key.strip()]
# A database that kept an audit history before keys (an upgrade): how many of its first events
# were sealed without a key. verify_audit names the number when it meets them.
PORTAL_AUDIT_UNKEYED_EVENTS = env_int("PORTAL_AUDIT_UNKEYED_EVENTS", 0)
# Where the chain heads are anchored outside the database (imports/anchor.py): an S3 bucket
# created with Object Lock; every anchor is locked in compliance mode for the retention period.
# Empty bucket: no anchoring, and verify_audit warns that the newest events could be cut unseen.
PORTAL_AUDIT_ANCHOR_BUCKET = os.environ.get("PORTAL_AUDIT_ANCHOR_BUCKET", "")
PORTAL_AUDIT_ANCHOR_PREFIX = os.environ.get("PORTAL_AUDIT_ANCHOR_PREFIX", "audit-anchors/")
PORTAL_AUDIT_ANCHOR_REGION = os.environ.get("PORTAL_AUDIT_ANCHOR_REGION", os.environ.get("AWS_DEFAULT_REGION", ""))
PORTAL_AUDIT_ANCHOR_ENDPOINT_URL = os.environ.get("PORTAL_AUDIT_ANCHOR_ENDPOINT_URL", "")
PORTAL_AUDIT_ANCHOR_SECONDS = env_int("PORTAL_AUDIT_ANCHOR_SECONDS", 300)
PORTAL_AUDIT_ANCHOR_RETENTION_DAYS = env_int("PORTAL_AUDIT_ANCHOR_RETENTION_DAYS", 2557)
# Audit exports (imports/exports.py): a worker writes each CSV here, and the web process serves
# it from here, so both must see the same folder. Beat deletes exports older than the retention.
PORTAL_EXPORT_DIR = Path(os.environ.get("PORTAL_EXPORT_DIR", VAR_DIR / "exports"))
PORTAL_EXPORT_RETENTION_DAYS = env_int("PORTAL_EXPORT_RETENTION_DAYS", 7)
PORTAL_EXPORT_TIME_LIMIT = env_int("PORTAL_EXPORT_TIME_LIMIT", 1800)

# Beat sends these. A message that waited longer than its interval (workers were down) is
# dropped rather than run in a pile; a second beat process is harmless, as each job takes a
# lock (imports.locks) and runs at most once per half interval.
# https://docs.celeryq.dev/en/stable/userguide/periodic-tasks.html#available-fields
CELERY_BEAT_SCHEDULE = {
    "poll-importing-images": {
        "task": "imports.tasks.poll_importing_images",
        "schedule": PORTAL_POLL_SECONDS,
        "options": {"expires": PORTAL_POLL_SECONDS},
    },
    "sweep-lost-work": {
        "task": "imports.tasks.sweep_lost_work",
        "schedule": PORTAL_SWEEP_SECONDS,
        "options": {"expires": PORTAL_SWEEP_SECONDS},
    },
    "clean-audit-exports": {
        "task": "imports.tasks.clean_audit_exports",
        "schedule": 3600,
        "options": {"expires": 3600},
    },
    "remind-overdue-decisions": {
        "task": "imports.tasks.remind_overdue_decisions",
        "schedule": PORTAL_OVERDUE_CHECK_SECONDS,
        "options": {"expires": PORTAL_OVERDUE_CHECK_SECONDS},
    },
    "send-due-webhooks": {
        "task": "imports.tasks.send_due_webhooks",
        "schedule": PORTAL_WEBHOOK_SWEEP_SECONDS,
        "options": {"expires": PORTAL_WEBHOOK_SWEEP_SECONDS},
    },
}
if PORTAL_AUDIT_ANCHOR_BUCKET:
    CELERY_BEAT_SCHEDULE["anchor-audit-heads"] = {
        "task": "imports.tasks.anchor_audit_heads",
        "schedule": PORTAL_AUDIT_ANCHOR_SECONDS,
        "options": {"expires": PORTAL_AUDIT_ANCHOR_SECONDS},
    }
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# Security settings that `manage.py check --deploy` asks for; on whenever DEBUG is off.
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", not DEBUG)
# Only behind a proxy that always sets X-Forwarded-Proto; otherwise clients could spoof it.
# https://docs.djangoproject.com/en/5.2/ref/settings/#secure-proxy-ssl-header
if env_bool("DJANGO_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
# A strict Content-Security-Policy: the portal's pages load scripts and styles only from its own
# static files (no inline script or style) and may not be framed.
# https://django-csp.readthedocs.io/en/latest/configuration.html
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        # Bootstrap's CSS draws its form icons from data: URIs.
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
if PORTAL_OIDC_END_SESSION_ENDPOINT:
    # The log-out form's answer redirects to the IdP's end-session endpoint, and form-action
    # covers where a form's submission is redirected to.
    _end_session = urlsplit(PORTAL_OIDC_END_SESSION_ENDPOINT)
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["form-action"].append(f"{_end_session.scheme}://{_end_session.netloc}")
# No page of the portal needs the browser's powerful features.
# https://github.com/adamchainz/django-permissions-policy
PERMISSIONS_POLICY: dict[str, list[str]] = {
    feature: []
    for feature in (
        "accelerometer",
        "camera",
        "display-capture",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "payment",
        "usb",
    )
}
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("PORTAL_LOG_LEVEL", "INFO")},
}
