// The rram-lsm live page: polls api/state (the launcher's telemetry, launch/web.py) and
// draws it with plain DOM and canvas.  No library, no network access beyond the launcher.
"use strict";

const POLL_MS = 500;          // the page's poll period
const FRAME_MS = 100;         // source frames are played at most 10 a second
const RASTER_FRAMES = 8;      // a raster shows its last 8 frames side by side
const NODE_COLUMNS = [
  ["node", "node", null], ["kind", "kind", null], ["events_per_s", "events/s", 0],
  ["msgs_in", "msgs in", 0], ["msgs_out", "out", 0], ["latency_p50_us", "p50 µs", 0],
  ["latency_p99_us", "p99 µs", 0], ["age_p50_ms", "age p50 ms", 1], ["dropped", "dropped", 0],
  ["rejected", "rejected", 0], ["queue", "queue", 0], ["restarts", "restarts", 0],
];
const players = new Map();    // source node -> its canvas and frame queue
let profiles = null, everLoaded = false;

function el(tag, attrs = {}, text = null) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== null) e.textContent = text;
  return e;
}

function num(v, digits) {
  if (v === null || v === undefined) return "-";
  if (typeof v !== "number") return String(v);
  return v.toLocaleString("en-US", {minimumFractionDigits: digits, maximumFractionDigits: digits});
}

function pct(v) { return v === null || v === undefined ? "-" : (100 * v).toFixed(1) + "%"; }

function setStatus(text, cls) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.className = "status " + cls;
}

// --------------------------------------------------------------------------- nodes table
function renderNodes(state) {
  const table = document.getElementById("nodes");
  const key = state.profiles.join(",");
  if (profiles !== key) {
    profiles = key;
    const row = el("tr");
    for (const [, label] of NODE_COLUMNS) row.appendChild(el("th", {}, label));
    for (const p of state.profiles) {
      const th = el("th", {class: "energy", title: "energy per inference on the profile " + p}, p);
      th.appendChild(el("small", {}, "nJ / inference"));
      row.appendChild(th);
    }
    table.tHead.replaceChildren(row);
  }
  const rows = state.nodes.map((n) => {
    const tr = el("tr", {"data-node": n.node, "data-uptime": String(n.uptime_s)});
    if (n.final) tr.className = "final";
    for (const [col, , digits] of NODE_COLUMNS) {
      tr.appendChild(el("td", {"data-col": col}, digits === null ? n[col] : num(n[col], digits)));
    }
    for (const p of state.profiles) {
      const pj = n.energy_per_inference_pj[p];
      tr.appendChild(el("td", {"data-col": "energy:" + p}, pj === undefined ? "-" : num(pj / 1e3, 2)));
    }
    return tr;
  });
  table.tBodies[0].replaceChildren(...rows);
  document.getElementById("summary").replaceChildren(...state.summary.map((l) => el("li", {}, l)));
  document.getElementById("events").replaceChildren(...state.events.map((l) => el("li", {}, l)));
}

// --------------------------------------------------------------------------- accuracy
function poolBox(name, pool, chance) {
  const box = el("div", {class: "pool", "data-pool": name});
  box.appendChild(el("div", {class: "pool-name"}, name));
  box.appendChild(el("div", {class: "pool-value", "data-value": name}, pct(pool.accuracy)));
  let detail = `${pool.correct}/${pool.n}`;
  if (pool.ci95_exact) detail += ` · 95% CI ${pct(pool.ci95_exact[0])}–${pct(pool.ci95_exact[1])}`;
  box.appendChild(el("div", {class: "pool-detail"}, detail));
  const bar = el("div", {class: "bar"});
  const fill = el("div", {class: "fill"});
  fill.style.width = pct(pool.accuracy === null ? 0 : pool.accuracy);
  bar.appendChild(fill);
  if (chance) {
    const mark = el("div", {class: "chance", title: "chance " + pct(chance)});
    mark.style.left = pct(chance);
    bar.appendChild(mark);
  }
  box.appendChild(bar);
  return box;
}

function renderAccuracy(state) {
  const div = document.getElementById("accuracy");
  const a = state.accuracy;
  if (!a) return;
  const boxes = [poolBox("seen", a.seen, a.chance), poolBox("unseen", a.unseen, a.chance)];
  const h = el("div", {class: "pool", "data-pool": "H"});
  h.appendChild(el("div", {class: "pool-name"}, "H (harmonic mean)"));
  h.appendChild(el("div", {class: "pool-value", "data-value": "H"}, pct(a.h)));
  h.appendChild(el("div", {class: "pool-detail", "data-value": "chance"},
                   a.chance ? `chance ${pct(a.chance)} (1/${Math.round(1 / a.chance)} classes) for each` : "chance -"));
  boxes.push(h);
  div.replaceChildren(...boxes);
}

// --------------------------------------------------------------------------- predictions
function renderPredictions(state) {
  const rows = state.predictions.slice().reverse().map((p) => {
    const ok = p.label !== null && p.label !== undefined ? p.pred === p.label : null;
    const tr = el("tr", {class: ok === null ? "" : ok ? "ok" : "wrong"});
    const cells = [p.node, [p.source, p.modality].filter(Boolean).join(" · "), p.sample,
                   p.label === null ? "-" : p.label, (ok === null ? "" : ok ? "✓ " : "✗ ") + p.pred,
                   num(p.score, 3), p.topk.join(", ")];
    for (const c of cells) tr.appendChild(el("td", {}, String(c)));
    return tr;
  });
  document.querySelector("#predictions tbody").replaceChildren(...rows);
}

// --------------------------------------------------------------------------- sources
function pixels(frame) {
  const raw = atob(frame.data);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

function heat(v) {  // 0-255 -> a black-red-yellow-white ramp
  return [Math.min(255, v * 3), Math.max(0, Math.min(255, v * 3 - 255)), Math.max(0, v * 3 - 510)];
}

function player(src) {
  let p = players.get(src.node);
  if (p) return p;
  const fig = el("figure", {class: "source", "data-source": src.node});
  const canvas = el("canvas", {width: "256", height: "256", "data-drawn": "0"});
  const caption = el("figcaption", {}, src.node);
  fig.append(canvas, caption);
  const box = document.getElementById("sources");
  if (players.size === 0) box.replaceChildren();
  box.appendChild(fig);
  p = {canvas, caption, queue: [], lastT: 0, columns: [], drawn: 0};
  players.set(src.node, p);
  return p;
}

function queueFrames(state) {
  for (const src of state.sources) {
    const p = player(src);
    for (const f of src.frames) {
      if (f.t > p.lastT) { p.queue.push(f); p.lastT = f.t; }
    }
    if (p.queue.length > 20) p.queue.splice(0, p.queue.length - 20);
  }
}

function drawImage(p, image, width, rows) {  // a rows x width uint8 image, scaled up, on p.canvas
  const small = new ImageData(width, rows);
  for (let i = 0; i < image.length; i++) {
    const [r, g, b] = heat(image[i]);
    small.data.set([r, g, b, 255], i * 4);
  }
  const off = document.createElement("canvas");
  off.width = width; off.height = rows;
  off.getContext("2d").putImageData(small, 0, 0);
  const ctx = p.canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, p.canvas.width, p.canvas.height);
  ctx.drawImage(off, 0, 0, p.canvas.width, p.canvas.height);
  p.drawn += 1;
  p.canvas.setAttribute("data-drawn", String(p.drawn));
}

function draw(p, frame) {
  const [rows, cols] = frame.shape;
  const data = pixels(frame);
  let width = cols, image;
  if (frame.view === "dvs") {
    image = data;
  } else {  // a raster: keep the last frames' columns, newest on the right
    for (let c = 0; c < cols; c++) {
      const column = new Uint8Array(rows);
      for (let r = 0; r < rows; r++) column[r] = data[r * cols + c];
      p.columns.push(column);
    }
    p.columns.splice(0, Math.max(0, p.columns.length - RASTER_FRAMES * cols));
    width = p.columns.length;
    image = new Uint8Array(rows * width);
    p.columns.forEach((column, c) => {
      for (let r = 0; r < rows; r++) image[(rows - 1 - r) * width + c] = column[r];  // channel 0 at the bottom
    });
  }
  drawImage(p, image, width, rows);
  const what = {dvs: "DVS events, accumulated", cochlea: "cochlea raster (channels × time)",
                neural: "neural raster (electrodes × time)"}[frame.view] || frame.view;
  p.caption.textContent = `${p.canvas.parentElement.dataset.source} · ${what} · ` +
                          `${frame.events.toLocaleString("en-US")} events in ${(frame.dt * 1000).toFixed(0)} ms`;
}

const reservoirs = new Map();  // lsm node -> its canvas

function renderReservoirs(state) {
  for (const res of state.reservoirs || []) {
    let r = reservoirs.get(res.node);
    if (!r) {
      const fig = el("figure", {class: "source reservoir", "data-reservoir": res.node});
      const canvas = el("canvas", {width: "160", height: "160", "data-drawn": "0"});
      const caption = el("figcaption", {}, res.node);
      fig.append(canvas, caption);
      const box = document.getElementById("reservoirs");
      if (reservoirs.size === 0) box.replaceChildren();
      box.appendChild(fig);
      r = {canvas, caption, lastT: 0, drawn: 0, columns: []};
      reservoirs.set(res.node, r);
    }
    const a = res.activity;
    if (a.t <= r.lastT) continue;
    r.lastT = a.t;
    drawImage(r, pixels(a), a.shape[1], a.shape[0]);
    r.caption.textContent = `${res.node} · ${a.neurons.toLocaleString("en-US")} neurons · mean rate ` +
      `${num(a.mean_rate, 3)} · silent ${pct(a.silent_frac)} · saturated ${pct(a.saturated_frac)}`;
  }
}

function playFrames() {
  for (const p of players.values()) {
    const frame = p.queue.shift();
    if (frame) draw(p, frame);
  }
}

// --------------------------------------------------------------------------- polling
function render(state) {
  document.getElementById("title").textContent = state.title;
  document.title = state.title + " · live";
  renderNodes(state);
  renderAccuracy(state);
  renderPredictions(state);
  queueFrames(state);
  renderReservoirs(state);
}

async function poll() {
  let wait = POLL_MS;
  try {
    const response = await fetch("api/state", {cache: "no-store"});
    if (!response.ok) throw new Error("HTTP " + response.status);
    const state = await response.json();
    render(state);
    window.rramState = state;  // what the page last drew (tests read it)
    everLoaded = true;
    setStatus("live · " + new Date(state.time * 1000).toLocaleTimeString(), "live");
  } catch (err) {
    wait = 2000;
    setStatus(everLoaded ? "disconnected: the run has ended" : "cannot reach the launcher", "down");
  }
  setTimeout(poll, wait);
}

setInterval(playFrames, FRAME_MS);
poll();
