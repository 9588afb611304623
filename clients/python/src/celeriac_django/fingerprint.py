"""The request's device fingerprint and client address.

:func:`fast_fingerprint` stands in for the seed's ``OptimizedDeviceFingerprint.get_fast_fingerprint()``:
the first 32 characters of the hex SHA-256 of the user agent, ``Accept-Language``,
``Accept-Encoding`` and the client IP. ``CELERIAC_FINGERPRINT_FUNCTION`` (a dotted path to a
function taking the request and returning a string) replaces it.
"""

from __future__ import annotations

import hashlib
import ipaddress

from django.http import HttpRequest

from . import conf


def client_ip(request: HttpRequest) -> str | None:
    """``REMOTE_ADDR``, or the first ``X-Forwarded-For`` entry when
    ``CELERIAC_TRUST_X_FORWARDED_FOR`` is True; None unless it is an IP address."""
    candidate = ""
    if conf.get("CELERIAC_TRUST_X_FORWARDED_FOR"):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            candidate = forwarded.split(",")[0].strip()
    if not candidate:
        candidate = str(request.META.get("REMOTE_ADDR") or "")
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def default_fingerprint(request: HttpRequest) -> str:
    """SHA-256 (hex, first 32 characters) of user agent, Accept-Language, Accept-Encoding, IP."""
    meta = request.META
    parts = (
        str(meta.get("HTTP_USER_AGENT", "")),
        str(meta.get("HTTP_ACCEPT_LANGUAGE", "")),
        str(meta.get("HTTP_ACCEPT_ENCODING", "")),
        client_ip(request) or "",
    )
    return hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()[:32]


def fast_fingerprint(request: HttpRequest) -> str:
    """The fingerprint of ``request`` (``CELERIAC_FINGERPRINT_FUNCTION`` when set)."""
    custom = conf.callable_setting("CELERIAC_FINGERPRINT_FUNCTION")
    if custom is not None:
        return str(custom(request))
    return default_fingerprint(request)


def request_fingerprint(request: HttpRequest) -> str:
    """The fingerprint the middleware put on the request, or a fresh one."""
    fp = getattr(request, "celeriac_fingerprint", None)
    if isinstance(fp, str) and fp:
        return fp
    return fast_fingerprint(request)
