"""The ``celeriac`` app: connects the auth signals."""

from __future__ import annotations

from django.apps import AppConfig


class CeleriacConfig(AppConfig):
    """Add ``"celeriac_django"`` to ``INSTALLED_APPS``."""

    name = "celeriac_django"
    label = "celeriac"
    verbose_name = "Celeriac"

    def ready(self) -> None:
        from . import signals

        signals.connect()
