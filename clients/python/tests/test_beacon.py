"""The beacon's view token (the fleet's rule) and the tag the template renders.

Run: python -m unittest discover -s clients/python/tests (with the package importable).
"""

from __future__ import annotations

import os
import unittest
from types import SimpleNamespace
from unittest import mock

import django
from django.conf import settings

if not settings.configured:
    settings.configure(ALLOWED_HOSTS=["testserver"], CELERIAC_TIMEOUT=7.5)
    django.setup()

from celeriac_django.beacon import beacon_tag, view_token  # noqa: E402

VIEW = "00000000-0000-0000-0000-00000000002a"


class ViewToken(unittest.TestCase):
    def test_the_fleets_known_signature(self) -> None:
        # tracking::beacon::tests::a_known_token computes the same value in Rust.
        self.assertEqual(view_token(VIEW, "token"), f"{VIEW}.c2a0f218c42c4f9a4f8e4435f4e78de7")
        self.assertEqual(view_token(VIEW, None), VIEW)


class Tag(unittest.TestCase):
    def test_anonymous_views_get_the_snippet_signed_and_escaped_others_nothing(self) -> None:
        anon = SimpleNamespace(celeriac_view_id=VIEW, user=SimpleNamespace(is_authenticated=False))
        env = {"CELERIAC_TOKEN": "token", "CELERIAC_PUBLIC_URL": 'https://fleet.example/"x'}
        with mock.patch.dict(os.environ, env, clear=True):
            html = beacon_tag(anon)
        self.assertEqual(
            html,
            '<script src="https://fleet.example/&quot;x/v1/beacon.js" '
            f'data-view="{VIEW}.c2a0f218c42c4f9a4f8e4435f4e78de7" defer></script>',
        )
        signed_in = SimpleNamespace(celeriac_view_id=VIEW, user=SimpleNamespace(is_authenticated=True))
        untracked = SimpleNamespace(user=SimpleNamespace(is_authenticated=False))
        with mock.patch.dict(os.environ, env, clear=True):
            self.assertEqual(beacon_tag(signed_in), "")
            self.assertEqual(beacon_tag(untracked), "")


if __name__ == "__main__":
    unittest.main()
