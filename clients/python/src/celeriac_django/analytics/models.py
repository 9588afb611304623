"""Unmanaged models of the fleet's tables (see the fleet's ``migration/src`` for the DDL).

The fleet writes these rows; Django reads them. ``managed = False``: Django never creates,
alters or drops the tables, and its migration only records the models.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

PROFILE_MODEL: str = getattr(settings, "CELERIAC_PROFILE_MODEL", "accounts.UserProfile")


class AnonymousSession(models.Model):
    """``analytics_anonymoussession``: an anonymous visitor's session (kept 90 days)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    device_fingerprint = models.CharField(max_length=128, db_index=True)
    session_start = models.DateTimeField(db_index=True)
    session_end = models.DateTimeField(null=True, blank=True)
    last_activity = models.DateTimeField()
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.TextField(blank=True, default="")
    device_type = models.CharField(max_length=64, blank=True, default="")
    browser = models.CharField(max_length=64, blank=True, default="")
    os = models.CharField(max_length=64, blank=True, default="")
    pages_visited = models.IntegerField(default=0)
    duration_seconds = models.IntegerField(null=True, blank=True)
    landing_page = models.TextField(blank=True, default="")
    referrer = models.TextField(blank=True, default="")
    converted_to_user = models.ForeignKey(
        PROFILE_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,  # the database sets it NULL
        db_constraint=False,
        related_name="+",
    )
    converted_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    is_bot = models.BooleanField(default=False)
    #: City, region and country (``{"city", "region", "region_code", "country",
    #: "country_code"}``) when the fleet has a GeoIP database; ``{}`` otherwise.
    location_data = models.JSONField(default=dict, blank=True)

    class Meta:
        managed = False
        db_table = "analytics_anonymoussession"
        ordering = ("-session_start",)

    def __str__(self) -> str:
        return f"anonymous session {self.id} ({self.pages_visited} pages)"


class AnonymousPageView(models.Model):
    """``analytics_anonymouspageview``: a page seen in an anonymous session."""

    id = models.BigAutoField(primary_key=True)
    session = models.ForeignKey(
        AnonymousSession,
        on_delete=models.DO_NOTHING,  # the database cascades
        db_constraint=False,
        related_name="page_views",
    )
    url = models.TextField()
    url_name = models.CharField(max_length=200, blank=True, default="")
    page_type = models.CharField(max_length=50, blank=True, default="")
    viewed_at = models.DateTimeField(db_index=True)
    time_on_page_seconds = models.IntegerField(null=True, blank=True)
    referrer = models.TextField(blank=True, default="")
    view_number = models.IntegerField(null=True, blank=True)
    #: How far down the page the visitor scrolled (0-100), from the page's beacon.
    scroll_depth_percent = models.SmallIntegerField(null=True, blank=True)

    class Meta:
        managed = False
        db_table = "analytics_anonymouspageview"
        ordering = ("session", "view_number")

    def __str__(self) -> str:
        return f"{self.url} at {self.viewed_at}"


class PageAnalytics(models.Model):
    """``analytics_pageanalytics``: one day's numbers for one path (``(date, url_path)`` unique)."""

    id = models.BigAutoField(primary_key=True)
    date = models.DateField()
    url_path = models.TextField()
    page_type = models.CharField(max_length=50, blank=True, default="")
    total_views = models.BigIntegerField(default=0)
    anonymous_views = models.BigIntegerField(default=0)
    authenticated_views = models.BigIntegerField(default=0)
    unique_visitors = models.BigIntegerField(default=0)

    class Meta:
        managed = False
        db_table = "analytics_pageanalytics"
        verbose_name_plural = "page analytics"
        constraints = [
            models.UniqueConstraint(
                fields=["date", "url_path"], name="analytics_pageanalytics_date_url_path_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.date} {self.url_path}: {self.total_views}"


class PageViewLog(models.Model):
    """``analytics_pageviewlog``: page views imported from elsewhere; the fleet reads it for a day
    with no live counters and never writes it."""

    id = models.BigAutoField(primary_key=True)
    viewed_at = models.DateTimeField(db_index=True)
    url_path = models.TextField()
    page_type = models.CharField(max_length=50, blank=True, default="")
    visitor_key = models.CharField(max_length=255)
    is_authenticated = models.BooleanField(default=False)
    is_bot = models.BooleanField(default=False)

    class Meta:
        managed = False
        db_table = "analytics_pageviewlog"

    def __str__(self) -> str:
        return f"{self.viewed_at} {self.url_path}"
