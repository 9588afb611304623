"""Login, logout and sign-up, reported to the fleet through the background sender.

- ``user_logged_in`` → ``POST /v1/sessions`` (after the transaction commits) with the session's
  hashed id, the profile's UUID, username, IP, user agent, fingerprint and remember-me.
- ``user_logged_out`` → ``DELETE /v1/sessions/{hashed_id}``.
- :func:`track_signup` (and the signal named by ``CELERIAC_SIGNUP_SIGNAL``, which must send
  ``request`` and ``user``) → ``POST /v1/conversions`` after the transaction commits.

Connected by :class:`celeriac_django.apps.CeleriacConfig` when ``CELERIAC_TRACK_AUTH`` is True.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.http import HttpRequest

from . import conf
from .fingerprint import client_ip, request_fingerprint
from .middleware import MAX_USER_AGENT, profile_id
from .sender import get_sender
from .session import session_hash

logger = logging.getLogger("celeriac_django")

DAY_SECONDS = 86400


def remember_me(request: HttpRequest, user: Any) -> bool:
    """``CELERIAC_REMEMBER_ME_FUNCTION(request, user)`` when set; else whether the session
    outlives the browser and lasts more than a day."""
    custom = conf.callable_setting("CELERIAC_REMEMBER_ME_FUNCTION")
    if custom is not None:
        return bool(custom(request, user))
    session = request.session
    return (not session.get_expire_at_browser_close()) and session.get_expiry_age() > DAY_SECONDS


def _session_key(request: HttpRequest) -> str | None:
    session = getattr(request, "session", None)
    if session is None:
        return None
    if not session.session_key:
        session.save()
    return session.session_key or None


def on_login(sender: Any, request: HttpRequest | None = None, user: Any = None, **kwargs: Any) -> None:
    """``user_logged_in`` receiver."""
    try:
        if request is None or user is None or not conf.get("CELERIAC_ENABLED"):
            return
        uid = profile_id(user)
        key = _session_key(request)
        if uid is None or key is None:
            logger.debug("celeriac: login not reported (no profile or no session key)")
            return
        body: dict[str, Any] = {
            "user_id": uid,
            "session_id": session_hash(key),
            "username": user.get_username() or None,
            "ip": client_ip(request),
            "user_agent": str(request.META.get("HTTP_USER_AGENT", "")).replace("\x00", "")[
                :MAX_USER_AGENT
            ],
            "device_fingerprint": request_fingerprint(request),
        }
        if getattr(request, "celeriac_fingerprint", None) is not None:
            # The middleware runs: it sends the login once the response is made, when the view
            # has set the session's expiry (many set it after `login()`) and committed.
            request.celeriac_pending_login = (user, body)  # type: ignore[attr-defined]
            return
        transaction.on_commit(_quietly(lambda: send_login(request, user, body), "a login"))
    except Exception:
        logger.debug("celeriac: reporting a login failed", exc_info=True)


def send_login(request: HttpRequest, user: Any, body: dict[str, Any]) -> None:
    """Queue the login ``body`` with remember-me as the session's expiry says now."""
    get_sender().call("login", **body, remember_me=remember_me(request, user))


def _quietly(fn: Any, what: str) -> Any:
    """``fn`` for ``transaction.on_commit``: it runs after the commit, outside any ``try`` of
    ours, so an error there would reach the view; it is logged instead."""

    def run() -> None:
        try:
            fn()
        except Exception:
            logger.debug("celeriac: reporting %s failed", what, exc_info=True)

    return run


def on_logout(sender: Any, request: HttpRequest | None = None, user: Any = None, **kwargs: Any) -> None:
    """``user_logged_out`` receiver (sent before Django flushes the session)."""
    try:
        if request is None or user is None or not conf.get("CELERIAC_ENABLED"):
            return
        session = getattr(request, "session", None)
        key = getattr(session, "session_key", None) if session is not None else None
        if not key:
            return
        get_sender().call("logout", session_id=session_hash(key))
    except Exception:
        logger.debug("celeriac: reporting a logout failed", exc_info=True)


def track_signup(request: HttpRequest, user: Any) -> None:
    """Report a sign-up: ``POST /v1/conversions {user_id, fingerprint}`` with the request's
    fingerprint, sent after the current transaction commits (at once outside one)."""
    try:
        if not conf.get("CELERIAC_ENABLED"):
            return
        uid = profile_id(user)
        if uid is None:
            logger.debug("celeriac: sign-up not reported (the user has no profile)")
            return
        fingerprint = request_fingerprint(request)
        transaction.on_commit(
            _quietly(
                lambda: get_sender().call("conversion", user_id=uid, fingerprint=fingerprint),
                "a sign-up",
            )
        )
    except Exception:
        logger.debug("celeriac: reporting a sign-up failed", exc_info=True)


def on_signup(sender: Any, request: HttpRequest | None = None, user: Any = None, **kwargs: Any) -> None:
    """Receiver for the signal named by ``CELERIAC_SIGNUP_SIGNAL``."""
    if request is None or user is None:
        logger.debug("celeriac: the sign-up signal sent no request or no user")
        return
    track_signup(request, user)


def connect() -> None:
    """Connect the receivers the settings ask for (idempotent)."""
    if not conf.get("CELERIAC_TRACK_AUTH"):
        return
    from django.contrib.auth.signals import user_logged_in, user_logged_out

    user_logged_in.connect(on_login, dispatch_uid="celeriac_django.login")
    user_logged_out.connect(on_logout, dispatch_uid="celeriac_django.logout")
    path = conf.get("CELERIAC_SIGNUP_SIGNAL")
    if path:
        from django.utils.module_loading import import_string

        signal = import_string(path) if isinstance(path, str) else path
        signal.connect(on_signup, dispatch_uid="celeriac_django.signup")
