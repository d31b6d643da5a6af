/* Keep the status, exit code and duration of live jobs current without reloading the page:
   poll the admin's JSON status view every 2 s while any job on the page is live. On a live
   job's page, also follow its stdout and stderr: ask the admin's logs view for what came
   after the offsets shown, append it, and stop once the answer says "complete"; while the
   "follow" box above a block is ticked, keep its end in view. */
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
    link.textContent = "The job has finished: reload to see its results.";
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

  function logsQuery(blocks) {
    var params = [];
    blocks.forEach(function (pre) {
      var name = pre.getAttribute("data-cm-log") + "_offset";
      params.push(name + "=" + encodeURIComponent(pre.getAttribute("data-cm-offset")));
    });
    return "?" + params.join("&");
  }

  function appendLog(pre, text, offset) {
    if (text) {
      var note = pre.parentNode.querySelector(":scope > .cm-empty");
      if (note && note.classList.contains("cm-empty")) { note.remove(); }
      pre.appendChild(document.createTextNode(text));
      if (following(pre)) { pre.scrollTop = pre.scrollHeight; }
    }
    pre.setAttribute("data-cm-offset", String(offset));
  }

  function following(pre) {
    var box = document.querySelector('input[data-cm-follow="' + pre.getAttribute("data-cm-log") + '"]');
    return !box || box.checked;
  }

  /* One read, appended; resolves to the delay before the next read (0 when the stored logs
     are longer than one answer), or null once the answer says "complete". */
  function followOnce(url, blocks) {
    return fetch(url + logsQuery(blocks), {
      credentials: "same-origin",
      headers: { "Accept": "application/json" }
    })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) { return INTERVAL_MS; }
        blocks.forEach(function (pre) {
          var stream = pre.getAttribute("data-cm-log");
          appendLog(pre, data[stream], data[stream + "_offset"]);
          if (data.complete) { pre.setAttribute("data-cm-complete", "1"); }
        });
        if (data.complete) { return null; }
        return data.source === "stored" ? 0 : INTERVAL_MS;
      })
      .catch(function () { return INTERVAL_MS; });
  }

  function followLogs() {
    var meta = document.querySelector('meta[name="cm-logs-url"]');
    var blocks = document.querySelectorAll("pre[data-cm-log]");
    if (!meta || blocks.length === 0) { return; }
    followOnce(meta.getAttribute("content"), blocks).then(function (delay) {
      if (delay !== null) { window.setTimeout(followLogs, delay); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    window.setTimeout(poll, INTERVAL_MS);
    window.setTimeout(followLogs, INTERVAL_MS);
  });
})();
