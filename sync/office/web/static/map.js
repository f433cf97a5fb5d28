// The map page: filters in the URL, findings (clustered) and sites coloured by office grade,
// patrol tracks, coverage, and new findings appearing without a reload.
"use strict";
(function () {
  const { cfg, t, COLOURS, getJSON, gradeLabel } = RP;
  const form = document.getElementById("filter");
  const mapEl = document.getElementById("map");
  const map = L.map(mapEl, { maxZoom: cfg.max_zoom }).setView(cfg.center, cfg.zoom);
  RP.tileLayer(map);
  // Findings above the site icons (a site sits where its findings are) and below popups.
  map.createPane("findings").style.zIndex = 650;
  const findingsLayer = L.markerClusterGroup({ disableClusteringAtZoom: 18, maxClusterRadius: 40 });
  const serverClusters = L.layerGroup();
  const sitesLayer = L.layerGroup();
  const tracksLayer = L.layerGroup();
  [findingsLayer, serverClusters, sitesLayer, tracksLayer].forEach((l) => l.addTo(map));
  L.control.layers(null, { [t.findings]: findingsLayer, [t.sites]: sitesLayer, [t.tracks]: tracksLayer }).addTo(map);
  let latestReceived = "";
  let fitted = false;

  function filterQuery() {
    const p = new URLSearchParams();
    for (const name of ["grade", "type", "state", "repair"]) {
      const v = [...form.querySelectorAll(`input[name=${name}]:checked`)].map((i) => i.value);
      if (v.length) p.set(name, v.join(","));
    }
    for (const name of ["from", "to", "vehicle", "model", "min_score"]) {
      const v = form.elements[name].value;
      if (v) p.set(name, v);
    }
    return p;
  }
  function fillForm(p) {
    for (const name of ["grade", "type", "state", "repair"]) {
      const wanted = (p.get(name) || "").split(",");
      form.querySelectorAll(`input[name=${name}]`).forEach((i) => { i.checked = wanted.includes(i.value); });
    }
    for (const name of ["from", "to", "vehicle", "model", "min_score"]) {
      form.elements[name].value = p.get(name) || "";
    }
  }
  function popup(props) {
    const div = document.createElement("div");
    div.className = "popup";
    const h = document.createElement("strong");
    h.textContent = `${gradeLabel(props.office_grade)} · ${props.type_codes || props.type_code || ""}`;
    div.appendChild(h);
    if (props.image_path) {
      const img = document.createElement("img");
      img.src = `/images/${props.id || props.last_finding_id}.jpg`;
      img.width = 240;
      div.appendChild(img);
    }
    const p = document.createElement("p");
    p.textContent = `${props.captured_at_utc || props.last_seen_utc} · ${props.vehicle_id || props.vehicles || ""}`;
    div.appendChild(p);
    const a = document.createElement("a");
    if (props.id) { a.href = `/queue?id=${props.id}`; a.textContent = t.queue; a.className = "open-finding"; }
    else { a.href = `/sites/${props.site_id}`; a.textContent = t.open_site; a.className = "open-site"; }
    div.appendChild(a);
    return div;
  }
  function findingMarker(f, fresh) {
    const [lon, lat] = f.geometry.coordinates;
    const g = f.properties.office_grade;
    const m = L.circleMarker([lat, lon], {
      radius: g === 3 ? 9 : 7, color: "#222", weight: 1, fillColor: COLOURS[g], fillOpacity: 0.9, pane: "findings",
      className: `finding grade-${g}` + (fresh && g === 3 ? " fresh-urgent" : ""),
    });
    m.feature = f;
    m.bindPopup(() => popup(f.properties));
    return m;
  }
  let mode = "client";  // "server": the server groups the findings in view
  function fitOnce(latlngs) {
    if (fitted || !latlngs.length) return;
    fitted = true;
    map.fitBounds(L.latLngBounds(latlngs).pad(0.2));
  }
  async function loadFindings(q, inView) {
    const b = map.getBounds();
    const bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(6)).join(",");
    const where = inView ? `&bbox=${bbox}` : "";
    const cell = Math.max(1e-5, (b.getEast() - b.getWest()) / 40);
    const grid = await getJSON(`/api/clusters?${q}${where}&cell_deg=${cell}`);
    findingsLayer.clearLayers();
    serverClusters.clearLayers();
    if (grid.total > cfg.cluster_above) {
      mode = "server";
      for (const c of grid.clusters) {
        L.circleMarker([c.lat_deg, c.lon_deg], {
          radius: 8 + Math.log10(c.n) * 6, color: "#222", weight: 1, fillColor: COLOURS[c.max_grade], fillOpacity: 0.6,
          className: "server-cluster",
        }).bindTooltip(String(c.n), { permanent: true, direction: "center" }).addTo(serverClusters);
      }
      document.getElementById("count-findings").textContent = String(grid.total);
      latestReceived = grid.latest_received_utc || latestReceived;
      fitOnce(grid.clusters.map((c) => [c.lat_deg, c.lon_deg]));
      return;
    }
    mode = "client";
    const doc = await getJSON(`/api/findings?${q}${where}`);
    latestReceived = doc.latest_received_utc || latestReceived;
    const placed = doc.features.filter((f) => f.geometry);
    findingsLayer.addLayers(placed.map((f) => findingMarker(f, false)));
    document.getElementById("count-findings").textContent = String(doc.features.length);
    fitOnce(placed.map((f) => [f.geometry.coordinates[1], f.geometry.coordinates[0]]));
  }
  async function loadSites(q) {
    const doc = await getJSON(`/api/sites?${q}`);
    sitesLayer.clearLayers();
    for (const f of doc.features) {
      if (!f.geometry) continue;
      const [lon, lat] = f.geometry.coordinates;
      const g = f.properties.office_grade;
      L.marker([lat, lon], {
        icon: L.divIcon({ className: `site-icon grade-bg-${g}` + (f.properties.reopened ? " reopened" : ""), iconSize: [12, 12] }),
        keyboard: false,
      }).bindPopup(() => popup(f.properties)).addTo(sitesLayer);
    }
    document.getElementById("count-sites").textContent = String(doc.features.length);
  }
  async function loadTracks(q) {
    const doc = await getJSON(`/api/tracks?${q}`);
    tracksLayer.clearLayers();
    L.geoJSON(doc, { style: { color: "#6a3d9a", weight: 3, opacity: 0.7 } }).addTo(tracksLayer);
    document.getElementById("coverage-km").textContent = doc.coverage.driven_km.toFixed(2);
    if (doc.coverage.road_share != null) {
      document.getElementById("road-share-row").hidden = false;
      document.getElementById("road-share").textContent = (doc.coverage.road_share * 100).toFixed(1) + " %";
    }
  }
  async function refresh() {
    mapEl.dataset.ready = "0";
    const q = filterQuery().toString();
    document.getElementById("export-sites-csv").href = `/export/sites.csv?${q}`;
    document.getElementById("export-sites-geojson").href = `/export/sites.geojson?${q}`;
    await Promise.all([loadFindings(q, false), loadTracks(q)]);
    // Sites beside the findings only when these are few enough to draw one by one.
    if (mode === "client") await loadSites(q);
    else { sitesLayer.clearLayers(); document.getElementById("count-sites").textContent = "–"; }
    mapEl.dataset.ready = "1";
  }
  async function poll() {
    // New findings since the last look, added without a reload; urgent ones are announced.
    const q = filterQuery();
    q.set("received_after", latestReceived || "1970-01-01T00:00:00Z");
    const doc = await getJSON(`/api/findings?${q}`);
    if (!doc.features.length) return;
    latestReceived = doc.latest_received_utc;
    findingsLayer.addLayers(doc.features.filter((f) => f.geometry).map((f) => findingMarker(f, true)));
    const urgent = doc.features.filter((f) => f.properties.office_grade === 3).length;
    const count = document.getElementById("count-findings");
    count.textContent = String(Number(count.textContent) + doc.features.length);
    if (urgent) {
      const alert = document.getElementById("alert");
      alert.textContent = `${t.new_urgent}: ${urgent}`;
      alert.hidden = false;
    }
  }
  async function fillChoices() {
    const c = await getJSON("/api/choices");
    for (const [name, values] of [["vehicle", c.vehicles], ["model", c.models]]) {
      for (const v of values) {
        const o = document.createElement("option");
        o.value = v; o.textContent = v;
        form.elements[name].appendChild(o);
      }
    }
  }
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = filterQuery().toString();
    history.replaceState(null, "", q ? `?${q}` : location.pathname);
    refresh();
  });
  document.getElementById("clear").addEventListener("click", () => {
    fillForm(new URLSearchParams());
    history.replaceState(null, "", location.pathname);
    refresh();
  });
  map.on("moveend", () => {
    if (mapEl.dataset.ready === "1" && mode === "server") loadFindings(filterQuery().toString(), true);
  });
  fillChoices().then(() => {
    fillForm(new URLSearchParams(location.search));
    return refresh();
  });
  setInterval(() => { poll().catch(() => {}); }, cfg.poll_ms);
})();
