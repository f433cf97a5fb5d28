// Shared by the console's pages: settings, labels, the CSRF header, grade colours.
"use strict";
const RP = (function () {
  const cfg = JSON.parse(document.getElementById("console-config").textContent);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const COLOURS = { 3: "#d7191c", 2: "#fd8d3c", 1: "#2b83ba", 0: "#888888" };
  async function getJSON(url) {
    const r = await fetch(url, { credentials: "same-origin" });
    if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search); }
    if (!r.ok) throw new Error(url + ": " + r.status);
    return r.json();
  }
  async function postJSON(url, body) {
    const r = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    const doc = await r.json();
    if (!r.ok) throw new Error(doc.error || String(r.status));
    return doc;
  }
  function tileLayer(map) {
    // No tile URL, or tiles that cannot be reached: the points and tracks stay on a plain background.
    if (!cfg.tiles_url) return null;
    return L.tileLayer(cfg.tiles_url, { attribution: cfg.attribution, maxZoom: cfg.max_zoom }).addTo(map);
  }
  function gradeLabel(g) { return cfg.t["grade_" + g] || String(g); }
  function text(el, value) { el.textContent = value == null ? "" : String(value); }
  return { cfg, t: cfg.t, csrf, COLOURS, getJSON, postJSON, tileLayer, gradeLabel, text };
})();
