/* Celeriac beacon: tells the fleet how far down this page was scrolled and how long it was visible.
 * Include once per page the site tracks, with the view token the Django package renders:
 *   <script src="https://fleet.example/v1/beacon.js" data-view="{view token}" defer></script>
 * (`{% celeriac_beacon %}` writes this tag). It sends one small POST when the page is hidden or
 * left (navigator.sendBeacon, text/plain: no preflight, no cookies), again if the visitor comes
 * back and leaves once more; the last report of a view wins. No cookie, no storage, no globals. */
(function () {
  "use strict";
  var script = document.currentScript;
  var token = script && script.getAttribute("data-view");
  if (!token) return;
  var endpoint = script.getAttribute("data-endpoint") || new URL("/v1/beacon", script.src).href;
  var deepest = 0;
  var visibleMs = 0;
  var since = document.visibilityState === "visible" ? Date.now() : null;

  function measure() {
    var doc = document.documentElement;
    var height = Math.max(doc.scrollHeight, document.body ? document.body.scrollHeight : 0);
    var seen = (window.scrollY || doc.scrollTop || 0) + window.innerHeight;
    var depth = height > 0 ? Math.round((100 * seen) / height) : 100;
    deepest = Math.max(deepest, Math.min(100, Math.max(0, depth)));
  }

  function report() {
    if (since !== null) {
      visibleMs += Date.now() - since;
      since = null;
    }
    measure();
    var body = JSON.stringify({
      t: token,
      scroll: deepest,
      seconds: Math.min(86400, Math.round(visibleMs / 1000))
    });
    if (navigator.sendBeacon && navigator.sendBeacon(endpoint, body)) return;
    try {
      fetch(endpoint, { method: "POST", body: body, keepalive: true, mode: "no-cors" });
    } catch (e) {
      /* Nothing to do: a lost report leaves the view's time to the next view. */
    }
  }

  window.addEventListener("scroll", measure, { passive: true });
  window.addEventListener("load", measure);
  measure();
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") report();
    else since = Date.now();
  });
  window.addEventListener("pagehide", function () {
    if (since !== null) report();
  });
})();
