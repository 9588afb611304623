"""URLs of the test site."""

from django.urls import include, path

from accounts import views

community_patterns = [
    path("<uuid:community_id>/", views.community_detail, name="community-detail"),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("about/", views.about, name="about"),
    path("search/", views.search, name="search"),
    path("signup/", views.signup, name="signup"),
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("communities/", include((community_patterns, "community"))),
]
