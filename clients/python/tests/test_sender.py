"""Unit behaviour of the background sender, against a fake client (no Django, no fleet).

Run: python -m unittest discover -s clients/python/tests (with the package importable).
"""

from __future__ import annotations

import threading
import time
import unittest
from typing import Any

from celeriac_django.client import CeleriacError
from celeriac_django.sender import Sender


class FakeClient:
    def __init__(self, gate: threading.Event | None = None, fail: int = 0, status: int = 503) -> None:
        self.gate = gate
        self.fail = fail
        self.status = status
        self.batches: list[list[dict[str, Any]]] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.order: list[str] = []

    def track_pageviews(self, views: list[dict[str, Any]]) -> dict[str, Any]:
        if self.gate is not None:
            self.gate.wait()
        if self.fail:
            self.fail -= 1
            raise CeleriacError("down", status=self.status)
        self.batches.append(list(views))
        self.order.extend(v["url"] for v in views)
        return {"accepted": len(views), "refused": 0, "results": [{"status": 202} for _ in views]}

    def conversion(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("conversion", kwargs))
        self.order.append("conversion")
        return {}


def view(i: int) -> dict[str, Any]:
    return {"fingerprint": "fp", "url": f"/p/{i}/"}


class SenderTest(unittest.TestCase):
    def test_full_buffer_drops_counts_and_never_blocks(self) -> None:
        gate = threading.Event()  # the fleet "hangs" until set
        fake = FakeClient(gate)
        s = Sender(lambda: fake, buffer_size=5, batch_size=2, flush_interval=0.01, retry_backoff=0)
        with self.assertLogs("celeriac_django", level="WARNING") as logs:
            t0 = time.perf_counter()
            results = [s.put(view(i)) for i in range(1000)]
            elapsed = time.perf_counter() - t0
        self.assertLess(elapsed, 0.5, "put() must not wait on the fleet")
        kept = results.count(True)
        # At most 5 waiting plus the one batch (2) the thread took before hanging.
        self.assertLessEqual(kept, 7)
        self.assertEqual(s.stats()["dropped"], 1000 - kept)
        self.assertEqual(len(logs.output), 1, "one warning per 10 s")
        self.assertIn("dropped", logs.output[0])
        gate.set()
        self.assertTrue(s.flush(5))
        self.assertEqual(s.stats()["sent"], kept)
        self.assertEqual(s.stats()["queued"], 0)

    def test_failures_retry_then_count_failed(self) -> None:
        fake = FakeClient(fail=2)
        s = Sender(lambda: fake, batch_size=10, flush_interval=0.01, max_retries=3, retry_backoff=0)
        for i in range(3):
            s.put(view(i))
        self.assertTrue(s.flush(5))
        self.assertEqual(s.stats()["sent"], 3)
        self.assertEqual(s.stats()["failed"], 0)

        down = FakeClient(fail=100)
        s2 = Sender(lambda: down, batch_size=10, flush_interval=0.01, max_retries=2, retry_backoff=0)
        with self.assertLogs("celeriac_django", level="WARNING"):
            for i in range(4):
                s2.put(view(i))
            self.assertTrue(s2.flush(5))
        self.assertEqual(s2.stats()["failed"], 4)
        self.assertEqual(s2.stats()["sent"], 0)

    def test_refused_views_are_not_retried(self) -> None:
        fake = FakeClient(fail=1, status=422)
        s = Sender(lambda: fake, batch_size=10, flush_interval=0.01, retry_backoff=0)
        with self.assertLogs("celeriac_django", level="WARNING"):
            s.put(view(1))
            self.assertTrue(s.flush(5))
        self.assertEqual(s.stats()["refused"], 1)
        self.assertEqual(fake.fail, 0)

    def test_a_batch_the_fleet_may_have_tracked_is_not_sent_again(self) -> None:
        # A 500 (or a read timeout) may come after the fleet counted the views: sending them
        # again could count them twice, so they are counted as failed, once.
        fake = FakeClient(fail=1, status=500)
        s = Sender(lambda: fake, batch_size=10, flush_interval=0.01, max_retries=3, retry_backoff=0)
        with self.assertLogs("celeriac_django", level="WARNING"):
            for i in range(3):
                s.put(view(i))
            self.assertTrue(s.flush(5))
        self.assertEqual((s.stats()["failed"], s.stats()["sent"]), (3, 0))
        self.assertEqual(fake.batches, [], "never sent again")

    def test_calls_keep_their_place_after_earlier_views(self) -> None:
        fake = FakeClient()
        s = Sender(lambda: fake, batch_size=100, flush_interval=0.05, retry_backoff=0)
        s.put(view(1))
        s.put(view(2))
        s.call("conversion", user_id="u", fingerprint="fp")
        s.put(view(3))
        self.assertTrue(s.flush(5))
        self.assertEqual(fake.order, ["/p/1/", "/p/2/", "conversion", "/p/3/"])
        self.assertEqual(s.stats()["calls_sent"], 1)

    def test_a_forked_child_starts_empty_with_its_own_thread(self) -> None:
        import os

        gate = threading.Event()
        fake = FakeClient(gate)
        s = Sender(lambda: fake, batch_size=100, flush_interval=10, retry_backoff=0)
        for i in range(3):
            s.put(view(i))
        pid = os.fork()
        if pid == 0:  # the child: the parent's views are not its to send
            ok = s.stats()["queued"] == 0 and s.put(view(9)) and s.stats()["queued"] == 1
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        self.assertEqual(s.stats()["queued"], 3)
        gate.set()
        self.assertTrue(s.flush(5))
        self.assertEqual(s.stats()["sent"], 3)


if __name__ == "__main__":
    unittest.main()
