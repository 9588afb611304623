"""The process-wide background sender: requests hand page views and login/logout/sign-up calls to
it and never wait for the fleet.

- ``put(view)`` is O(1) and never blocks: it appends to a bounded in-process buffer
  (``CELERIAC_BUFFER_SIZE`` views). When the buffer is full the view is dropped and counted
  (``dropped``), with one WARNING line at most every 10 s giving the count.
- One daemon thread sends the views in batches of up to ``CELERIAC_BATCH_SIZE`` to
  ``POST /v1/track/pageviews``, when a batch is full or every ``CELERIAC_FLUSH_INTERVAL`` seconds.
- Calls (login, logout, conversion, ...) wait in the same line, bounded apart
  (``CELERIAC_CALL_BUFFER_SIZE``), so nothing overtakes what came before it: a sign-up's
  conversion is sent only after the views the visitor made before signing up.
- A batch or call that fails for a reason that may pass (network error, timeout, 5xx, 429) is
  retried ``CELERIAC_MAX_RETRIES`` times with exponential backoff from ``CELERIAC_RETRY_BACKOFF``
  seconds, then dropped and counted (``failed``); views the fleet refuses (4xx) are counted as
  ``refused``. Warnings about both are rate-limited.
- Fork-safe: a child process starts with an empty buffer and its own thread and connections.
- ``flush(timeout)`` waits until everything queued has been handled; it runs at exit (atexit,
  ``CELERIAC_EXIT_FLUSH_TIMEOUT`` seconds).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from typing import Any, Callable, Mapping

from .client import CeleriacClient, CeleriacError

logger = logging.getLogger("celeriac_django")

View = dict[str, Any]

#: Seconds between two warnings of one kind.
WARN_INTERVAL = 10.0


class RateLimitedWarning:
    """Logs a WARNING at most once per ``interval`` seconds, with how many were held back."""

    def __init__(self, interval: float = WARN_INTERVAL) -> None:
        self.interval = interval
        self._last = -float("inf")
        self._held = 0
        self._lock = threading.Lock()

    def __call__(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last < self.interval:
                self._held += 1
                return
            held, self._held, self._last = self._held, 0, now
        if held:
            message += " (%d similar warnings in the last %.0f s not shown)"
            args = (*args, held, self.interval)
        logger.warning(message, *args)


class _Call:
    """A client method to call in the background."""

    __slots__ = ("method", "kwargs")

    def __init__(self, method: str, kwargs: dict[str, Any]) -> None:
        self.method = method
        self.kwargs = kwargs


class Sender:
    """See the module documentation. ``client_factory`` makes the client (once per process)."""

    def __init__(
        self,
        client_factory: Callable[[], CeleriacClient],
        *,
        buffer_size: int = 10000,
        batch_size: int = 200,
        flush_interval: float = 0.5,
        call_buffer_size: int = 1000,
        max_retries: int = 3,
        retry_backoff: float = 0.5,
    ) -> None:
        self.client_factory = client_factory
        self.buffer_size = max(1, int(buffer_size))
        self.batch_size = max(1, min(500, int(batch_size)))
        self.flush_interval = max(0.001, float(flush_interval))
        self.call_buffer_size = max(1, int(call_buffer_size))
        self.max_retries = max(0, int(max_retries))
        self.retry_backoff = max(0.0, float(retry_backoff))
        self._warn_dropped = RateLimitedWarning()
        self._warn_failed = RateLimitedWarning()
        self._warn_refused = RateLimitedWarning()
        self._counters = {
            "sent": 0,
            "dropped": 0,
            "failed": 0,
            "refused": 0,
            "calls_sent": 0,
            "calls_dropped": 0,
            "calls_failed": 0,
            "calls_refused": 0,
        }
        # The batch route is new; a fleet without it answers 404/405 and views go one by one.
        self._batch_route = True
        self._reset_runtime()
        ref = weakref.ref(self)

        def after_fork() -> None:
            sender = ref()
            if sender is not None:
                sender._reset_runtime()

        os.register_at_fork(after_in_child=after_fork)

    def _reset_runtime(self) -> None:
        """State owned by one process: a fresh buffer, lock, thread and client after a fork."""
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._items: deque[View | _Call] = deque()
        self._views = 0
        self._calls = 0
        self._in_flight = 0
        self._calls_in_flight = 0
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._client: CeleriacClient | None = None

    # The caller's side.

    def put(self, view: View) -> bool:
        """Queue one page view; False when it was dropped (buffer full). Never blocks on the fleet."""
        if self._pid != os.getpid():
            self._reset_runtime()
        with self._lock:
            if self._views >= self.buffer_size:
                self._counters["dropped"] += 1
                dropped = self._counters["dropped"]
                full = True
            else:
                self._items.append(view)
                self._views += 1
                n = self._views
                full = False
        if full:
            self._warn_dropped(
                "celeriac: the page-view buffer is full (%d views); %d views dropped so far",
                self.buffer_size,
                dropped,
            )
            return False
        self._ensure_thread()
        if n >= self.batch_size:
            self._wake.set()
        return True

    def call(self, method: str, **kwargs: Any) -> bool:
        """Queue a call of ``CeleriacClient.<method>(**kwargs)``; False when dropped."""
        if self._pid != os.getpid():
            self._reset_runtime()
        with self._lock:
            if self._calls >= self.call_buffer_size:
                self._counters["calls_dropped"] += 1
                dropped = self._counters["calls_dropped"]
                full = True
            else:
                self._items.append(_Call(method, kwargs))
                self._calls += 1
                full = False
        if full:
            self._warn_dropped(
                "celeriac: the call buffer is full (%d calls); %d calls dropped so far",
                self.call_buffer_size,
                dropped,
            )
            return False
        self._ensure_thread()
        self._wake.set()
        return True

    def stats(self) -> dict[str, int]:
        """``queued`` (views waiting or being sent), ``sent``, ``dropped``, ``failed``, ``refused``,
        ``calls_queued`` and the calls' own ``calls_*`` counters."""
        with self._lock:
            out = dict(self._counters)
            out["queued"] = self._views + self._in_flight
            out["calls_queued"] = self._calls + self._calls_in_flight
        return out

    def flush(self, timeout: float = 5.0) -> bool:
        """Send everything queued now and wait (at most ``timeout`` s); True when all was handled
        (sent, refused or given up), False on timeout."""
        if self._pid != os.getpid():
            self._reset_runtime()
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            if self._pending() == 0:
                return True
        self._ensure_thread()
        self._wake.set()
        with self._idle:
            while self._pending() > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(min(remaining, 0.1))
                self._wake.set()
        return True

    def _pending(self) -> int:
        """Views and calls not yet handled (the lock is held)."""
        return self._views + self._calls + self._in_flight + self._calls_in_flight

    def _ensure_thread(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._start_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(
                target=self._run, name="celeriac-sender", daemon=True
            )
            self._thread.start()

    # The thread's side.

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self._drain()
            except Exception:  # never let the thread die
                logger.exception("celeriac: the sender hit an unexpected error")
                with self._idle:
                    self._in_flight = 0
                    self._calls_in_flight = 0
                    self._idle.notify_all()

    def _client_now(self) -> CeleriacClient:
        if self._client is None:
            self._client = self.client_factory()
        return self._client

    def _drain(self) -> None:
        while True:
            call: _Call | None = None
            batch: list[View] = []
            with self._lock:
                if not self._items:
                    self._idle.notify_all()
                    return
                if isinstance(self._items[0], _Call):
                    call = self._items.popleft()  # type: ignore[assignment]
                    self._calls -= 1
                    self._calls_in_flight += 1
                else:
                    while (
                        self._items
                        and len(batch) < self.batch_size
                        and not isinstance(self._items[0], _Call)
                    ):
                        batch.append(self._items.popleft())  # type: ignore[arg-type]
                    self._views -= len(batch)
                    self._in_flight += len(batch)
            try:
                if call is not None:
                    self._send_call(call)
                else:
                    self._send_views(batch)
            finally:
                with self._idle:
                    self._in_flight -= len(batch)
                    if call is not None:
                        self._calls_in_flight -= 1
                    self._idle.notify_all()

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counters[key] += n

    def _backoff(self, attempt: int) -> None:
        time.sleep(self.retry_backoff * (2**attempt))

    def _send_views(self, views: list[View]) -> None:
        pending = views
        last_error: CeleriacError | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._backoff(attempt - 1)
            if not self._batch_route:
                pending = self._send_one_by_one(pending)
                if not pending:
                    return
                continue
            try:
                reply = self._client_now().track_pageviews(pending)
            except CeleriacError as e:
                if e.status in (404, 405) and e.code in (None, "not_found", "method_not_allowed"):
                    logger.warning(
                        "celeriac: the fleet has no POST /v1/track/pageviews; sending views one by one"
                    )
                    self._batch_route = False
                    pending = self._send_one_by_one(pending)
                    if not pending:
                        return
                    continue
                if not e.retryable:
                    self._count("refused", len(pending))
                    self._warn_refused(
                        "celeriac: the fleet refused a batch of %d views: %s", len(pending), e
                    )
                    return
                if not e.unsent and e.status != 503:
                    # The fleet may have tracked the batch before the answer was lost (a read
                    # timeout, a 500 or a proxy's 502/504): sending it again could count views
                    # twice, so they are counted as failed instead.
                    self._count("failed", len(pending))
                    self._warn_failed(
                        "celeriac: %d views may or may not have been tracked (not sent again): %s",
                        len(pending),
                        e,
                    )
                    return
                last_error = e
                self._warn_failed(
                    "celeriac: sending %d views failed (attempt %d of %d): %s",
                    len(pending),
                    attempt + 1,
                    self.max_retries + 1,
                    e,
                )
                continue
            pending = self._settle(pending, reply.get("results"))
            if not pending:
                return
        self._count("failed", len(pending))
        self._warn_failed(
            "celeriac: gave up on %d views after %d attempts: %s",
            len(pending),
            self.max_retries + 1,
            last_error or "the fleet kept answering 5xx",
        )

    def _settle(self, views: list[View], results: Any) -> list[View]:
        """Count a batch's results; returns the views to try again."""
        if not isinstance(results, list):
            results = []
        retry: list[View] = []
        sent = refused = failed = 0
        for i, view in enumerate(views):
            r = results[i] if i < len(results) and isinstance(results[i], Mapping) else None
            status = int(r.get("status", 0)) if r is not None else 0
            if 200 <= status < 300:
                sent += 1
            elif r is None or status in (408, 429, 503) or (status >= 500 and "user_id" not in view):
                # An anonymous view is one atomic step in the fleet: trying it again never counts
                # it twice. A signed-in view that failed with a 500 may have been partly counted
                # (its session, then its community visit), so only "unavailable" is tried again.
                retry.append(view)
            elif status >= 500:
                failed += 1
            else:
                refused += 1
                err = r.get("error") or {}
                self._warn_refused(
                    "celeriac: the fleet refused a page view (%s %s: %s, field %s)",
                    status,
                    err.get("code"),
                    err.get("message"),
                    err.get("field"),
                )
        with self._lock:
            self._counters["sent"] += sent
            self._counters["refused"] += refused
            self._counters["failed"] += failed
        return retry

    def _send_one_by_one(self, views: list[View]) -> list[View]:
        retry: list[View] = []
        for view in views:
            try:
                self._client_now().track_pageview(view)
            except CeleriacError as e:
                if e.retryable:
                    retry.append(view)
                    self._warn_failed("celeriac: sending a page view failed: %s", e)
                else:
                    self._count("refused")
                    self._warn_refused("celeriac: the fleet refused a page view: %s", e)
                continue
            self._count("sent")
        return retry

    def _send_call(self, call: _Call) -> None:
        last: CeleriacError | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._backoff(attempt - 1)
            try:
                getattr(self._client_now(), call.method)(**call.kwargs)
            except CeleriacError as e:
                if not e.retryable:
                    self._count("calls_refused")
                    self._warn_refused("celeriac: the fleet refused %s: %s", call.method, e)
                    return
                last = e
                self._warn_failed(
                    "celeriac: %s failed (attempt %d of %d): %s",
                    call.method,
                    attempt + 1,
                    self.max_retries + 1,
                    e,
                )
                continue
            self._count("calls_sent")
            return
        self._count("calls_failed")
        self._warn_failed(
            "celeriac: gave up on %s after %d attempts: %s", call.method, self.max_retries + 1, last
        )


_sender: Sender | None = None
_sender_lock = threading.Lock()
_atexit_registered = False


def _client_from_settings() -> CeleriacClient:
    from . import conf

    return CeleriacClient(
        str(conf.get("CELERIAC_URL")),
        token=conf.get("CELERIAC_TOKEN") or None,
        timeout=float(conf.get("CELERIAC_TIMEOUT")),
    )


def get_sender() -> Sender:
    """The process-wide sender, made from the settings on first use."""
    global _sender, _atexit_registered
    sender = _sender
    if sender is not None:
        return sender
    from . import conf

    with _sender_lock:
        if _sender is None:
            _sender = Sender(
                _client_from_settings,
                buffer_size=int(conf.get("CELERIAC_BUFFER_SIZE")),
                batch_size=int(conf.get("CELERIAC_BATCH_SIZE")),
                flush_interval=float(conf.get("CELERIAC_FLUSH_INTERVAL")),
                call_buffer_size=int(conf.get("CELERIAC_CALL_BUFFER_SIZE")),
                max_retries=int(conf.get("CELERIAC_MAX_RETRIES")),
                retry_backoff=float(conf.get("CELERIAC_RETRY_BACKOFF")),
            )
            if not _atexit_registered:
                atexit.register(_flush_at_exit)
                _atexit_registered = True
        return _sender


def reset_sender() -> None:
    """Forget the process-wide sender (its thread idles on); the next use makes a new one."""
    global _sender
    with _sender_lock:
        _sender = None


def _flush_at_exit() -> None:
    sender = _sender
    if sender is None:
        return
    try:
        from . import conf

        timeout = float(conf.get("CELERIAC_EXIT_FLUSH_TIMEOUT"))
    except Exception:
        timeout = 2.0
    try:
        sender.flush(timeout)
    except Exception:
        logger.debug("celeriac: flush at exit failed", exc_info=True)
