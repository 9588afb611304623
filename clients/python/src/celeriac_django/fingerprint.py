"""The request's device fingerprint and client address.

:func:`fast_fingerprint` stands in for the seed's ``OptimizedDeviceFingerprint.get_fast_fingerprint()``:
the first 32 characters of the hex SHA-256 of the user agent, ``Accept-Language``,
``Accept-Encoding`` and the client IP. ``CELERIAC_FINGERPRINT_HEADER`` names a request header
that carries a fingerprint the page computed itself (e.g. ``X-Fingerprint`` from a browser
fingerprinting script); when the request has it, with 1 to 128 characters of ``A-Z a-z 0-9 -_.~+/=``
(what the fleet accepts), it is used as is. ``CELERIAC_FINGERPRINT_FUNCTION`` (a dotted path to a
function taking the request and returning a string) replaces both.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re

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


_SENT = re.compile(r"[A-Za-z0-9\-_.~+/=]{1,128}")


def fast_fingerprint(request: HttpRequest) -> str:
    """The fingerprint of ``request`` (``CELERIAC_FINGERPRINT_FUNCTION`` when set; the header
    ``CELERIAC_FINGERPRINT_HEADER`` names when the request has a valid one)."""
    custom = conf.callable_setting("CELERIAC_FINGERPRINT_FUNCTION")
    if custom is not None:
        return str(custom(request))
    header = conf.get("CELERIAC_FINGERPRINT_HEADER")
    if header:
        sent = request.headers.get(str(header), "")
        if _SENT.fullmatch(sent):
            return sent
    return default_fingerprint(request)


def request_fingerprint(request: HttpRequest) -> str:
    """The fingerprint the middleware put on the request, or a fresh one."""
    fp = getattr(request, "celeriac_fingerprint", None)
    if isinstance(fp, str) and fp:
        return fp
    return fast_fingerprint(request)
