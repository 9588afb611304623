"""``{% load celeriac %}{% celeriac_beacon %}``: the fleet's beacon snippet for this page's view
(see :mod:`celeriac_django.beacon`). Put it once in the base template, before ``</body>``."""

from __future__ import annotations

from typing import Any

from django import template

from ..beacon import beacon_tag

register = template.Library()


@register.simple_tag(takes_context=True)
def celeriac_beacon(context: dict[str, Any]) -> str:
    request = context.get("request")
    return beacon_tag(request) if request is not None else ""
