// greenq dashboard: fetches /v1 JSON and draws every region's carbon
// intensity on one shared scale, then each region with the jobs planned
// and running on it, the jobs waiting and the latest finished with their
// receipts. No framework.
"use strict";

const REFRESH_S = 15;
const SVG = "http://www.w3.org/2000/svg";
const UNIT = "gCO2e/kWh";
const PAST_H = 12, AHEAD_H = 48;
const PALETTE = ["#2e8b57", "#3b7dd8", "#8e44ad", "#d35400", "#16a085", "#7f8c8d", "#c0392b", "#2c3e50"];

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

// num formats a quantity as people read it: three significant digits, no
// exponent, no "-0" (2.78e-16 is "0"; a real amount below three decimals
// is "<0.001").
function num(x) {
  x = Number(x) || 0;
  const a = Math.abs(x);
  if (a < 1e-9) return "0";
  if (a < 0.0005) return x > 0 ? "<0.001" : ">-0.001";
  const digits = a >= 100 ? 0 : Math.min(3, 2 - Math.floor(Math.log10(a)));
  return x.toLocaleString("en-US", { maximumFractionDigits: digits, useGrouping: false });
}
const energy = (kwh) => (Math.abs(kwh) < 1 ? num(kwh * 1000) + " Wh" : num(kwh) + " kWh");

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const pad = (n) => String(n).padStart(2, "0");
const hm = (t) => { const d = new Date(t); return pad(d.getHours()) + ":" + pad(d.getMinutes()); };
const day = (t) => { const d = new Date(t); return `${DAYS[d.getDay()]} ${d.getDate()} ${MONTHS[d.getMonth()]}`; };
const when = (t) => (t ? day(t) + " " + hm(t) : "—");

function duration(s) {
  s = Math.max(0, Math.round(s));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + (s % 60 ? (s % 60) + "s" : "");
  return Math.floor(s / 3600) + "h" + (Math.floor(s % 3600 / 60) ? Math.floor(s % 3600 / 60) + "m" : "");
}

function shellQuote(argv) {
  return (argv || []).map((a) => (a === "" ? "''" : /^[A-Za-z0-9_\-./:=@%+,^]+$/.test(a) ? a : "'" + a.replace(/'/g, "'\\''") + "'")).join(" ");
}

// jobLink names a job and links to its details in the page.
function jobLink(j) {
  return el("a", { href: "#job=" + encodeURIComponent(j.id), class: "job-link" }, j.name || j.id);
}
function logLink(id) {
  return el("a", { href: "#log=" + encodeURIComponent(id), class: "log-link" }, "log");
}

function totals(sum, plan) {
  const box = document.getElementById("totals");
  box.replaceChildren();
  const items = [
    [sum.deferred, "jobs deferred"],
    [(sum.by_state.running || 0), "running"],
    [num(sum.emitted_gco2) + " g", "gCO2e emitted"],
    [num(sum.saved_gco2) + " g", "gCO2e saved"],
    [num(sum.saved_by_waiting_gco2 || 0) + " g", "saved by waiting"],
    [num(sum.saved_by_moving_gco2 || 0) + " g", "saved by moving"],
    ["$" + Number(sum.cost_usd || 0).toFixed(2), "spent (measured)"],
    [num(plan.totals.saved_gco2) + " g", "gCO2e to save (planned)"],
    [energy(sum.energy_kwh), "used"],
  ];
  for (const [v, label] of items) {
    const d = el("div", { class: "total" });
    d.append(el("b", {}, String(v)), el("span", {}, label));
    box.append(d);
  }
}

// swatch is a legend's small drawing.
function swatch(draw) {
  const s = el("svg:svg", { width: 30, height: 14, viewBox: "0 0 30 14", "aria-hidden": "true" });
  draw(s);
  return s;
}

function legend(regions) {
  const box = document.getElementById("legend");
  box.replaceChildren();
  const item = (key, label, draw) => {
    const span = el("span", { class: "item", "data-key": key });
    span.append(swatch(draw), el("span", {}, label));
    box.append(span);
  };
  item("history", "history (measured): solid", (s) => s.append(el("svg:path", { class: "actual", d: "M1,7H29" })));
  item("forecast", "forecast: dashed", (s) => s.append(el("svg:path", { class: "forecast", d: "M1,7H29" })));
  item("now", "now", (s) => s.append(el("svg:line", { class: "now", x1: 15, x2: 15, y1: 0, y2: 14 })));
  item("planned", "planned job (bar: its window)", (s) => s.append(el("svg:rect", { class: "job planned", x: 2, y: 3, width: 26, height: 8 })));
  item("running", "running job", (s) => s.append(el("svg:rect", { class: "job running", x: 2, y: 3, width: 26, height: 8 })));
  item("deadline", "deadline (tick)", (s) => s.append(el("svg:line", { class: "deadline", x1: 15, x2: 15, y1: 1, y2: 13 })));
  regions.forEach((r, i) => item("region-" + r, r, (s) => s.append(el("svg:path", { class: "series", d: "M1,7H29", style: "stroke-width:3;stroke:" + PALETTE[i % PALETTE.length] }))));
}

// niceStep returns a round tick step for a range of v in about n steps.
function niceStep(v, n) {
  const raw = v / n, p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

// frame draws a chart's axes: y ticks with the unit, hour ticks every 6 h
// and a date under each midnight, in local time. It returns the scales.
function frame(svg, { W, top, plotH, L, R, t0, t1, vmax, now, bottomExtra }) {
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => top + plotH - (v / vmax) * plotH;
  const step = niceStep(vmax, 4);
  for (let v = 0; v <= vmax + 1e-9; v += step) {
    svg.append(el("svg:line", { class: v === 0 ? "axis" : "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    svg.append(el("svg:text", { class: "tick", x: L - 6, y: y(v) + 4, "text-anchor": "end" }, num(v)));
  }
  const unit = el("svg:text", { class: "unit", x: 0, y: 0, transform: `translate(13,${top + plotH / 2}) rotate(-90)`, "text-anchor": "middle" }, UNIT);
  svg.append(unit);
  const first = new Date(t0);
  first.setMinutes(0, 0, 0);
  const base = top + plotH;
  for (let t = first.getTime(); t <= t1; t += 3600e3) {
    const h = new Date(t).getHours();
    if (t < t0 || h % 6 !== 0) continue;
    svg.append(el("svg:line", { class: "axis", x1: x(t), x2: x(t), y1: base, y2: base + 4 }));
    svg.append(el("svg:text", { class: "tick", x: x(t), y: base + 16, "text-anchor": "middle" }, pad(h) + ":00"));
    if (h === 0) svg.append(el("svg:text", { class: "tick date", x: x(t), y: base + 31, "text-anchor": "middle" }, day(t)));
  }
  svg.append(el("svg:line", { class: "now", x1: x(now), x2: x(now), y1: top, y2: base + (bottomExtra || 0) }));
  svg.append(el("svg:text", { class: "tick", x: x(now) + 4, y: top + 11 }, "now"));
  return { x, y, base };
}

// seriesPaths draws a series as steps: measured points solid, forecast
// and estimates dashed.
function seriesPaths(svg, pts, x, y, cls, colour, title) {
  for (const kind of ["actual", "forecast"]) {
    let d = "";
    for (const p of pts) {
      if ((p.kind === "actual") !== (kind === "actual")) continue;
      const a = x(Date.parse(p.start)), b = x(Date.parse(p.end)), v = y(p.gco2_per_kwh);
      d += `${d ? "L" : "M"}${a.toFixed(1)},${v.toFixed(1)}L${b.toFixed(1)},${v.toFixed(1)}`;
    }
    if (!d) continue;
    const attrs = { class: (cls ? cls + " " : "") + kind, d };
    if (colour) attrs.style = "stroke:" + colour; // over the stylesheet's grey and green
    if (cls) attrs["data-region"] = title;
    const path = el("svg:path", attrs);
    path.append(el("svg:title", {}, `${title}: ${kind === "actual" ? "measured intensity (history)" : "forecast intensity"}`));
    svg.append(path);
  }
}

function chartWidth(container) {
  return Math.max(320, Math.floor(container.getBoundingClientRect().width) || 900);
}

// overview draws every region on one chart with one y scale, so the
// cleanest region can be read off it.
function overview(container, regions, seriesOf, range) {
  const W = chartWidth(container), H = 250, L = 58, R = 24, top = 10, plotH = H - top - 44;
  const svg = el("svg:svg", { class: "chart overview", width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "carbon intensity of every region on one scale" });
  const { x, y } = frame(svg, { W, top, plotH, L, R, ...range });
  regions.forEach((r, i) => {
    const pts = (seriesOf[r] || {}).points || [];
    seriesPaths(svg, pts, x, y, "series", PALETTE[i % PALETTE.length], r);
  });
  container.replaceChildren(svg);
}

// regionChart draws one region: intensity (history solid, forecast
// dashed) on the shared scale, and a lane per job with its deadline tick.
function regionChart(container, region, series, jobs, range) {
  const W = chartWidth(container), lane = 22, L = 58, R = 24, top = 10, plotH = 150;
  const height = top + plotH + 40 + jobs.length * lane + 6;
  const svg = el("svg:svg", { class: "chart", width: W, height, viewBox: `0 0 ${W} ${height}`, role: "img", "aria-label": `forecast for ${region}` });
  const { x, y, base } = frame(svg, { W, top, plotH, L, R, ...range, bottomExtra: 40 + jobs.length * lane });
  seriesPaths(svg, series.points || [], x, y, "", "", region);
  jobs.forEach((j, i) => {
    const yy = base + 40 + i * lane;
    const a = Math.max(Date.parse(j.start), range.t0), b = Math.min(Date.parse(j.end), range.t1);
    const rect = el("svg:rect", { class: "job " + j.state, x: x(a), y: yy, width: Math.max(2, x(b) - x(a)), height: lane - 6, rx: 3 });
    rect.append(el("svg:title", {}, `${j.name} (${j.state}) ${when(j.start)}–${hm(j.end)} · ${num(j.expected_gco2)} gCO2e · ${j.reason || ""}`));
    svg.append(rect);
    const dl = Math.min(Date.parse(j.deadline), range.t1);
    const line = el("svg:line", { class: "deadline", x1: x(dl), x2: x(dl), y1: yy - 2, y2: yy + lane - 4 });
    line.append(el("svg:title", {}, `deadline of ${j.name}: ${when(j.deadline)}`));
    svg.append(line);
    const right = x(b) + 4 < W - 150;
    svg.append(el("svg:text", { class: "job-name", x: right ? x(b) + 4 : x(a) - 4, y: yy + lane - 10, "text-anchor": right ? "start" : "end" }, j.name));
  });
  container.replaceChildren(svg);
}

function jobRows(entries) {
  const body = document.querySelector("#jobs tbody");
  body.replaceChildren();
  for (const j of entries) {
    const tr = el("tr");
    const name = el("td");
    name.append(jobLink(j));
    tr.append(name, el("td", {}, j.state), el("td", {}, j.region || "—"),
      el("td", {}, j.start ? when(j.start) : "—"), el("td", {}, when(j.deadline)),
      el("td", { class: "num" }, num(j.expected_gco2)), el("td", { class: "num" }, num(j.saved_gco2)),
      el("td", {}, j.reason || ""));
    const log = el("td");
    log.append(logLink(j.id));
    tr.append(log);
    body.append(tr);
  }
}

function finishedRows(jobs) {
  const body = document.querySelector("#finished tbody");
  body.replaceChildren();
  if (!jobs.length) {
    const tr = el("tr");
    tr.append(el("td", { colspan: 9, class: "note" }, "No job has finished yet."));
    body.append(tr);
  }
  for (const j of jobs) {
    const r = j.receipt || {}, run = j.run || {};
    const tr = el("tr", { "data-job": j.id });
    const name = el("td");
    name.append(jobLink(j));
    const log = el("td");
    log.append(logLink(j.id));
    tr.append(name, el("td", {}, j.state), el("td", {}, run.region || "—"), el("td", {}, when(run.finished_at || j.updated_at)),
      el("td", { class: "num" }, j.receipt ? energy(r.energy_kwh) : "—"),
      el("td", { class: "num" }, j.receipt ? num(r.intensity_gco2_per_kwh) : "—"),
      el("td", { class: "num" }, j.receipt ? num(r.gco2) : "—"),
      el("td", { class: "num" }, j.receipt ? num(r.saved_gco2) : "—"), log);
    body.append(tr);
  }
}

// greenest says which region is cleanest now and over the next hours.
function greenest(regions, seriesOf, now) {
  let bestNow = null, bestAhead = null;
  for (const r of regions) {
    for (const p of (seriesOf[r] || {}).points || []) {
      const a = Date.parse(p.start), b = Date.parse(p.end);
      if (a <= now && now < b && (!bestNow || p.gco2_per_kwh < bestNow.v)) bestNow = { r, v: p.gco2_per_kwh };
      if (b > now && a < now + AHEAD_H * 3600e3 && (!bestAhead || p.gco2_per_kwh < bestAhead.v)) bestAhead = { r, v: p.gco2_per_kwh, t: Math.max(a, now) };
    }
  }
  const parts = [];
  if (bestNow) parts.push(`Cleanest now: ${bestNow.r} (${num(bestNow.v)} ${UNIT}).`);
  if (bestAhead) parts.push(`Cleanest in the next ${AHEAD_H} h: ${bestAhead.r} from ${when(bestAhead.t)} (${num(bestAhead.v)} ${UNIT}).`);
  document.getElementById("greenest").textContent = parts.join(" ");
}

let last = null; // the latest data, redrawn on resize

function draw() {
  if (!last) return;
  const { plan, regions, sum, entries, finished, seriesOf, now } = last;
  const names = regions.regions.map((r) => r.name);
  let vmax = 1;
  for (const r of names) for (const p of (seriesOf[r] || {}).points || []) vmax = Math.max(vmax, p.gco2_per_kwh);
  vmax = Math.ceil((vmax * 1.08) / niceStep(vmax * 1.08, 4)) * niceStep(vmax * 1.08, 4);
  const range = { t0: now - PAST_H * 3600e3, t1: now + AHEAD_H * 3600e3, vmax, now };
  totals(sum, plan);
  legend(names);
  overview(document.getElementById("overview"), names, seriesOf, range);
  greenest(names, seriesOf, now);
  const main = document.getElementById("regions");
  const sections = regions.regions.map((r) => {
    const series = seriesOf[r.name] || { points: [] };
    const here = entries.filter((j) => j.region === r.name && j.start);
    const sec = el("section", { class: "region", id: "region-" + r.name });
    const h = el("h2", {}, r.name + " ");
    h.append(el("small", {}, `${r.zone} · ${series.source || "no forecast"} · PUE ${num(r.pue)} · $${Number(r.gpu_price_usd_per_hour).toFixed(2)}/GPU-h · ${r.capacity} GPUs · ${here.length} ${here.length === 1 ? "job" : "jobs"}`));
    const chartBox = el("div", { class: "chart-box" });
    sec.append(h, chartBox);
    return { sec, chartBox, r, series, here };
  });
  main.replaceChildren(...sections.map((s) => s.sec));
  for (const s of sections) regionChart(s.chartBox, s.r.name, s.series, s.here, range);
  jobRows(entries);
  finishedRows(finished);
}

async function refresh() {
  const err = document.getElementById("error");
  try {
    const [plan, regions, sum, running, succeeded, failed] = await Promise.all([
      api("/v1/plan"), api("/v1/regions"), api("/v1/summary"), api("/v1/jobs?state=running&limit=200"),
      api("/v1/jobs?state=succeeded&limit=20"), api("/v1/jobs?state=failed&limit=20"),
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
    const finishedAt = (j) => Date.parse((j.run && j.run.finished_at) || j.updated_at) || 0;
    const finished = succeeded.jobs.concat(failed.jobs).sort((a, b) => finishedAt(b) - finishedAt(a)).slice(0, 20);
    const seriesOf = {};
    await Promise.all(regions.regions.map(async (r) => {
      seriesOf[r.name] = await api(`/v1/forecasts/${encodeURIComponent(r.name)}?hours=${AHEAD_H}&past=${PAST_H}`).catch(() => ({ points: [] }));
    }));
    last = { plan, regions, sum, entries, finished, seriesOf, now };
    draw();
    document.getElementById("updated").textContent = new Date().toLocaleTimeString();
    document.getElementById("zone").textContent = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
    err.hidden = true;
  } catch (e) {
    err.textContent = "Could not load: " + e.message + (String(e.message).includes("token") ? " — open /#token=YOUR_TOKEN once." : "");
    err.hidden = false;
  }
  setTimeout(refresh, REFRESH_S * 1000);
}

// The job view: #job=ID shows one job with its plan, run and receipt.
async function showJob(id) {
  const sec = document.getElementById("job"), dl = document.getElementById("job-fields");
  document.getElementById("job-title").textContent = "Job " + id;
  dl.replaceChildren();
  sec.hidden = false;
  sec.scrollIntoView();
  const row = (k, v) => {
    if (v === undefined || v === null || v === "") return;
    const dd = el("dd");
    if (v instanceof Node) dd.append(v); else dd.textContent = v;
    dl.append(el("dt", {}, k), dd);
  };
  try {
    const j = await api("/v1/jobs/" + encodeURIComponent(id));
    const p = j.plan, run = j.run, r = j.receipt;
    row("name", j.name);
    row("state", j.state + (j.error ? ": " + j.error : ""));
    row("command", shellQuote(j.command));
    row("gpus", String(j.gpus));
    if (j.group) row("sweep", `${j.group} (trial ${j.trial})`);
    row("submitted", when(j.submitted_at));
    row("deadline", when(j.deadline));
    if (p) {
      row("plan", `${p.region} from ${when(p.start)}, ${num(p.expected_gco2)} gCO2e, $${Number(p.expected_cost_usd).toFixed(2)}`);
      row("run now", `${p.baseline.region} (home), ${num(p.baseline.expected_gco2)} gCO2e`);
      row("reason", p.reason);
    }
    if (run) row("run", `${run.region} on ${run.worker} from ${when(run.started_at)}` + (run.finished_at ? ` to ${when(run.finished_at)}` : "") + (run.exit_code !== undefined && run.exit_code !== null ? `, exit code ${run.exit_code}` : ""));
    if (r) {
      row("energy", `${energy(r.energy_kwh)} (${r.energy_source}), PUE ${num(r.pue)}`);
      row("intensity", `${num(r.intensity_gco2_per_kwh)} ${UNIT}` + (r.intensity_source ? ` (${r.intensity_source})` : ""));
      row("emitted", num(r.gco2) + " gCO2e");
      row("saved", `${num(r.saved_gco2)} gCO2e against running at once (${num(r.baseline_gco2)})` + (r.baseline_region ? ` in ${r.baseline_region}, the home region` : "") +
        `: waiting saved ${num(r.saved_by_waiting_gco2 || 0)}, moving ${num(r.saved_by_moving_gco2 || 0)}`);
      if (r.gpu_hours !== undefined) row("cost", `$${Number(r.cost_usd || 0).toFixed(2)} for ${num(r.gpu_hours)} GPU-hours run`);
      if (r.restated_at) row("restated", `from actuals on ${when(r.restated_at)} (${num(r.gco2_at_finish)} gCO2e at finish)`);
      if (r.sci) row("SCI", `${num(r.sci)} gCO2e per ${r.functional_unit || "run"}`);
    }
    row("output", logLink(j.id));
  } catch (e) {
    row("error", "could not load the job: " + e.message);
  }
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

function showLog(id) {
  logView = { id, offset: 0, last: "", decoder: new TextDecoder() };
  document.getElementById("log-title").textContent = "Log of " + id;
  document.getElementById("log-state").textContent = "";
  document.getElementById("log-text").replaceChildren();
  const sec = document.getElementById("log");
  sec.hidden = false;
  sec.scrollIntoView();
  pollLog(logView);
}

function onHash() {
  if (logView) clearTimeout(logView.timer);
  logView = null;
  document.getElementById("log").hidden = true;
  document.getElementById("job").hidden = true;
  const m = location.hash.match(/^#(log|job)=(.+)$/);
  if (!m) return;
  const id = decodeURIComponent(m[2]);
  if (m[1] === "log") showLog(id); else showJob(id);
}

let resizeTimer = null;
window.addEventListener("resize", () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(draw, 150); });
window.addEventListener("hashchange", onHash);
document.getElementById("every").textContent = REFRESH_S;
refresh();
onHash();
