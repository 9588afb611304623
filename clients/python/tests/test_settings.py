"""Settings read from the environment, and the fingerprint a page sends in a header.

Run: python -m unittest discover -s clients/python/tests (with the package importable).
"""

from __future__ import annotations

import os
import unittest
from unittest import mock

import django
from django.conf import settings

if not settings.configured:
    settings.configure(ALLOWED_HOSTS=["testserver"], CELERIAC_TIMEOUT=7.5)
    django.setup()

from django.test import RequestFactory  # noqa: E402

from celeriac_django import conf  # noqa: E402
from celeriac_django.fingerprint import default_fingerprint, fast_fingerprint  # noqa: E402


class SettingsFromTheEnvironment(unittest.TestCase):
    def test_django_settings_win_then_the_environment_then_the_default(self) -> None:
        env = {
            "CELERIAC_TIMEOUT": "1.0",
            "CELERIAC_URL": "http://fleet:8000",
            "CELERIAC_BUFFER_SIZE": "42",
            "CELERIAC_TRUST_X_FORWARDED_FOR": "yes",
            "CELERIAC_IGNORE_PATHS": "^/a/, ^/b/",
        }
        with mock.patch.dict(os.environ, env):
            self.assertEqual(conf.get("CELERIAC_TIMEOUT"), 7.5)
            self.assertEqual(conf.get("CELERIAC_URL"), "http://fleet:8000")
            self.assertEqual(conf.get("CELERIAC_BUFFER_SIZE"), 42)
            self.assertIs(conf.get("CELERIAC_TRUST_X_FORWARDED_FOR"), True)
            self.assertEqual(conf.get("CELERIAC_IGNORE_PATHS"), ("^/a/", "^/b/"))
        with mock.patch.dict(os.environ, {}, clear=True):
            self.assertEqual(conf.get("CELERIAC_URL"), "http://127.0.0.1:8000")
            self.assertIs(conf.get("CELERIAC_TRUST_X_FORWARDED_FOR"), False)


class FingerprintHeader(unittest.TestCase):
    def test_a_valid_header_is_the_fingerprint_and_anything_else_is_computed(self) -> None:
        rf = RequestFactory()
        with mock.patch.dict(os.environ, {"CELERIAC_FINGERPRINT_HEADER": "X-Fingerprint"}):
            sent = rf.get("/", HTTP_X_FINGERPRINT="visitor-42")
            self.assertEqual(fast_fingerprint(sent), "visitor-42")
            for bad in ["has space", "x" * 129, "ümlaut", ""]:
                req = rf.get("/", HTTP_X_FINGERPRINT=bad)
                self.assertEqual(fast_fingerprint(req), default_fingerprint(req), bad)
        with mock.patch.dict(os.environ, {}, clear=True):
            ignored = rf.get("/", HTTP_X_FINGERPRINT="visitor-42")
            self.assertEqual(fast_fingerprint(ignored), default_fingerprint(ignored))


if __name__ == "__main__":
    unittest.main()
