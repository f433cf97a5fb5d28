// The review queue: one finding at a time, most urgent first, with keyboard triage.
// j/→ next, k/← previous, 1/2/3 correct to that grade (with the ticked types), c confirm,
// x not damage. The URL keeps the filter (and ?id= opens one finding).
"use strict";
(function () {
  const { cfg, t, COLOURS, getJSON, postJSON, gradeLabel, text } = RP;
  const root = document.getElementById("queue");
  const photo = document.getElementById("photo");
  const canvas = document.getElementById("boxes");
  const status = document.getElementById("q-status");
  const params = new URLSearchParams(location.search);
  const wanted = params.get("id");
  params.delete("id");
  if (!params.has("state") && !wanted) params.set("state", "unreviewed");
  let ids = [];
  let pos = 0;
  let current = null;
  const mini = L.map("minimap", { zoomControl: false, attributionControl: !!cfg.tiles_url, maxZoom: cfg.max_zoom });
  RP.tileLayer(mini);
  const miniLayer = L.layerGroup().addTo(mini);
  mini.setView(cfg.center, 16);

  const typeBox = document.getElementById("q-type-choice");
  for (const code of cfg.types) {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox"; box.name = "types"; box.value = code; box.id = `type-${code}`;
    label.appendChild(box);
    label.append(` ${code} ${t[code]}`);
    typeBox.appendChild(label);
  }

  function drawBoxes() {
    canvas.width = photo.clientWidth;
    canvas.height = photo.clientHeight;
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!current) return;
    ctx.lineWidth = 2;
    ctx.font = "14px sans-serif";
    for (const d of current.damages) {
      const [x0, y0, x1, y1] = d.box_norm;
      ctx.strokeStyle = COLOURS[d.grade];
      ctx.strokeRect(x0 * canvas.width, y0 * canvas.height, (x1 - x0) * canvas.width, (y1 - y0) * canvas.height);
      ctx.fillStyle = COLOURS[d.grade];
      ctx.fillText(`${d.type_code} ${d.score.toFixed(2)}`, x0 * canvas.width + 3, y0 * canvas.height + 15);
    }
  }
  photo.addEventListener("load", drawBoxes);

  async function show(i) {
    if (!ids.length) {
      text(document.getElementById("q-title"), t.queue_empty);
      root.dataset.ready = "1";
      return;
    }
    pos = Math.max(0, Math.min(i, ids.length - 1));
    root.dataset.ready = "0";
    current = await getJSON(`/api/findings/${ids[pos]}`);
    root.dataset.findingId = current.id;
    text(document.getElementById("q-title"), `${gradeLabel(current.office_grade)} · ${current.id.slice(0, 8)}`);
    text(document.getElementById("q-grade"), `${gradeLabel(current.office_grade)} (${current.office_grade}; ${t.vehicle} ${current.grade})`);
    text(document.getElementById("q-types"), current.reviewed_types || current.type_codes || "–");
    const best = Math.max(0, ...current.damages.map((d) => d.score));
    text(document.getElementById("q-score"), best.toFixed(2));
    text(document.getElementById("q-captured"), current.captured_at_utc);
    text(document.getElementById("q-vehicle"), `${current.vehicle_id} · ${current.model_id}`);
    const verdict = current.review_verdict || "unreviewed";
    text(document.getElementById("q-state"), t[verdict] + (current.reviewed_by ? ` (${current.reviewed_by})` : ""));
    text(document.getElementById("q-pos"), `${pos + 1} / ${ids.length}`);
    const types = (current.reviewed_types || current.type_codes || "").split(",");
    typeBox.querySelectorAll("input").forEach((b) => { b.checked = types.includes(b.value); });
    document.getElementById("q-note").value = "";
    if (current.has_image) { photo.src = `/images/${current.id}.jpg`; photo.hidden = false; }
    else { photo.removeAttribute("src"); photo.hidden = true; drawBoxes(); }
    miniLayer.clearLayers();
    if (current.lat_deg != null) {
      L.circleMarker([current.lat_deg, current.lon_deg], { radius: 8, fillColor: COLOURS[current.office_grade], fillOpacity: 0.9, color: "#222" }).addTo(miniLayer);
      mini.setView([current.lat_deg, current.lon_deg], 17);
    }
    const others = document.getElementById("q-others");
    others.replaceChildren();
    for (const o of current.other_sightings) {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = `/queue?id=${o.id}`;
      a.textContent = `${o.captured_at_utc} · ${o.vehicle_id} · ${gradeLabel(o.grade)}`;
      li.appendChild(a);
      others.appendChild(li);
    }
    const sites = document.getElementById("q-sites");
    sites.replaceChildren();
    for (const s of current.site_ids) {
      const a = document.createElement("a");
      a.href = `/sites/${s}`; a.textContent = `${t.open_site} ${s}`; a.className = "site-link";
      sites.appendChild(a);
      sites.append(" ");
    }
    root.dataset.ready = "1";
  }

  async function review(verdict, grade) {
    if (!current || !cfg.can_review) return;
    const body = { finding_id: current.id, verdict, note: document.getElementById("q-note").value };
    if (verdict === "corrected") {
      body.grade = grade;
      body.type_codes = [...typeBox.querySelectorAll("input:checked")].map((b) => b.value);
    }
    try {
      await postJSON("/api/reviews", body);
      text(status, t.saved);
      status.className = "ok";
      await show(pos + 1 < ids.length ? pos + 1 : pos);
    } catch (e) {
      text(status, e.message);
      status.className = "error";
    }
  }

  document.getElementById("btn-confirm").addEventListener("click", () => review("confirmed"));
  document.getElementById("btn-dismiss").addEventListener("click", () => review("not_damage"));
  document.querySelectorAll(".grade-btn").forEach((b) => b.addEventListener("click", () => review("corrected", Number(b.dataset.grade))));
  document.getElementById("btn-next").addEventListener("click", () => show(pos + 1));
  document.getElementById("btn-prev").addEventListener("click", () => show(pos - 1));
  document.addEventListener("keydown", (e) => {
    if (e.target instanceof HTMLInputElement && e.target.type !== "checkbox") return;  // typing a note
    const keys = {
      j: () => show(pos + 1), ArrowRight: () => show(pos + 1), k: () => show(pos - 1), ArrowLeft: () => show(pos - 1),
      1: () => review("corrected", 1), 2: () => review("corrected", 2), 3: () => review("corrected", 3),
      c: () => review("confirmed"), x: () => review("not_damage"),
    };
    if (keys[e.key]) { e.preventDefault(); keys[e.key](); }
  });

  (async function start() {
    ids = wanted ? [wanted] : await getJSON(`/api/queue?${params}`);
    if (wanted) {
      const rest = await getJSON(`/api/queue?${params}`);
      ids = [wanted, ...rest.filter((i) => i !== wanted)];
    }
    await show(0);
  })();
})();
