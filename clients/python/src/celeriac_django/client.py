"""A small synchronous client of the fleet's HTTP API over one urllib3 connection pool."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from typing import Any, Mapping, Sequence
from urllib.parse import quote

import urllib3

JSON = Any


class CeleriacError(Exception):
    """A call the fleet refused (non-2xx) or that never got an answer (``status`` is None).

    ``code``, ``message`` and ``field`` come from the API's ``{"error": {...}}`` body when it has one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        field: str | None = None,
        body: JSON = None,
        unsent: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.field = field
        self.body = body
        #: The request never reached the fleet (no connection could be made), so sending it again
        #: cannot count anything twice. A read timeout or a 5xx may come after the fleet acted.
        self.unsent = unsent

    @property
    def retryable(self) -> bool:
        """Network errors, 5xx, 408 and 429 may succeed later; other 4xx will not."""
        return self.status is None or self.status >= 500 or self.status in (408, 429)

    def __str__(self) -> str:
        where = f" (field {self.field})" if self.field else ""
        status = f"{self.status} " if self.status is not None else ""
        code = f"{self.code}: " if self.code else ""
        return f"{status}{code}{self.args[0]}{where}"


def _default(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: JSON) -> bytes:
    """Compact JSON (UUIDs and dates as strings)."""
    return json.dumps(value, default=_default, separators=(",", ":")).encode("utf-8")


class CeleriacClient:
    """The fleet's API: ``base_url`` like ``http://127.0.0.1:8000``, an optional bearer token and
    one timeout (seconds) for connecting and for reading. Connections are kept and reused.

    Every method raises :class:`CeleriacError` on a non-2xx answer or a network error.
    """

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 2.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._headers = headers
        self._pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=4,
            headers=headers,
            timeout=urllib3.Timeout(connect=self.timeout, read=self.timeout),
            retries=False,
        )

    def close(self) -> None:
        """Close the pooled connections."""
        self._pool.clear()

    def request(self, method: str, path: str, body: JSON = None) -> JSON:
        """Send ``body`` (JSON, or nothing when None) and return the decoded answer (None if empty)."""
        url = self.base_url + path
        data = None if body is None else dumps(body)
        try:
            response = self._pool.request(method, url, body=data, headers=self._headers)
        except urllib3.exceptions.HTTPError as e:
            reason = e.reason if isinstance(e, urllib3.exceptions.MaxRetryError) else e
            unsent = isinstance(
                reason,
                (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError),
            )
            raise CeleriacError(f"{method} {path}: {e}", unsent=unsent) from e
        raw = response.data
        payload: JSON = None
        if raw:
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = raw.decode("utf-8", "replace")
        if not 200 <= response.status < 300:
            err = payload.get("error") if isinstance(payload, dict) else None
            if isinstance(err, dict):
                raise CeleriacError(
                    str(err.get("message") or f"{method} {path} failed"),
                    status=response.status,
                    code=err.get("code"),
                    field=err.get("field"),
                    body=payload,
                )
            raise CeleriacError(
                f"{method} {path} failed", status=response.status, body=payload
            )
        return payload

    # Tracking.

    def track_pageviews(self, views: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """``POST /v1/track/pageviews`` (1 to 500 views): ``{"accepted", "refused", "results"}``,
        one result per view in input order."""
        reply = self.request("POST", "/v1/track/pageviews", list(views))
        return reply if isinstance(reply, dict) else {}

    def track_pageview(self, view: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v1/track/pageview``: one view; the ``tracked`` answer."""
        reply = self.request("POST", "/v1/track/pageview", dict(view))
        return reply if isinstance(reply, dict) else {}

    def login(
        self,
        user_id: uuid.UUID | str,
        session_id: str,
        *,
        username: str | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
        device_fingerprint: str | None = None,
        remember_me: bool = False,
    ) -> dict[str, Any]:
        """``POST /v1/sessions``: ``{"session_id", "expires_at"}``. ``session_id`` is the hashed id."""
        body: dict[str, Any] = {
            "user_id": str(user_id),
            "session_id": session_id,
            "remember_me": bool(remember_me),
        }
        for key, value in (
            ("username", username),
            ("ip", ip),
            ("user_agent", user_agent),
            ("device_fingerprint", device_fingerprint),
        ):
            if value is not None:
                body[key] = value
        reply = self.request("POST", "/v1/sessions", body)
        return reply if isinstance(reply, dict) else {}

    def logout(self, session_id: str) -> None:
        """``DELETE /v1/sessions/{session_id}`` (the hashed id)."""
        self.request("DELETE", "/v1/sessions/" + quote(session_id, safe=""))

    def conversion(self, user_id: uuid.UUID | str, fingerprint: str) -> dict[str, Any]:
        """``POST /v1/conversions``: enqueue link_anonymous_conversion; ``{"job_id"}``."""
        reply = self.request(
            "POST", "/v1/conversions", {"user_id": str(user_id), "fingerprint": fingerprint}
        )
        return reply if isinstance(reply, dict) else {}

    def event(
        self,
        user_id: uuid.UUID | str,
        event_type: str,
        *,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> dict[str, Any]:
        """``POST /v1/events``: a signed-in user's event; ``{"id"}``."""
        body: dict[str, Any] = {"user_id": str(user_id), "event_type": event_type}
        if description is not None:
            body["description"] = description
        if metadata is not None:
            body["metadata"] = dict(metadata)
        if ip is not None:
            body["ip"] = ip
        if user_agent is not None:
            body["user_agent"] = user_agent
        reply = self.request("POST", "/v1/events", body)
        return reply if isinstance(reply, dict) else {}

    def enqueue(self, job: str, args: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``POST /v1/jobs/{job}`` with ``args`` (may hold ``delay_seconds`` or ``run_at``);
        ``{"job_id"}``."""
        reply = self.request("POST", "/v1/jobs/" + quote(job, safe=""), dict(args or {}))
        return reply if isinstance(reply, dict) else {}

    def job(self, job: str, job_id: str) -> dict[str, Any]:
        """``GET /v1/jobs/{job}/{id}``: ``{id, name, status, attempts, last_error}``."""
        reply = self.request(
            "GET", f"/v1/jobs/{quote(job, safe='')}/{quote(job_id, safe='')}"
        )
        return reply if isinstance(reply, dict) else {}

    def community_visitors(self, community_id: uuid.UUID | str) -> dict[str, Any]:
        """``GET /v1/communities/{id}/visitors``: the seed's visitor stats."""
        reply = self.request("GET", f"/v1/communities/{quote(str(community_id), safe='')}/visitors")
        return reply if isinstance(reply, dict) else {}
