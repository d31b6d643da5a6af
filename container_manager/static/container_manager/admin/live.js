/* Keep the status, exit code and duration of live jobs current without reloading the page:
   poll the admin's JSON status view every 2 s while any job on the page is live. */
(function () {
  "use strict";
  var INTERVAL_MS = 2000;

  function statusUrl() {
    var meta = document.querySelector('meta[name="cm-status-url"]');
    return meta ? meta.getAttribute("content") : null;
  }

  function liveIds() {
    var seen = {};
    document.querySelectorAll('[data-cm-job][data-cm-live="1"]').forEach(function (el) {
      seen[el.getAttribute("data-cm-job")] = true;
    });
    return Object.keys(seen);
  }

  function apply(id, job) {
    document.querySelectorAll('[data-cm-job="' + id + '"]').forEach(function (el) {
      el.className = "cm-status cm-status-" + job.status;
      el.setAttribute("data-cm-status", job.status);
      el.setAttribute("data-cm-live", job.live ? "1" : "0");
      el.textContent = job.label;
    });
    document.querySelectorAll('[data-cm-job-field="' + id + '"]').forEach(function (el) {
      var value = job[el.getAttribute("data-cm-field")];
      if (value !== undefined) { el.textContent = value; }
    });
    if (!job.live && document.body.classList.contains("change-form")) { offerReload(); }
  }

  function offerReload() {
    if (document.getElementById("cm-finished")) { return; }
    var note = document.createElement("p");
    note.id = "cm-finished";
    note.className = "cm-dashboard-banner";
    var link = document.createElement("a");
    link.href = window.location.href;
    link.textContent = "The job has finished: reload to see its output.";
    note.appendChild(link);
    var main = document.getElementById("content-main") || document.body;
    main.insertBefore(note, main.firstChild);
  }

  function poll() {
    var url = statusUrl();
    var ids = liveIds();
    if (!url || ids.length === 0) { return; }
    fetch(url + "?ids=" + encodeURIComponent(ids.join(",")), {
      credentials: "same-origin",
      headers: { "Accept": "application/json" }
    })
      .then(function (response) { return response.ok ? response.json() : { jobs: {} }; })
      .then(function (data) {
        Object.keys(data.jobs || {}).forEach(function (id) { apply(id, data.jobs[id]); });
      })
      .catch(function () { /* the next tick tries again */ })
      .then(function () { window.setTimeout(poll, INTERVAL_MS); });
  }

  document.addEventListener("DOMContentLoaded", function () { window.setTimeout(poll, INTERVAL_MS); });
})();
