"""Settings of the Celeriac test site (tests/django): a small Django site with the seed's
accounts models, the celeriac-django middleware and signals, and the fleet's analytics models.

Environment: DATABASE_URL (``postgres://user:password@host:port/dbname``), CELERIAC_URL,
CELERIAC_TOKEN.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent


def database_from_url(url: str) -> dict[str, object]:
    """Django's DATABASES entry for a ``postgres://`` (or ``postgresql://``) URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"DATABASE_URL must be a postgres:// URL, not {parts.scheme}://")
    options = dict(parse_qsl(parts.query))
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")) or "postgres",
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "OPTIONS": options,
        "CONN_MAX_AGE": 0,
    }


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "celeriac-test-site-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "accounts",
    "celeriac_django",
    "celeriac_django.analytics",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "celeriac_django.middleware.TrackingMiddleware",
]

ROOT_URLCONF = "site_project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": database_from_url(
        os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/celeriac_django")
    )
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # a test site: fast

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Celeriac.
CELERIAC_URL = os.environ.get("CELERIAC_URL", "http://127.0.0.1:8000")
CELERIAC_TOKEN = os.environ.get("CELERIAC_TOKEN") or None
CELERIAC_TIMEOUT = 5.0
CELERIAC_FLUSH_INTERVAL = 0.1
CELERIAC_PROFILE_MODEL = "accounts.UserProfile"
CELERIAC_SIGNUP_SIGNAL = "accounts.signals.user_signed_up"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "celeriac_django": {
            "handlers": ["console"],
            "level": os.environ.get("CELERIAC_LOG_LEVEL", "WARNING"),
        }
    },
}
