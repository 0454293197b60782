// The page's behaviour: upload an image to /api/predict and /api/search, draw the class
// probabilities, the neighbours and the latent map (docs/serve.md describes the API).
"use strict";

const $ = (id) => document.getElementById(id);
let library = null; // GET /api/library
let query = null; // the query's [x, y] on the map
let target = "t-peri";

const timeName = () => (target === "t-peri" ? "t − t_peri" : "t");
const fmt = (v, d = 0) => (v === null || v === undefined ? "–" : Number(v).toFixed(d));

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function api(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

async function loadModel() {
  const m = await api("/api/model");
  target = m.target;
  $("model").textContent =
    `model ${m.model} · ${m.class_t_myr.length} classes of ${timeName()} ` +
    `(${fmt(m.class_t_myr[0])}…${fmt(m.class_t_myr[m.class_t_myr.length - 1])} Myr) · ` +
    `library of ${m.library_size} simulated images`;
}

async function loadLibrary() {
  library = await api("/api/library");
  const r = library.explained_variance_ratio;
  $("map-caption").textContent +=
    ` Axes: principal components 1 and 2 (${fmt(100 * r[0], 1)}% and ${fmt(100 * r[1], 1)}% of the variance).`;
  drawMap();
}

// smallest and largest of many values (the spread operator overflows the stack on big libraries)
const range = (values) => values.reduce(([lo, hi], v) => [Math.min(lo, v), Math.max(hi, v)], [Infinity, -Infinity]);

// the map's data bounds and the transform from latent-map coordinates to canvas pixels
function mapTransform(canvas) {
  const xs = library.points.map((p) => p.xy[0]);
  const ys = library.points.map((p) => p.xy[1]);
  if (query) { xs.push(query[0]); ys.push(query[1]); }
  const [x0, x1] = range(xs);
  const [y0, y1] = range(ys);
  const pad = 16;
  const sx = (canvas.width - 2 * pad) / (x1 - x0 || 1);
  const sy = (canvas.height - 2 * pad) / (y1 - y0 || 1);
  return (xy) => [pad + (xy[0] - x0) * sx, canvas.height - pad - (xy[1] - y0) * sy];
}

function colour(t, lo, hi) {
  const f = hi > lo ? (t - lo) / (hi - lo) : 0.5;
  return `hsl(${240 - 240 * f}, 75%, 45%)`;
}

function drawMap() {
  if (!library) return;
  const canvas = $("map");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const at = mapTransform(canvas);
  const times = library.points.map((p) => p.time_myr).filter((t) => t !== null);
  const [lo, hi] = range(times);
  for (const p of library.points) {
    const [x, y] = at(p.xy);
    ctx.fillStyle = p.time_myr === null ? "#999" : colour(p.time_myr, lo, hi);
    ctx.fillRect(x - 1.5, y - 1.5, 3, 3);
  }
  if (query) {
    const [x, y] = at(query);
    ctx.fillStyle = "#000";
    ctx.font = "22px sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText("★", x, y);
  }
}

async function pick(event) {
  if (!library) return;
  const canvas = $("map");
  const box = canvas.getBoundingClientRect();
  const cx = ((event.clientX - box.left) * canvas.width) / box.width;
  const cy = ((event.clientY - box.top) * canvas.height) / box.height;
  const at = mapTransform(canvas);
  let best = null;
  let bestD = Infinity;
  for (const p of library.points) {
    const [x, y] = at(p.xy);
    const d = (x - cx) ** 2 + (y - cy) ** 2;
    if (d < bestD) { bestD = d; best = p; }
  }
  if (!best || bestD > 15 ** 2) return;
  try {
    const e = await api(`/api/library/${best.index}`);
    $("picked-image").src = e.image;
    $("picked-caption").textContent =
      `${e.id} · class ${fmt(e.label)} · ${timeName()} ${fmt(e.time_myr)} Myr`;
    $("picked").hidden = false;
  } catch (err) {
    showError(err.message);
  }
}

function drawChart(p) {
  const svg = $("chart");
  const [w, h, left, bottom] = [600, 220, 40, 30];
  const n = p.probabilities.length;
  const top = range(p.probabilities)[1] || 1;
  const bw = (w - left - 10) / n;
  let out = "";
  p.probabilities.forEach((v, i) => {
    const bh = ((h - bottom - 10) * v) / top;
    out += `<rect x="${left + i * bw}" y="${h - bottom - bh}" width="${Math.max(bw - 1, 1)}" height="${bh}" fill="#3a5bd9"><title>${fmt(p.class_t_myr[i])} Myr: ${fmt(100 * v, 1)}%</title></rect>`;
  });
  const first = p.class_t_myr[0];
  const last = p.class_t_myr[n - 1];
  out += `<line x1="${left}" y1="${h - bottom}" x2="${w - 10}" y2="${h - bottom}" stroke="#333"/>`;
  out += `<text x="${left}" y="${h - 10}" font-size="12">${fmt(first)} Myr</text>`;
  out += `<text x="${w - 10}" y="${h - 10}" font-size="12" text-anchor="end">${fmt(last)} Myr</text>`;
  out += `<text x="${(w + left) / 2}" y="${h - 10}" font-size="12" text-anchor="middle">${timeName()} (class)</text>`;
  out += `<text x="4" y="14" font-size="12">p max ${fmt(100 * top, 1)}%</text>`;
  svg.innerHTML = out;
}

function showPrediction(p) {
  $("preview").src = p.preview_png;
  $("query-name").textContent = p.name;
  $("time").textContent = `${timeName()} = ${fmt(p.time_myr)} ± ${fmt(p.sigma_myr)} Myr`;
  drawChart(p);
  $("prediction").hidden = false;
}

function showNeighbours(s) {
  const r = s.recommendation;
  $("estimate").textContent = r.estimate
    ? `Mean of the ${r.estimate.count} neighbours: ${timeName()} = ${fmt(r.estimate.mean_myr)} ± ${fmt(r.estimate.std_myr)} Myr`
    : "No neighbour has a time.";
  const gallery = $("gallery");
  gallery.replaceChildren();
  r.neighbours.forEach((n, rank) => {
    const fig = document.createElement("figure");
    fig.className = "neighbour";
    const img = document.createElement("img");
    img.src = n.image;
    img.alt = n.id;
    const cap = document.createElement("figcaption");
    const t = target === "t-peri" ? n.t_peri_myr : n.t_myr;
    cap.textContent = `${rank + 1}. ${n.id} · class ${fmt(n.label)} · ${timeName()} ${fmt(t)} Myr · d ${fmt(n.distance, 3)} · SSIM ${fmt(n.ssim, 3)}`;
    fig.append(img, cap);
    gallery.append(fig);
  });
  $("neighbours").hidden = false;
  query = s.map_xy;
  drawMap();
}

async function upload(file) {
  showError("");
  $("status").textContent = `reading ${file.name}…`;
  const bytes = await file.arrayBuffer();
  const name = encodeURIComponent(file.name);
  try {
    const [p, s] = await Promise.all([
      api(`/api/predict?name=${name}`, { method: "POST", body: bytes }),
      api(`/api/search?name=${name}&k=6`, { method: "POST", body: bytes }),
    ]);
    showPrediction(p);
    showNeighbours(s);
    $("status").textContent = `${file.name}: done`;
  } catch (err) {
    $("status").textContent = "";
    showError(err.message);
  }
}

$("file").addEventListener("change", (e) => { if (e.target.files[0]) upload(e.target.files[0]); });
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files[0]) upload(e.dataTransfer.files[0]);
});
$("map").addEventListener("click", pick);
loadModel().then(loadLibrary).catch((err) => showError(err.message));
