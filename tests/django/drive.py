#!/usr/bin/env python
"""Drive the test site against a running Celeriac fleet and check what the fleet wrote.

Run as ``python drive.py`` from this directory (or anywhere: it puts its own directory on the
path) with DATABASE_URL, CELERIAC_URL, CELERIAC_TOKEN (may be empty) and DJANGO_SETTINGS_MODULE
(``site_project.settings``) set, after ``manage.py migrate``, the fleet's ``migration up``, and
with the fleet's api and worker running on that database and one Redis.

What it does, with django.test.Client (no test runner: the real database):

- visitor A (its own user agent): six anonymous pages (the 5th makes the fleet persist the
  session), among them the community page, then signs up (a conversion), browses signed in
  (3 pages, the community page among them), logs out, logs in again without remember-me,
  browses 2 pages and logs out;
- visitor B (another user agent): five anonymous pages, the community page among them (its /about/
  page sends the beacon a browser would), and never
  signs up.

Then it flushes the sender, asks the fleet for the community's live visitors (the seed's use
case 1), enqueues aggregate_page_analytics, waits (60 s at most) for the fleet's work to reach the
database, and runs the seed's use cases 2, 3 and 4 with the ORM, checking exact numbers.
Every run uses fresh visitors and a fresh community, so runs can repeat on one Redis; page
counts of the shared paths (/, /about/, ...) are checked as the change since a baseline taken
at the start.

Prints one line of JSON on success (exit 0); on failure, a message on stderr and exit 1 (2 when
the environment is not set up).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
POLL_TIMEOUT = 60.0


class DriveError(Exception):
    """A check that failed."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise DriveError(message)


def setup() -> None:
    missing = [v for v in ("DATABASE_URL", "CELERIAC_URL", "DJANGO_SETTINGS_MODULE") if not os.environ.get(v)]
    if missing:
        print(f"drive.py: set {', '.join(missing)} (see the module docstring)", file=sys.stderr)
        sys.exit(2)
    sys.path.insert(0, str(HERE))
    import django

    django.setup()


def main() -> int:
    setup()
    from django.contrib.auth.models import User
    from django.db.models import Avg, F, Sum
    from django.test import Client
    from django.utils import timezone

    from accounts.models import Community, UserEvent, UserProfile, UserSession
    from celeriac_django import CeleriacClient, CeleriacError, get_sender, session_hash
    from celeriac_django.analytics.models import (
        AnonymousPageView,
        AnonymousSession,
        PageAnalytics,
    )

    started = time.monotonic()
    run = uuid.uuid4().hex[:10]
    api = CeleriacClient(
        os.environ["CELERIAC_URL"], token=os.environ.get("CELERIAC_TOKEN") or None, timeout=10.0
    )
    today = timezone.now().date()

    def wait_job(name: str, job_id: str, timeout: float = POLL_TIMEOUT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = api.job(name, job_id)
            if job.get("status") == "done":
                return job
            if job.get("status") == "dead":
                raise DriveError(f"job {name} {job_id} died: {job.get('last_error')}")
            if time.monotonic() > deadline:
                raise DriveError(f"job {name} {job_id} not done after {timeout:.0f} s: {job}")
            time.sleep(0.2)

    def page_rows(day: date) -> dict[str, dict[str, Any]]:
        return {
            r["url_path"]: r
            for r in PageAnalytics.objects.filter(date=day).values(
                "url_path", "page_type", "total_views", "anonymous_views",
                "authenticated_views", "unique_visitors",
            )
        }

    # Baseline of today's page analytics (Redis may hold earlier runs' views).
    try:
        job = api.enqueue("aggregate_page_analytics", {"date": today.isoformat()})
    except CeleriacError as e:
        raise DriveError(f"the fleet at {os.environ['CELERIAC_URL']} is not answering: {e}") from e
    wait_job("aggregate_page_analytics", job["job_id"])
    baseline = page_rows(today)

    community = Community.objects.create(
        slug=f"montreal-{run}", name="Montreal", division_id=uuid.uuid4()
    )
    cpath = f"/communities/{community.id}/"
    ua_a = f"Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0 drive/{run}a"
    ua_b = (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/126.0.0.0 Safari/537.36 drive/{run}b"
    )
    a = Client(HTTP_USER_AGENT=ua_a, REMOTE_ADDR="203.0.113.45", HTTP_ACCEPT_LANGUAGE="fr-CA")
    b = Client(HTTP_USER_AGENT=ua_b, REMOTE_ADDR="198.51.100.7", HTTP_ACCEPT_LANGUAGE="en-US")
    fingerprints: dict[str, str] = {}

    def get(client: Client, who: str, path: str, referrer: str | None = None) -> str:
        extra = {"HTTP_REFERER": referrer} if referrer else {}
        r = client.get(path, **extra)
        check(r.status_code == 200, f"GET {path} answered {r.status_code}")
        fp = getattr(r.wsgi_request, "celeriac_fingerprint", None)
        check(isinstance(fp, str) and len(fp) == 32, f"GET {path}: no request.celeriac_fingerprint")
        check(fingerprints.setdefault(who, fp) == fp, f"visitor {who}'s fingerprint changed")
        return r.content.decode()

    def send_beacon(html: str, scroll: int, seconds: int) -> None:
        """What the page's snippet sends when it is left: a text/plain POST, no token."""
        import re

        import urllib3

        m = re.search(r'<script src="([^"]+)/v1/beacon\.js" data-view="([^"]+)" defer>', html)
        check(m is not None, f"no beacon tag in the page: {html[:300]!r}")
        assert m is not None
        body = json.dumps({"t": m.group(2), "scroll": scroll, "seconds": seconds})
        r = urllib3.request(
            "POST", f"{m.group(1)}/v1/beacon", body=body,
            headers={"Content-Type": "text/plain;charset=UTF-8"},
        )
        check(r.status == 204, f"the beacon answered {r.status}: {r.data[:200]!r}")

    def post(client: Client, path: str, data: dict[str, str]) -> None:
        r = client.post(path, data)
        check(r.status_code == 302, f"POST {path} answered {r.status_code}: {r.content[:200]!r}")

    # Visitor A, anonymous: 6 pages (persist at the 5th), the sign-up form last.
    landing, first_referrer = "/search/?q=events", "https://www.google.com/"
    get(a, "a", landing, first_referrer)
    get(a, "a", "/", "/search/?q=events")
    get(a, "a", "/about/")
    get(a, "a", cpath, "/about/")
    get(a, "a", "/search/?q=montreal")
    get(a, "a", "/signup/")
    anon_pages_a = 6
    username, password = f"drive-{run}", f"pw-{run}"
    post(a, "/signup/", {"username": username, "password": password})
    profile = UserProfile.objects.select_related("user").get(user__username=username)
    key1 = a.session.session_key
    check(bool(key1), "no session key after sign-up")
    # Signed in: 3 pages.
    get(a, "a", "/")
    get(a, "a", cpath, "/")
    get(a, "a", "/about/")
    post(a, "/logout/", {})
    # Again, without remember-me: 2 pages.
    post(a, "/login/", {"username": username, "password": password})
    key2 = a.session.session_key
    check(bool(key2) and key2 != key1, "no new session key at the second login")
    get(a, "a", "/search/?q=x")
    get(a, "a", "/")
    post(a, "/logout/", {})

    # Visitor B, anonymous only: 5 pages (persist at the 5th).
    get(b, "b", "/")
    send_beacon(get(b, "b", "/about/", "/"), 70, 20)
    get(b, "b", cpath, "https://duckduckgo.com/")
    get(b, "b", "/search/?q=b")
    get(b, "b", "/about/")
    fp_a, fp_b = fingerprints["a"], fingerprints["b"]
    check(fp_a != fp_b, "both visitors have one fingerprint")

    sender = get_sender()
    check(sender.flush(30.0), f"the sender did not drain in 30 s: {sender.stats()}")
    stats = sender.stats()
    expected_views = anon_pages_a + 5 + 5
    for key, want in (
        ("sent", expected_views), ("dropped", 0), ("failed", 0), ("refused", 0),
        ("calls_sent", 5), ("calls_failed", 0), ("calls_refused", 0), ("calls_dropped", 0),
    ):
        check(stats.get(key) == want, f"sender stats: {key} is {stats.get(key)}, want {want}: {stats}")

    # Use case 1: who is viewing the community now (A anonymous, A signed in, B anonymous).
    visitors = api.community_visitors(community.id)
    want_visitors = {
        "total_visitors": 3, "authenticated_visitors": 1, "anonymous_visitors": 2,
        "authenticated_percentage": 33.3, "anonymous_percentage": 66.7,
    }
    for key, want in want_visitors.items():
        got = visitors.get(key)
        ok = abs(float(got) - want) < 0.051 if key.endswith("percentage") and got is not None else got == want
        check(ok, f"community visitors: {key} is {got}, want {want}: {visitors}")

    agg = api.enqueue("aggregate_page_analytics", {})

    # Wait for the fleet's jobs to reach the database.
    def pending() -> list[str]:
        out: list[str] = []
        sa = AnonymousSession.objects.filter(device_fingerprint=fp_a).first()
        if sa is None:
            out.append("A's anonymous session row")
        else:
            if sa.converted_to_user_id != profile.id:
                out.append("A's session linked to the new user")
            if sa.pages_visited != anon_pages_a:
                out.append(f"A's pages_visited = {anon_pages_a} (is {sa.pages_visited})")
            # The session row and its page-view rows are two writes of the persist job.
            if AnonymousPageView.objects.filter(session=sa).count() < 4:
                out.append("A's page-view rows")
        sb = AnonymousSession.objects.filter(device_fingerprint=fp_b).first()
        if sb is None or sb.pages_visited != 5:
            out.append("B's anonymous session row with 5 pages")
        elif AnonymousPageView.objects.filter(session=sb).count() != 4:
            # The persist writes views 1-4; the 5th waits for its next view or the session's end.
            out.append("B's 4 page-view rows")
        if not UserEvent.objects.filter(user=profile, event_type="account_created").exists():
            out.append("the account_created event")
        if UserSession.objects.filter(user=profile, is_ended=True).count() != 2:
            out.append("2 ended user sessions")
        job = api.job("aggregate_page_analytics", agg["job_id"])
        if job.get("status") == "dead":
            raise DriveError(f"aggregate_page_analytics died: {job.get('last_error')}")
        if job.get("status") != "done":
            out.append("aggregate_page_analytics done")
        elif not PageAnalytics.objects.filter(date=today, url_path=cpath).exists():
            out.append(f"PageAnalytics row for {cpath}")
        return out

    deadline = time.monotonic() + POLL_TIMEOUT
    while (missing := pending()):
        if time.monotonic() > deadline:
            raise DriveError(f"after {POLL_TIMEOUT:.0f} s the database still lacks: {'; '.join(missing)}")
        time.sleep(0.25)
    check(timezone.now().date() == today, "the run crossed midnight UTC: run it again")

    # The sessions and events the fleet wrote for A.
    sessions = list(UserSession.objects.filter(user=profile).order_by("started_at"))
    check(len(sessions) == 2, f"{len(sessions)} user sessions, want 2")
    s1, s2 = sessions
    for s, key, pages, persistent in ((s1, key1, 3, True), (s2, key2, 2, False)):
        check(s.session_id == session_hash(key), f"session_id {s.session_id} is not the hashed id of the session key")
        check(s.pages_visited == pages, f"session {s.session_id[:12]}: pages_visited {s.pages_visited}, want {pages}")
        check(s.persistent is persistent, f"session {s.session_id[:12]}: persistent {s.persistent}, want {persistent}")
        check(not s.is_active and s.is_ended and s.ended_at is not None, f"session {s.session_id[:12]} not ended")
        check(s.fast_fingerprint == fp_a or s.device_fingerprint == fp_a, "session fingerprint is not A's")
        check(str(s.ip_address) == "203.0.113.45", f"session ip {s.ip_address}")
    check(s1.expires_at - s1.started_at > timedelta(days=29), "remember-me session does not last 30 days")
    check(s2.expires_at - s2.started_at <= timedelta(hours=4, minutes=1), "plain session lasts over 4 h")
    events = {
        t: UserEvent.objects.filter(user=profile, event_type=t).count()
        for t in ("page_view", "community_visit", "account_created", "login", "logout")
    }
    check(
        events
        == {"page_view": 5, "community_visit": 1, "account_created": 1, "login": 2, "logout": 2},
        f"events of A: {events}",
    )
    visit = UserEvent.objects.get(user=profile, event_type="community_visit")
    check(
        visit.metadata.get("community_id") == str(community.id)
        and visit.metadata.get("community_slug") == community.slug,
        f"community_visit metadata: {visit.metadata}",
    )
    sa = AnonymousSession.objects.get(device_fingerprint=fp_a)
    created = UserEvent.objects.get(user=profile, event_type="account_created")
    want_meta = {
        "from_anonymous_session": str(sa.id), "pages_visited": anon_pages_a,
        "landing_page": landing, "referrer": first_referrer,
    }
    for key, want in want_meta.items():
        check(created.metadata.get(key) == want, f"account_created metadata {key}: {created.metadata.get(key)!r}, want {want!r}")
    views_a = list(AnonymousPageView.objects.filter(session=sa).order_by("view_number"))
    check(4 <= len(views_a) <= anon_pages_a, f"A has {len(views_a)} page-view rows, want 4 to 6")
    check(
        views_a[0].url == landing and views_a[0].referrer == first_referrer
        and views_a[0].url_name == "search" and views_a[0].page_type == "search",
        f"A's first page-view row: {views_a[0].url} {views_a[0].referrer} {views_a[0].url_name} {views_a[0].page_type}",
    )
    check([v.view_number for v in views_a] == list(range(1, len(views_a) + 1)), "A's view numbers")
    check(views_a[3].page_type == "community" and views_a[3].url_name == "community-detail", "A's community view row")
    sb = AnonymousSession.objects.get(device_fingerprint=fp_b)
    check(sb.converted_to_user_id is None and sb.landing_page == "/", f"B's session: {sb.converted_to_user_id} {sb.landing_page}")
    views_b = list(AnonymousPageView.objects.filter(session=sb).order_by("view_number"))
    check(len(views_b) == 4, f"B has {len(views_b)} page-view rows, want 4 (the 5th waits)")
    # The beacon of B's /about/ page; B's other pages' time on page is the time to the next view.
    check(
        (views_b[1].url, views_b[1].scroll_depth_percent, views_b[1].time_on_page_seconds)
        == ("/about/", 70, 20),
        f"B's /about/ row: {views_b[1].url} scroll {views_b[1].scroll_depth_percent} "
        f"time {views_b[1].time_on_page_seconds}",
    )
    check(
        all(v.time_on_page_seconds is not None and v.scroll_depth_percent is None
            for v in (views_b[0], views_b[2], views_b[3])),
        "B's pages without a beacon lack a time on page",
    )
    check(not UserSession.objects.filter(fast_fingerprint=fp_b).exists(), "a user session with B's fingerprint")

    quiet = contextlib.redirect_stdout(sys.stderr)

    # Use case 2: the seed's query, verbatim.
    with quiet:
        conversions = AnonymousSession.objects.filter(
            converted_to_user__isnull=False,
            converted_at__gte=timezone.now() - timedelta(days=30)
        )

        for session in conversions:
            print(f"User: {session.converted_to_user.user.username}")
            print(f"Anonymous pages visited: {session.pages_visited}")
            print(f"Duration: {session.duration_seconds}s")
            print(f"Landing page: {session.landing_page}")
            print(f"Referrer: {session.referrer}")
            print("---")

        # Average pages before conversion
        avg_pages = conversions.aggregate(Avg('pages_visited'))
    ours = [s for s in conversions if s.converted_to_user.user.username == username]
    check(len(ours) == 1, f"{len(ours)} conversions of {username}, want 1")
    conv = ours[0]
    check(
        (conv.pages_visited, conv.landing_page, conv.referrer) == (anon_pages_a, landing, first_referrer),
        f"conversion: {conv.pages_visited} {conv.landing_page} {conv.referrer}",
    )
    if conversions.count() == 1:
        check(float(avg_pages["pages_visited__avg"]) == anon_pages_a, f"avg pages {avg_pages}")

    # Use case 3: the seed's query, verbatim.
    with quiet:
        # Top pages last 7 days
        top_pages = PageAnalytics.objects.filter(
            date__gte=timezone.now().date() - timedelta(days=7)
        ).values('url_path', 'page_type').annotate(
            total_views=Sum('total_views'),
            anonymous_views=Sum('anonymous_views')
        ).order_by('-total_views')[:10]

        for page in top_pages:
            print(f"{page['url_path']}: {page['total_views']} views")
            print(f"  Anonymous: {page['anonymous_views']}")
    expected_pages = {
        "/search/": ("search", 4, 3, 1, 3),
        "/": ("home", 4, 2, 2, 3),
        "/about/": ("about", 4, 3, 1, 3),
        cpath: ("community", 3, 2, 1, 3),
        "/signup/": ("signup", 1, 1, 0, 1),
    }
    final = page_rows(today)
    top: list[dict[str, Any]] = []
    for path, (ptype, total, anon, auth, unique) in expected_pages.items():
        row = final.get(path)
        check(row is not None, f"no PageAnalytics row for {path}")
        base = baseline.get(path, {})
        delta = {
            k: row[k] - base.get(k, 0)
            for k in ("total_views", "anonymous_views", "authenticated_views", "unique_visitors")
        }
        want = {"total_views": total, "anonymous_views": anon, "authenticated_views": auth, "unique_visitors": unique}
        check(delta == want, f"PageAnalytics {path} changed by {delta}, want {want}")
        if path == cpath or not base:
            check(row["page_type"] == ptype, f"PageAnalytics {path} page_type {row['page_type']!r}, want {ptype!r}")
        top.append({"url_path": path, **delta})
    # The 7-day sums of use case 3: this run's community page is new, so its sums are exact.
    listed = {p["url_path"]: p for p in top_pages}
    if cpath in listed:
        got = listed[cpath]
        check(
            (got["total_views"], got["anonymous_views"]) == (3, 2),
            f"use case 3 lists {cpath} with {got}",
        )

    # Use case 4: the seed's query, verbatim.
    with quiet:
        # Authenticated average session duration
        auth_avg = UserSession.objects.filter(
            is_ended=True,
            ended_at__gte=timezone.now() - timedelta(days=7)
        ).annotate(
            duration=F('ended_at') - F('started_at')
        ).aggregate(Avg('duration'))

        # Anonymous average session duration
        anon_avg = AnonymousSession.objects.filter(
            is_active=False,
            session_end__gte=timezone.now() - timedelta(days=7)
        ).aggregate(Avg('duration_seconds'))

        print(f"Auth avg: {auth_avg} seconds")
        print(f"Anon avg: {anon_avg['duration_seconds__avg']} seconds")
    ended = UserSession.objects.filter(
        user=profile, is_ended=True, ended_at__gte=timezone.now() - timedelta(days=7)
    ).count()
    check(ended == 2, f"{ended} ended sessions of {username} in the last 7 days, want 2")
    check(auth_avg["duration__avg"] is not None, "use case 4: no average authenticated duration")

    summary = {
        "ok": True,
        "run": run,
        "seconds": round(time.monotonic() - started, 2),
        "community_visitors": visitors,
        "conversion": {
            "user": username,
            "pages_visited": conv.pages_visited,
            "landing_page": conv.landing_page,
            "referrer": conv.referrer,
            "page_view_rows": len(views_a),
        },
        "avg_pages_before_conversion": float(avg_pages["pages_visited__avg"] or 0),
        "top_pages_delta": top,
        "top_pages": [
            {"url_path": p["url_path"], "total_views": p["total_views"], "anonymous_views": p["anonymous_views"]}
            for p in top_pages
        ],
        "ended_sessions": ended,
        "auth_avg_seconds": auth_avg["duration__avg"].total_seconds(),
        "anon_avg_seconds": anon_avg["duration_seconds__avg"],
        "events": events,
        "sender": stats,
        "users": User.objects.filter(username=username).count(),
    }
    print(json.dumps(summary, default=str, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DriveError as e:
        print(f"drive.py: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    except Exception as e:  # e.g. CeleriacError: the fleet refused a call drive.py makes itself
        print(f"drive.py: FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
