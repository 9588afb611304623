"""The seed's accounts models (and its Community), as the Django site defines them.

The fleet writes ``accounts_usersession`` (login, page views, logout) and ``accounts_userevent``
(page_view, community_visit, account_created) and reads ``accounts_userprofile`` and
``communities_community``; column names and types match its entities (entity/src/*.rs).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class UserProfile(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, related_name="profile", on_delete=models.CASCADE
    )
    division_id = models.UUIDField(null=True, blank=True)
    bio = models.TextField(default="", blank=True)
    date_joined = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"profile of {self.user}"


class Community(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    division_id = models.UUIDField(null=True, blank=True)

    class Meta:
        db_table = "communities_community"
        verbose_name_plural = "communities"

    def __str__(self) -> str:
        return self.name


class UserSession(models.Model):
    """A signed-in session; ``session_id`` is the hashed id (hex SHA-256 of the session key)."""

    user = models.ForeignKey(UserProfile, on_delete=models.CASCADE, related_name="sessions")
    session_id = models.CharField(max_length=64, unique=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.TextField(blank=True, default="")
    device_info = models.JSONField(default=dict)
    location_data = models.JSONField(default=dict)
    device_fingerprint = models.CharField(max_length=128, blank=True, default="", db_index=True)
    fast_fingerprint = models.CharField(max_length=128, blank=True, default="")
    persistent = models.BooleanField(default=False)
    pages_visited = models.IntegerField(default=0)
    started_at = models.DateTimeField(default=timezone.now)
    last_activity = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()
    is_active = models.BooleanField(default=True)
    # The fleet's INSERT does not name this column: the database default covers it, and the fleet
    # keeps it in step with ended_at.
    is_ended = models.BooleanField(default=False, db_default=False)

    def mark_ended(self) -> None:
        """The seed's logout: ended now, no longer active."""
        self.ended_at = timezone.now()
        self.is_active = False
        self.is_ended = True
        self.save(update_fields=["ended_at", "is_active", "is_ended"])

    def __str__(self) -> str:
        return f"session {self.session_id[:12]}… of {self.user_id}"


class UserEvent(models.Model):
    user = models.ForeignKey(UserProfile, on_delete=models.CASCADE, related_name="events")
    event_type = models.CharField(max_length=50, db_index=True)
    description = models.TextField(blank=True, default="")
    metadata = models.JSONField(default=dict)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(db_index=True, default=timezone.now)

    def __str__(self) -> str:
        return f"{self.event_type} by {self.user_id}"

