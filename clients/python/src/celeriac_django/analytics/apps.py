"""The ``analytics`` app."""

from __future__ import annotations

from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    """Unmanaged models of the fleet's ``analytics_*`` tables."""

    name = "celeriac_django.analytics"
    label = "analytics"
    verbose_name = "Celeriac analytics"
    default_auto_field = "django.db.models.BigAutoField"
