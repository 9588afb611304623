"""Settings, read lazily from ``django.conf.settings`` with their defaults.

A setting the Django settings do not define is read from the environment variable of the same
name when that is set (``CELERIAC_URL=http://...``; ``1``/``true``/``yes`` for booleans; numbers
as numbers; a comma-separated list for ``CELERIAC_IGNORE_PATHS``), so a deployment can configure
the package without editing settings. Every value is read on each access, so ``override_settings`` in tests works; the sender reads
its sizes once, when it is created (:func:`celeriac_django.sender.reset_sender` makes a new one).
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable

from django.conf import settings as django_settings
from django.utils.module_loading import import_string

DEFAULTS: dict[str, Any] = {
    "CELERIAC_URL": "http://127.0.0.1:8000",
    "CELERIAC_TOKEN": None,
    "CELERIAC_PUBLIC_URL": None,
    "CELERIAC_TIMEOUT": 2.0,
    "CELERIAC_ENABLED": True,
    "CELERIAC_BUFFER_SIZE": 10000,
    "CELERIAC_CALL_BUFFER_SIZE": 1000,
    "CELERIAC_BATCH_SIZE": 200,
    "CELERIAC_FLUSH_INTERVAL": 0.5,
    "CELERIAC_MAX_RETRIES": 3,
    "CELERIAC_RETRY_BACKOFF": 0.5,
    "CELERIAC_EXIT_FLUSH_TIMEOUT": 2.0,
    "CELERIAC_IGNORE_PATHS": (
        r"^/static/",
        r"^/media/",
        r"^/admin/",
        r"^/favicon\.ico$",
    ),
    "CELERIAC_FINGERPRINT_FUNCTION": None,
    "CELERIAC_FINGERPRINT_HEADER": None,
    "CELERIAC_TRUST_X_FORWARDED_FOR": False,
    "CELERIAC_PAGE_TYPE_FUNCTION": None,
    "CELERIAC_COMMUNITY_ID_FUNCTION": None,
    "CELERIAC_PROFILE_ID_FUNCTION": None,
    "CELERIAC_PROFILE_MODEL": "accounts.UserProfile",
    "CELERIAC_TRACK_AUTH": True,
    "CELERIAC_REMEMBER_ME_FUNCTION": None,
    "CELERIAC_SIGNUP_SIGNAL": None,
}


def _from_env(name: str, default: Any) -> Any:
    raw = os.environ.get(name)
    if raw is None:
        return default
    if isinstance(default, bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, tuple):
        return tuple(p.strip() for p in raw.split(",") if p.strip())
    return raw or None


def get(name: str) -> Any:
    """The setting ``name``: Django's, else its environment variable, else its default."""
    if hasattr(django_settings, name):
        return getattr(django_settings, name)
    return _from_env(name, DEFAULTS[name])


@functools.lru_cache(maxsize=64)
def _import(path: str) -> Any:
    return import_string(path)


def callable_setting(name: str) -> Callable[..., Any] | None:
    """The callable a setting names: a dotted path (imported once) or a callable itself."""
    value = get(name)
    if value is None or value == "":
        return None
    if callable(value):
        return value  # type: ignore[no-any-return]
    return _import(str(value))  # type: ignore[no-any-return]


def profile_model() -> str:
    """``CELERIAC_PROFILE_MODEL``: the ``app_label.ModelName`` of the user profile."""
    return str(get("CELERIAC_PROFILE_MODEL"))
