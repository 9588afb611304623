"""Celeriac for Django: page-view tracking, auth signals and read-only analytics models.

Nothing here touches Django's app registry at import time; the helpers below import what they
need when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .client import CeleriacClient, CeleriacError
from .session import session_hash

if TYPE_CHECKING:
    from django.http import HttpRequest

    from .sender import Sender

__all__ = [
    "CeleriacClient",
    "CeleriacError",
    "fast_fingerprint",
    "get_sender",
    "session_hash",
    "track_signup",
]

__version__ = "0.1.0"


def track_signup(request: HttpRequest, user: Any) -> None:
    """Tell the fleet a visitor signed up (``POST /v1/conversions``), after the transaction commits."""
    from .signals import track_signup as _track_signup

    _track_signup(request, user)


def get_sender() -> Sender:
    """The process-wide background sender."""
    from .sender import get_sender as _get_sender

    return _get_sender()


def fast_fingerprint(request: HttpRequest) -> str:
    """The request's device fingerprint (see :mod:`celeriac_django.fingerprint`)."""
    from .fingerprint import fast_fingerprint as _fast_fingerprint

    return _fast_fingerprint(request)
