// operator console: live updates. The server pushes "changed" events
// (server-sent events) when a ticket, action or audit record changes; the
// page then fetches itself again and swaps every element marked data-live
// (keeping one the person is typing in). No other script runs on the page.
(function () {
  "use strict";
  var url = document.body.getAttribute("data-events");
  if (!url || !window.EventSource || !window.fetch || !window.DOMParser) return;
  var dot = document.getElementById("live");
  var busy = false, again = false;
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live][id]").forEach(function (el) {
          if (el.contains(document.activeElement) && document.activeElement !== document.body) return;
          var fresh = doc.getElementById(el.id);
          if (fresh) el.replaceWith(document.importNode(fresh, true));
        });
        document.body.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () {})
      .then(function () { busy = false; if (again) { again = false; refresh(); } });
  }
  var es = new EventSource(url);
  es.addEventListener("open", function () { if (dot) { dot.classList.add("on"); dot.title = "live updates on"; } });
  es.addEventListener("error", function () { if (dot) { dot.classList.remove("on"); dot.title = "live updates reconnecting"; } });
  es.addEventListener("changed", refresh);
})();
