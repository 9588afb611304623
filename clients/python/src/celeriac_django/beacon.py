"""The page's beacon: scroll depth and time on page of an anonymous view.

The middleware gives each tracked request a random view id (``request.celeriac_view_id``) and
sends it with the view. ``{% celeriac_beacon %}`` (``{% load celeriac %}``) renders the fleet's
snippet with a *view token*: the id and a signature made with ``CELERIAC_TOKEN``, so the fleet's
public ``POST /v1/beacon`` takes reports only for views this site rendered. The browser talks to
the fleet directly: ``CELERIAC_PUBLIC_URL`` is the fleet's address as browsers reach it
(``CELERIAC_URL`` when unset).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from django.utils.html import format_html

from . import conf

SIGNATURE_HEX = 32


def view_token(view_id: str, token: str | None) -> str:
    """``{view_id}.{signature}``: the first 32 hex digits of HMAC-SHA-256 over
    ``beacon:{view_id}`` keyed with the API token (the fleet's rule); the id alone without one."""
    if not token:
        return view_id
    mac = hmac.new(token.encode("utf-8"), f"beacon:{view_id}".encode("utf-8"), hashlib.sha256)
    return f"{view_id}.{mac.hexdigest()[:SIGNATURE_HEX]}"


def beacon_tag(request: Any) -> str:
    """The ``<script>`` tag for ``request``'s view, or ``""`` when the view has no id (not
    tracked) or is a signed-in user's (the fleet keeps scroll depth for anonymous views)."""
    view_id = getattr(request, "celeriac_view_id", None)
    if not view_id or not conf.get("CELERIAC_ENABLED"):
        return ""
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False):
        return ""
    base = str(conf.get("CELERIAC_PUBLIC_URL") or conf.get("CELERIAC_URL")).rstrip("/")
    return format_html(
        '<script src="{}/v1/beacon.js" data-view="{}" defer></script>',
        base,
        view_token(str(view_id), conf.get("CELERIAC_TOKEN") or None),
    )
