"""``TrackingMiddleware``: reports each tracked page view to the fleet without waiting for it.

Place it after ``SessionMiddleware`` and ``AuthenticationMiddleware``. It is sync-only (Django
adapts it under ASGI). Before the view runs it sets ``request.celeriac_fingerprint`` and
``request.celeriac_view_id`` (which ``{% celeriac_beacon %}`` renders); after the
response it builds the fleet's PageView and hands it to the background sender. Nothing it does
can fail a request: its errors are logged at DEBUG.

Tracked: GET and HEAD answered 2xx, on paths that match none of ``CELERIAC_IGNORE_PATHS``.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import datetime, timezone
from typing import Any, Callable

from django.core.exceptions import ObjectDoesNotExist
from django.http import HttpRequest, HttpResponseBase

from . import conf
from .fingerprint import client_ip, fast_fingerprint
from .sender import get_sender
from .session import session_hash

logger = logging.getLogger("celeriac_django")

MAX_URL = 2048
MAX_USER_AGENT = 1024

_ignore_cache: tuple[tuple[str, ...], list[re.Pattern[str]]] | None = None


def _ignore_patterns() -> list[re.Pattern[str]]:
    global _ignore_cache
    raw = tuple(conf.get("CELERIAC_IGNORE_PATHS") or ())
    cached = _ignore_cache
    if cached is not None and cached[0] == raw:
        return cached[1]
    compiled = [re.compile(p) for p in raw]
    _ignore_cache = (raw, compiled)
    return compiled


def rfc3339(at: datetime) -> str:
    """``at`` in UTC as RFC 3339 with microseconds and ``Z``."""
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _clean_url(value: str) -> str | None:
    """A path or absolute http(s) URL the fleet accepts (no whitespace, at most 2048), else None."""
    if not value or len(value) > MAX_URL or any(c.isspace() or ord(c) < 32 for c in value):
        return None
    if value.startswith("/") and not value.startswith("//"):
        return value
    if value.startswith(("http://", "https://")):
        return value
    return None


def default_page_type(request: HttpRequest) -> str:
    """The URL namespace, else the first path segment, else ``home``."""
    match = getattr(request, "resolver_match", None)
    if match is not None and match.namespace:
        return str(match.namespace)
    first = request.path.strip("/").split("/", 1)[0]
    return first or "home"


def default_community_id(request: HttpRequest) -> str | None:
    """``resolver_match.kwargs["community_id"]`` when it is a UUID."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return None
    value = match.kwargs.get("community_id")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            return None
    return None


def default_profile_id(user: Any) -> Any:
    """``user.profile.id``, or None when the user has no profile."""
    try:
        return user.profile.id
    except (ObjectDoesNotExist, AttributeError):
        return None


def profile_id(user: Any) -> str | None:
    """The user's profile UUID as text (``CELERIAC_PROFILE_ID_FUNCTION`` when set)."""
    fn = conf.callable_setting("CELERIAC_PROFILE_ID_FUNCTION") or default_profile_id
    value = fn(user)
    if value is None or value == "":
        return None
    return str(value)


def build_view(request: HttpRequest, at: datetime | None = None) -> dict[str, Any] | None:
    """The fleet's PageView for ``request`` (keys with no value left out), or None when the
    request cannot be described (e.g. a URL the fleet would refuse)."""
    fingerprint = getattr(request, "celeriac_fingerprint", None) or fast_fingerprint(request)
    url = _clean_url(request.get_full_path())
    if url is None:
        url = _clean_url(request.path)
        if url is None:
            return None
    meta = request.META
    page_type_fn: Callable[[HttpRequest], Any] = (
        conf.callable_setting("CELERIAC_PAGE_TYPE_FUNCTION") or default_page_type
    )
    community_fn: Callable[[HttpRequest], Any] = (
        conf.callable_setting("CELERIAC_COMMUNITY_ID_FUNCTION") or default_community_id
    )
    match = getattr(request, "resolver_match", None)
    user_agent = str(meta.get("HTTP_USER_AGENT", "")).replace("\x00", "")[:MAX_USER_AGENT]
    community = community_fn(request)
    view: dict[str, Any] = {
        "fingerprint": fingerprint,
        "url": url,
        "referrer": _clean_url(str(meta.get("HTTP_REFERER", ""))),
        "user_agent": user_agent,
        "ip": client_ip(request),
        "url_name": (match.url_name or "") if match is not None else "",
        "page_type": page_type_fn(request),
        "community_id": str(community) if community is not None else None,
        "timestamp": rfc3339(at or datetime.now(timezone.utc)),
    }
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False):
        session = getattr(request, "session", None)
        key = getattr(session, "session_key", None) if session is not None else None
        uid = profile_id(user)
        # A user without a profile, or without a saved session, is tracked as anonymous.
        if uid is not None and key:
            view["user_id"] = uid
            view["session_id"] = session_hash(key)
    if "user_id" not in view:
        view["view_id"] = getattr(request, "celeriac_view_id", None)
    return {k: v for k, v in view.items() if v is not None}


class TrackingMiddleware:
    """See the module documentation."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        started = datetime.now(timezone.utc)
        try:
            request.celeriac_fingerprint = fast_fingerprint(request)  # type: ignore[attr-defined]
        except Exception:
            logger.debug("celeriac: fingerprinting failed", exc_info=True)
        # The id the page's beacon names ({% celeriac_beacon %}); sent with the view.
        request.celeriac_view_id = str(uuid.uuid4())  # type: ignore[attr-defined]
        response = self.get_response(request)
        try:
            self.track(request, response, started)
        except Exception:
            logger.debug("celeriac: tracking failed", exc_info=True)
        try:
            pending = getattr(request, "celeriac_pending_login", None)
            if pending is not None:
                from .signals import send_login

                send_login(request, *pending)
        except Exception:
            logger.debug("celeriac: reporting a login failed", exc_info=True)
        return response

    def track(self, request: HttpRequest, response: HttpResponseBase, at: datetime) -> None:
        """Queue the view of ``request`` when it is one to track."""
        if not conf.get("CELERIAC_ENABLED"):
            return
        if request.method not in ("GET", "HEAD"):
            return
        if not 200 <= response.status_code < 300:
            return
        path = request.path
        if any(p.search(path) for p in _ignore_patterns()):
            return
        view = build_view(request, at)
        if view is not None:
            get_sender().put(view)

