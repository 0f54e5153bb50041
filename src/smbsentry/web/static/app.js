// smbsentry dashboard: live progress of a scan started from the web.
// Every value from the server goes into the page with textContent, never innerHTML.
// The page's words (in the page's language) come from the #progress element's data- attributes.
(function () {
  "use strict";
  var box = document.getElementById("progress");
  if (!box) { return; }
  var job = box.getAttribute("data-job");
  var scanWord = box.getAttribute("data-scan-word") || "scan";
  var unavailable = box.getAttribute("data-unavailable") || "progress unavailable";
  var states = {};
  try { states = JSON.parse(box.getAttribute("data-states") || "{}"); } catch (e) { states = {}; }
  function word(s) { return Object.prototype.hasOwnProperty.call(states, s) ? states[s] : s; }
  function cell(row, text) { var td = document.createElement("td"); td.textContent = text; row.appendChild(td); return td; }
  function show(d) {
    document.getElementById("job-state").setAttribute("data-state", d.state);
    document.getElementById("job-state").textContent = word(d.state) + (d.scan_status ? " (" + scanWord + " " + word(d.scan_status) + ")" : "");
    document.getElementById("job-hosts").textContent = String(d.hosts);
    var scan = document.getElementById("job-scan");
    if (d.scan_id !== null && !scan.firstChild) {
      var a = document.createElement("a");
      a.href = "/hosts?scan=" + encodeURIComponent(d.scan_id);
      a.textContent = scanWord + " #" + d.scan_id;
      scan.textContent = " - ";
      scan.appendChild(a);
    }
    var err = document.getElementById("job-error");
    if (d.error) { err.hidden = false; err.textContent = d.error; }
    var table = document.getElementById("job-recent");
    while (table.rows.length > 1) { table.deleteRow(1); }
    (d.recent || []).forEach(function (h) {
      var row = table.insertRow(-1);
      row.className = "job-host";
      var td = cell(row, "");
      var a = document.createElement("a");
      a.href = "/hosts/" + encodeURIComponent(d.scan_id) + "/" + encodeURIComponent(h.address);
      a.textContent = h.address;
      td.appendChild(a);
      cell(row, h.name || "");
      cell(row, h.os || "");
      cell(row, (h.findings || []).map(function (f) { return f.id; }).join(" "));
    });
    return d.state === "running" || d.scan_status === "running";
  }
  function poll() {
    fetch("/api/jobs/" + encodeURIComponent(job), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
      .then(function (d) { if (show(d)) { setTimeout(poll, 1000); } else { box.setAttribute("data-done", "1"); } })
      .catch(function (e) {
        var err = document.getElementById("job-error");
        err.hidden = false; err.textContent = unavailable + ": " + e.message;
        setTimeout(poll, 3000);
      });
  }
  poll();
})();
