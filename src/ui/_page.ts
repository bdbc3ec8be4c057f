/**
 * The page of `fabricd ui`: HTML and one ES module of plain DOM code, served
 * as they are (no build step), and part of the bundle, so the image of an
 * air-gapped site carries the UI too.
 * @module
 */

/** The login page: shown for a missing or wrong token, with no fabric data. */
export const LOGIN_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>fabricd ui: log in</title></head>
<body style="font-family: sans-serif; margin: 3em">
<h1 id="login">fabricd ui: log in</h1>
<p>Open the login URL that <code>fabricd ui</code> printed (it holds a one-time token),
or send the bearer token of <code>ui.token</code>.</p>
</body></html>
`;

/** The live page. */
export const PAGE_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>fabricd ui</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222 }
table { border-collapse: collapse; font-size: 14px }
th, td { padding: 3px 10px; text-align: left; border-bottom: 1px solid #eee }
tr.service { cursor: pointer }
tr.service:hover { background: #f4f8ff }
.state { font-weight: 600; padding: 1px 6px; border-radius: 3px; color: white }
.ALIVE { background: #2e7d32 } .SUSPECT { background: #f9a825 } .DEAD { background: #c62828 }
.RESTARTING, .LAUNCHING, .BOOTSTRAPPING, .CONFIGURING { background: #1565c0 }
.FAILED, .LOST { background: #6a1b9a } .STOPPED { background: #757575 }
.unreachable td { opacity: .5 } .tag { color: #c62828; font-size: 12px }
pre { background: #f7f7f7; padding: .6em; max-height: 18em; overflow: auto; font-size: 12px }
#status, #task-now { color: #666; font-size: 13px }
.key { display: inline-block; width: 12px; height: 3px; vertical-align: middle; margin: 0 4px 0 10px }
#task-chart { border: 1px solid #eee; font-size: 11px; fill: #666 }
</style></head>
<body>
<h1>fabricd</h1>
<p id="status">connecting...</p>
<table id="tree"><thead><tr><th>service</th><th>role</th><th>host</th><th>state</th>
<th>inc</th><th>heartbeat</th><th>uptime</th><th>restarts</th></tr></thead><tbody></tbody></table>
<h2>Tasks</h2>
<p id="task-now">no samples yet</p>
<svg id="task-chart" width="640" height="170" viewBox="0 0 640 170" role="img"
 aria-label="queue depth, running tasks, tasks done and failed per second"></svg>
<p id="task-keys"></p>
<h2>Pilots</h2><table id="pilots"><tbody></tbody></table>
<div id="detail"></div>
<script type="module" src="/app.js"></script>
</body></html>
`;

/**
 * The page's code: records from /api/services, live changes from /api/events,
 * the task chart (inline SVG) from /api/tasks every 2 s.
 */
export const APP_JS = `const records = new Map();
let skew = 0;
let selected = null;
const $ = (s) => document.querySelector(s);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e[k] = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : String(k));
  return e;
};
const age = (ms) => ms < 0 ? "-" : ms < 60000 ? (ms / 1000).toFixed(1) + "s" :
  ms < 3600000 ? Math.round(ms / 60000) + "m" : (ms / 3600000).toFixed(1) + "h";
const now = () => Date.now() + skew;
const down = (r) => ["DEAD", "SUSPECT", "LOST", "FAILED", "STOPPED"].includes(r.state);

function render() {
  const list = [...records.values()];
  const ids = new Set(list.map((r) => r.id));
  const kids = new Map();
  for (const r of list) kids.set(r.parent, [...(kids.get(r.parent) || []), r]);
  const body = $("#tree tbody");
  body.replaceChildren();
  // A request passes every service from the first bridge on its route down:
  // below a bridge, a service that is down cuts off its subtree.
  const visit = (r, depth, cut, relayed) => {
    const tr = el("tr", { class: "service" + (cut ? " unreachable" : ""), "data-id": r.id,
      "data-state": r.state, "data-incarnation": r.incarnation, onclick: () => show(r.id) },
      el("td", {}, "\\u00a0".repeat(depth * 3) + r.id, cut ? el("span", { class: "tag" }, " unreachable") : ""),
      el("td", {}, r.role), el("td", {}, r.host),
      el("td", {}, el("span", { class: "state " + r.state }, r.state)),
      el("td", { class: "inc" }, r.incarnation),
      el("td", {}, r.lastHeartbeat ? age(now() - r.lastHeartbeat) + " ago" : "-"),
      el("td", {}, r.state === "ALIVE" ? age(now() - r.started) : "-"),
      el("td", {}, r.restarts));
    body.append(tr);
    const below = relayed || r.role === "bridge";
    for (const c of kids.get(r.id) || []) visit(c, depth + 1, cut || (below && down(r)), below);
  };
  for (const r of list.filter((r) => !ids.has(r.parent))) visit(r, 0, false, false);
}

async function json(path, init) {
  const answer = await fetch(path, init);
  const body = await answer.json();
  if (!answer.ok) throw new Error(body.error || answer.status);
  return body;
}

async function load() {
  const answer = await json("/api/services");
  skew = answer.now - Date.now();
  records.clear();
  for (const r of answer.services) records.set(r.id, r);
  render();
}

async function show(id) {
  selected = id;
  const d = await json("/api/services/" + id);
  const act = (action) => async () => {
    if (!confirm(action + " " + id + "?")) return;
    try { await json("/api/services/" + id + "/" + action, { method: "POST", headers: { "x-fabricd-ui": "1" } }); }
    catch (e) { alert(e.message); }
  };
  $("#detail").replaceChildren(el("h2", {}, id + " (" + d.record.role + ")"),
    el("button", { onclick: act("restart") }, "restart"), " ",
    el("button", { onclick: act("stop") }, "stop"),
    el("h3", {}, "Transitions"),
    el("table", {}, ...d.transitions.map((t) => el("tr", {},
      el("td", {}, new Date(t.at).toLocaleTimeString()), el("td", {}, t.from || "-"), el("td", {}, "->"),
      el("td", {}, el("span", { class: "state " + t.to }, t.to)), el("td", {}, "inc " + t.incarnation),
      el("td", {}, t.reason)))),
    el("h3", {}, "Log tail"), el("pre", {}, d.log || "(no local log)"));
}

async function pilots() {
  const { pilots } = await json("/api/pilots").catch(() => ({ pilots: [] }));
  $("#pilots tbody").replaceChildren(...(pilots.length ? pilots.map((p) => el("tr", {},
    el("td", {}, p.id), el("td", {}, p.manager), el("td", {}, p.state),
    el("td", {}, p.batch ? "job " + (p.batch.jobId || "") : "-"), el("td", {}, p.reason || ""))) :
    [el("tr", {}, el("td", {}, "no pilots"))]));
}

const SVG = "http://www.w3.org/2000/svg";
const svg = (tag, attrs = {}, ...kids) => {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const k of kids) e.append(String(k));
  return e;
};
const SERIES = [["depth", "#1565c0", "depth"], ["running", "#f9a825", "running"],
  ["done", "#2e7d32", "done/s"], ["failed", "#c62828", "failed/s"]];
const num = (v) => Number.isInteger(v) ? String(v) : v.toFixed(1);

function chart(samples) {
  const W = 640, H = 170, L = 44, R = 10, T = 10, B = 22;
  const last = samples[samples.length - 1];
  const top = Math.max(1, ...samples.flatMap((s) => SERIES.map(([k]) => s[k])));
  const t0 = samples.length ? samples[0].at : 0;
  const span = Math.max(1, (last ? last.at : 1) - t0);
  const x = (t) => (L + (t - t0) / span * (W - L - R)).toFixed(1);
  const y = (v) => (H - B - v / top * (H - B - T)).toFixed(1);
  const kids = [
    svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#bbb" }),
    svg("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#bbb" }),
    svg("text", { x: L - 4, y: T + 8, "text-anchor": "end" }, num(top)),
    svg("text", { x: L - 4, y: H - B, "text-anchor": "end" }, "0"),
    svg("text", { x: L, y: H - 6 }, samples.length > 1 ? "-" + age(span) : ""),
    svg("text", { x: W - R, y: H - 6, "text-anchor": "end" }, "now"),
  ];
  for (const [k, color] of SERIES) {
    kids.push(svg("polyline", { class: "series-" + k, fill: "none", stroke: color, "stroke-width": 1.5,
      points: samples.map((s) => x(s.at) + "," + y(s[k])).join(" ") }));
  }
  const chartEl = $("#task-chart");
  chartEl.replaceChildren(...kids);
  chartEl.setAttribute("data-samples", samples.length);
  chartEl.setAttribute("data-depth", last ? last.depth : "");
  $("#task-now").textContent = last
    ? SERIES.map(([k, , label]) => label + " " + num(last[k])).join(", ") : "no samples yet";
}

async function tasks() {
  const { samples } = await json("/api/tasks").catch(() => ({ samples: [] }));
  chart(samples);
}

function follow() {
  const source = new EventSource("/api/events");
  source.onopen = () => { $("#status").textContent = "live"; load(); };
  source.onerror = () => { $("#status").textContent = "reconnecting..."; };
  const apply = (m) => {
    const e = JSON.parse(m.data);
    records.set(e.record.id, e.record);
    render();
    if (selected === e.record.id) show(selected);
  };
  source.addEventListener("transition", apply);
  source.addEventListener("sessions", apply);
  source.addEventListener("removed", (m) => {
    records.delete(JSON.parse(m.data).record.id);
    render();
  });
}

load().then(follow, (e) => { $("#status").textContent = "error: " + e.message; });
$("#task-keys").replaceChildren(...SERIES.flatMap(([, color, label]) =>
  [el("span", { class: "key", style: "background:" + color }), label]));
pilots();
tasks();
setInterval(tasks, 2000);
setInterval(render, 1000);
// Heartbeats move no record on the change stream: read the records again for their ages.
setInterval(() => load().catch(() => {}), 5000);
setInterval(pilots, 10000);
`;
