// Celeriac console: live updates and selection helpers. No library, no build step.
// Live updates: every 5 s, fetch this page again and swap each element marked data-live (by id).
// Pages work without this script; it only refreshes and adds "select all".
(function () {
  "use strict";
  var PERIOD = 5000;
  var live = sessionStorage.getItem("celeriac-live") !== "off";
  var timer = null;

  function label(button) {
    button.setAttribute("aria-pressed", live ? "true" : "false");
    button.textContent = live ? "Live updates on" : "Live updates off";
  }

  function refresh() {
    if (!live || document.hidden) return schedule();
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Console-Live": "1" } })
      .then(function (res) {
        if (!res.ok || res.redirected) throw new Error("status " + res.status);
        return res.text();
      })
      .then(function (text) {
        var doc = new DOMParser().parseFromString(text, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (el) {
          var fresh = doc.getElementById(el.id);
          if (fresh && el.contains(document.activeElement) === false) {
            el.replaceWith(document.importNode(fresh, true));
          }
        });
        document.documentElement.removeAttribute("data-stale");
      })
      .catch(function () {
        document.documentElement.setAttribute("data-stale", "true");
      })
      .then(schedule);
  }

  function schedule() {
    clearTimeout(timer);
    if (document.querySelector("[data-live]")) timer = setTimeout(refresh, PERIOD);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live-toggle]").forEach(function (button) {
      label(button);
      button.addEventListener("click", function () {
        live = !live;
        sessionStorage.setItem("celeriac-live", live ? "on" : "off");
        document.querySelectorAll("[data-live-toggle]").forEach(label);
        schedule();
      });
    });
    document.addEventListener("change", function (e) {
      var box = e.target;
      if (!box.matches || !box.matches("[data-select-all]")) return;
      var form = box.closest("form");
      form.querySelectorAll("input[name=ids]").forEach(function (c) { c.checked = box.checked; });
    });
    document.addEventListener("submit", function (e) {
      var button = e.submitter;
      var question = button && button.getAttribute("data-confirm");
      if (question && !window.confirm(question)) e.preventDefault();
    });
    schedule();
  });
})();
