"""The test site's pages: plain pages, a community page, sign-up, login and logout."""

from __future__ import annotations

import uuid

from django.contrib.auth import authenticate, login, logout
from django.contrib.auth.models import User
from django.db import transaction
from django.template import RequestContext, Template
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.views.decorators.http import require_http_methods

from .models import Community, UserProfile
from .signals import user_signed_up


def _page(title: str, body: str = "") -> HttpResponse:
    return HttpResponse(f"<!doctype html><title>{title}</title><h1>{title}</h1>{body}")


def home(request: HttpRequest) -> HttpResponse:
    return _page("Home")


def about(request: HttpRequest) -> HttpResponse:
    # The page's beacon, as a site's base template includes it.
    beacon = Template("{% load celeriac %}{% celeriac_beacon %}").render(
        RequestContext(request)
    )
    return _page("About", beacon)


def search(request: HttpRequest) -> HttpResponse:
    return _page("Search", f"<p>{len(request.GET.get('q', ''))} characters searched</p>")


def community_detail(request: HttpRequest, community_id: uuid.UUID) -> HttpResponse:
    community = Community.objects.filter(id=community_id).first()
    return _page(community.name if community else "Community")


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    """GET: the form. POST ``username``, ``password``: a User and its UserProfile, signed in."""
    if request.method == "GET":
        return _page("Sign up", "<form method=post></form>")
    username = request.POST.get("username", "")
    password = request.POST.get("password", "")
    if not username or not password:
        return HttpResponseBadRequest("username and password are required")
    with transaction.atomic():
        user = User.objects.create_user(username=username, password=password)
        UserProfile.objects.create(user=user)
        login(request, user)
        user_signed_up.send(sender=User, request=request, user=user)
    return HttpResponseRedirect("/")


@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    """POST ``username``, ``password`` and optionally ``remember`` ("1": the session outlives the
    browser; otherwise it ends when the browser closes)."""
    if request.method == "GET":
        return _page("Log in", "<form method=post></form>")
    user = authenticate(
        request,
        username=request.POST.get("username", ""),
        password=request.POST.get("password", ""),
    )
    if user is None:
        return HttpResponse("bad credentials", status=401)
    login(request, user)
    # After login(), as django-allauth does: the package must read the expiry once the view is
    # done, not when user_logged_in fires.
    if request.POST.get("remember") != "1":
        request.session.set_expiry(0)
    return HttpResponseRedirect("/")


@require_http_methods(["POST"])
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    return HttpResponseRedirect("/")
