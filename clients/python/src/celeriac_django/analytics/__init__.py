"""Read-only (``managed = False``) models of the tables the Celeriac fleet owns.

Add ``"celeriac_django.analytics"`` to ``INSTALLED_APPS`` (label ``analytics``) and query them as
the seed's code did: ``from celeriac_django.analytics.models import AnonymousSession``.
The fleet's ``migration up`` creates the tables; Django only records its migration.
"""
