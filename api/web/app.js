// greenq dashboard: fetches /v1 JSON and draws, per region, the carbon
// forecast with the planned and running jobs on it. No framework.
"use strict";

const REFRESH_S = 15;
const SVG = "http://www.w3.org/2000/svg";

// A token may be passed once as #token=… and is kept in localStorage.
function token() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    localStorage.setItem("greenq-token", decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname);
  }
  return localStorage.getItem("greenq-token");
}

function authHeaders() {
  const headers = {};
  const t = token();
  if (t) headers.Authorization = "Bearer " + t;
  return headers;
}

async function api(path) {
  const res = await fetch(path, { headers: authHeaders() });
  const body = await res.json();
  if (!res.ok) throw new Error((body.error && body.error.message) || res.statusText);
  return body;
}

function el(tag, attrs, text) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

const fmt = (x, d = 1) => (x || 0).toLocaleString(undefined, { maximumFractionDigits: d });
const hhmm = (t) => new Date(t).toISOString().slice(5, 16).replace("T", " ");

function totals(sum, plan) {
  const box = document.getElementById("totals");
  box.replaceChildren();
  const items = [
    [sum.deferred, "jobs deferred"],
    [(sum.by_state.running || 0), "running"],
    [fmt(sum.emitted_gco2) + " g", "gCO2e emitted"],
    [fmt(sum.saved_gco2) + " g", "gCO2e saved"],
    [fmt(plan.totals.saved_gco2) + " g", "gCO2e to save (planned)"],
    [fmt(sum.energy_kwh, 2), "kWh used"],
  ];
  for (const [v, label] of items) {
    const d = el("div", { class: "total" });
    d.append(el("b", {}, String(v)), el("span", {}, label));
    box.append(d);
  }
}

// chart draws one region: intensity curve (actual solid, forecast dashed),
// a "now" line, one lane per job with its deadline marked.
function chart(region, series, jobs, now) {
  const W = 900, H = 180, L = 44, R = 10, T = 10, lane = 22;
  const height = H + jobs.length * lane + 24;
  const svg = el("svg:svg", { class: "chart", viewBox: `0 0 ${W} ${height}`, role: "img", "aria-label": `forecast for ${region}` });
  const pts = series.points || [];
  let t0 = now - 12 * 3600e3, t1 = now + 48 * 3600e3;
  for (const p of pts) { t0 = Math.min(t0, Date.parse(p.start)); t1 = Math.max(t1, Date.parse(p.end)); }
  for (const j of jobs) { t1 = Math.max(t1, Date.parse(j.deadline), j.end ? Date.parse(j.end) : 0); }
  const vmax = Math.max(1, ...pts.map((p) => p.gco2_per_kwh)) * 1.1;
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + H - 20 - (v / vmax) * (H - 20 - T);

  svg.append(el("svg:line", { class: "axis", x1: L, x2: W - R, y1: y(0), y2: y(0) }));
  for (let i = 0; i <= 4; i++) {
    const v = (vmax / 4) * i;
    svg.append(el("svg:text", { class: "tick", x: 2, y: y(v) + 4 }, fmt(v, 0)));
  }
  for (let t = Math.ceil(t0 / 21600e3) * 21600e3; t <= t1; t += 21600e3) {
    svg.append(el("svg:text", { class: "tick", x: x(t) - 20, y: H - 2 }, hhmm(t).slice(6)));
  }
  for (const kind of ["actual", "forecast"]) {
    let d = "";
    for (const p of pts) {
      const isActual = p.kind === "actual";
      if ((kind === "actual") !== isActual) continue;
      const a = Date.parse(p.start), b = Date.parse(p.end);
      d += `${d ? "L" : "M"}${x(a).toFixed(1)},${y(p.gco2_per_kwh).toFixed(1)}L${x(b).toFixed(1)},${y(p.gco2_per_kwh).toFixed(1)}`;
    }
    if (d) {
      const path = el("svg:path", { class: kind, d });
      path.append(el("svg:title", {}, kind === "actual" ? "measured intensity" : "forecast intensity"));
      svg.append(path);
    }
  }
  svg.append(el("svg:line", { class: "now", x1: x(now), x2: x(now), y1: T, y2: height - 4 }));
  svg.append(el("svg:text", { class: "tick", x: x(now) + 3, y: T + 10 }, "now"));

  jobs.forEach((j, i) => {
    const yy = H + i * lane;
    const a = Date.parse(j.start), b = Date.parse(j.end);
    const rect = el("svg:rect", { class: "job " + j.state, x: x(a), y: yy, width: Math.max(2, x(b) - x(a)), height: lane - 6 });
    rect.append(el("svg:title", {}, `${j.name} (${j.state}) ${hhmm(a)}–${hhmm(b)} · ${fmt(j.expected_gco2)} gCO2e · ${j.reason || ""}`));
    svg.append(rect);
    const dl = Date.parse(j.deadline);
    const line = el("svg:line", { class: "deadline", x1: x(dl), x2: x(dl), y1: yy - 2, y2: yy + lane - 4 });
    line.append(el("svg:title", {}, `deadline of ${j.name}: ${hhmm(dl)}`));
    svg.append(line);
    const lx = Math.min(x(b) + 4, W - 160);
    svg.append(el("svg:text", { class: "job-name", x: lx, y: yy + lane - 10 }, j.name));
  });
  return svg;
}

function jobRows(entries) {
  const body = document.querySelector("#jobs tbody");
  body.replaceChildren();
  for (const j of entries) {
    const tr = el("tr");
    tr.append(
      el("td", {}, j.name || j.id), el("td", {}, j.state), el("td", {}, j.region || "—"),
      el("td", {}, j.start ? hhmm(j.start) : "—"), el("td", {}, hhmm(j.deadline)),
      el("td", { class: "num" }, fmt(j.expected_gco2)), el("td", { class: "num" }, fmt(j.saved_gco2)),
      el("td", {}, j.reason || ""));
    const log = el("td");
    if (j.id) log.append(el("a", { href: "#log=" + encodeURIComponent(j.id), class: "log-link" }, "log"));
    tr.append(log);
    body.append(tr);
  }
}

async function refresh() {
  const err = document.getElementById("error");
  try {
    const [plan, regions, sum, running] = await Promise.all([
      api("/v1/plan"), api("/v1/regions"), api("/v1/summary"), api("/v1/jobs?state=running&limit=200"),
    ]);
    const now = Date.parse(plan.generated_at);
    const entries = plan.jobs.slice();
    for (const j of running.jobs) {
      const start = j.run ? j.run.started_at : (j.plan && j.plan.start);
      if (!start) continue;
      entries.push({
        id: j.id, name: j.name, state: j.state, region: (j.run && j.run.region) || (j.plan && j.plan.region),
        start, end: new Date(Date.parse(start) + j.duration_estimate_s * 1000).toISOString(),
        deadline: j.deadline, expected_gco2: j.plan ? j.plan.expected_gco2 : 0,
        saved_gco2: j.plan ? j.plan.baseline.expected_gco2 - j.plan.expected_gco2 : 0, reason: j.plan ? j.plan.reason : "",
      });
    }
    totals(sum, plan);
    const main = document.getElementById("regions");
    const sections = [];
    for (const r of regions.regions) {
      const series = await api(`/v1/forecasts/${encodeURIComponent(r.name)}?hours=48&past=12`).catch(() => ({ points: [] }));
      const here = entries.filter((j) => j.region === r.name && j.start);
      const sec = el("section", { class: "region", id: "region-" + r.name });
      sec.append(el("h2", {}, r.name + " "));
      sec.firstChild.append(el("small", {}, `${r.zone} · ${series.source || "no forecast"} · PUE ${r.pue} · $${r.gpu_price_usd_per_hour}/GPU-h · ${r.capacity} GPUs · ${here.length} jobs`));
      sec.append(chart(r.name, series, here, now));
      sections.push(sec);
    }
    main.replaceChildren(...sections);
    jobRows(entries);
    document.getElementById("updated").textContent = new Date().toLocaleTimeString();
    err.hidden = true;
  } catch (e) {
    err.textContent = "Could not load: " + e.message + (String(e.message).includes("token") ? " — open /#token=YOUR_TOKEN once." : "");
    err.hidden = false;
  }
  setTimeout(refresh, REFRESH_S * 1000);
}

// The log view: #log=ID shows a job's output (GET /v1/jobs/{id}/logs) and,
// while the job runs, polls with ?offset= for what it writes next.
let logView = null;

async function pollLog(view) {
  const pre = document.getElementById("log-text"), state = document.getElementById("log-state");
  try {
    const res = await fetch(`/v1/jobs/${encodeURIComponent(view.id)}/logs?offset=${view.offset}`, { headers: authHeaders() });
    if (view !== logView) return;
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      throw new Error((body.error && body.error.message) || res.statusText);
    }
    let text = view.decoder.decode(new Uint8Array(await res.arrayBuffer()), { stream: true });
    // Output cut before it was read comes as a marker line; when the answer
    // starts with it, the line break before it is ours to add.
    if (Number(res.headers.get("X-Greenq-Log-Skipped")) > 0 && text.startsWith("… ") && view.last && view.last !== "\n") text = "\n" + text;
    if (text) {
      pre.append(document.createTextNode(text));
      view.last = text.slice(-1);
    }
    view.offset = Number(res.headers.get("X-Greenq-Log-Offset")) || view.offset;
    const final = res.headers.get("X-Greenq-Job-Final") === "true";
    state.textContent = (res.headers.get("X-Greenq-Job-State") || "") + (final ? "" : " · following");
    if (!final) view.timer = setTimeout(() => pollLog(view), 2000);
  } catch (e) {
    if (view === logView) state.textContent = "could not load the log: " + e.message;
  }
}

function showLog() {
  if (logView) clearTimeout(logView.timer);
  logView = null;
  const sec = document.getElementById("log");
  const m = location.hash.match(/^#log=(.+)$/);
  if (!m) {
    sec.hidden = true;
    return;
  }
  logView = { id: decodeURIComponent(m[1]), offset: 0, last: "", decoder: new TextDecoder() };
  document.getElementById("log-title").textContent = "Log of " + logView.id;
  document.getElementById("log-state").textContent = "";
  document.getElementById("log-text").replaceChildren();
  sec.hidden = false;
  sec.scrollIntoView();
  pollLog(logView);
}

window.addEventListener("hashchange", showLog);
document.getElementById("every").textContent = REFRESH_S;
refresh();
showLog();
