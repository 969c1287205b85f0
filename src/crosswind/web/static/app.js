// crosswind dashboard: polls /api/status (figures, every second) and /api/dashboard
// (charts, history, every two seconds) on this origin; draws its own SVG charts.
// Everything from the server is written with textContent, never as HTML.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#2756c5", "#d97706", "#059669", "#9333ea", "#dc2626", "#0891b2", "#4b5563"];
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "class") node.className = v; else node.setAttribute(k, String(v));
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function svgEl(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  return node;
}

function fmtInt(n) { return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"); }
function fmtS(s) {
  if (s === null || s === undefined) return "–";
  const v = Number(s);
  if (v >= 120) return (v / 60).toFixed(1) + " min";
  return v.toFixed(v < 10 ? 2 : 1) + " s";
}
function fmtBytes(b) {
  if (b === null || b === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = Number(b), i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i ? v.toFixed(1) : v.toFixed(0)) + " " + units[i];
}
function fmtPct(p) { return p === null || p === undefined ? "–" : Number(p).toFixed(3) + " %"; }
function fmtTime(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  if (isNaN(d)) return String(iso);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
function setValue(id, text, value) {
  const node = $(id);
  node.textContent = text;
  if (value !== undefined) node.dataset.value = value === null ? "" : String(value);
}
function replaceRows(tbody, rows, empty, cols) {
  tbody.replaceChildren(...(rows.length ? rows :
    [el("tr", {}, el("td", {colspan: cols, class: "muted"}, empty))]));
}

// -- figures from /api/status ----------------------------------------------------------
function renderStatus(st) {
  const running = st.service && st.service.running;
  const phase = $("phase");
  phase.textContent = st.phase;
  phase.dataset.value = st.phase;
  phase.className = "pill " + (st.phase === "pre_cutover" || st.phase === "post_cutover" ? "ok" : "warn");
  setValue("direction", st.direction, st.direction);
  const svc = $("service");
  svc.textContent = running ? "service running" : (st.service.figures === "last known" ? "service stopped · last known figures" : "service not running");
  svc.className = "pill " + (running ? "ok" : "bad");
  svc.dataset.value = running ? "running" : "stopped";

  const slo = st.slo || {};
  setValue("t-lag", fmtS(st.lag_p99_s), st.lag_p99_s);
  $("t-lag").parentElement.classList.toggle("bad", !!slo.breached);
  $("t-slo").textContent = slo.target_s ? `SLO ${fmtS(slo.target_s)}${slo.breached ? " — breached" : ""}` : "SLO –";

  const streams = st.streams || [];
  const applied = streams.reduce((a, s) => a + (s.applied || 0), 0);
  const backlog = streams.reduce((a, s) => a + (s.backlog || 0), 0);
  setValue("t-applied", fmtInt(applied), applied);
  setValue("t-backlog", fmtInt(backlog), backlog);
  const pending = (st.pending || {});
  $("t-pending").textContent = `pending ${fmtInt(pending.keys)} · oldest ${fmtS(pending.oldest_s)}`;
  let bytes = 0;
  for (const d of Object.values(st.objects || {})) bytes += ((d.copied || {}).bytes || 0);
  setValue("t-bytes", fmtBytes(bytes), bytes);
  setValue("t-dlq", fmtInt(st.dlq_open), st.dlq_open);
  $("t-dlq").parentElement.classList.toggle("bad", (st.dlq_open || 0) > 0);

  const alerts = st.alerts || {};
  const firing = alerts.firing || [];
  setValue("t-alerts", String(firing.length), firing.length);
  $("t-alerts").parentElement.classList.toggle("bad", firing.length > 0);
  $("t-alertnames").textContent = firing.length ? [...new Set(firing.map((a) => a.alert))].join(", ") : "none";
  renderAlerts(alerts);

  const rows = streams.map((s) => {
    const lag = s.lag_s || {};
    return el("tr", {"data-stream": s.name},
      el("td", {}, s.name), el("td", {}, s.kind),
      el("td", {class: "n", "data-field": "backlog", "data-value": s.backlog ?? ""}, fmtInt(s.backlog)),
      el("td", {class: "n", "data-field": "applied", "data-value": s.applied}, fmtInt(s.applied)),
      el("td", {class: "n" + (s.failed ? " bad" : ""), "data-field": "failed", "data-value": s.failed}, fmtInt(s.failed)),
      el("td", {class: "n", "data-field": "held", "data-value": s.held}, fmtInt(s.held)),
      el("td", {class: "n", "data-field": "lag", "data-value": lag.p99},
        [lag.p50, lag.p95, lag.p99, lag.max].map((v) => (v ?? 0).toFixed(2)).join(" / ")),
      el("td", {}, fmtTime(s.last_event_at)));
  });
  replaceRows($("streams"), rows, running ? "no streams yet" : "the service is not running", 8);

  const activity = [];
  if (st.reconciling) activity.push("reconciling now (both sides listed and compared)");
  if (st.last_reconcile) activity.push(`last reconcile ${fmtTime(st.last_reconcile.at)}: drift ${st.last_reconcile.drift}`);
  if (st.validation) activity.push(`scheduled validation: ${st.validation.verdict} (${fmtTime(st.validation.at)})`);
  if (st.switch && st.switch.running && st.switch.current) activity.push(`a ${st.switch.current.kind || "switch"} is running`);
  if (st.errors && st.errors.length) activity.push(`service loop errors: ${st.errors.length}`);
  $("activity").textContent = activity.join(" · ");

  const chips = Object.entries(st.breakers || {}).map(([ep, state]) =>
    el("span", {class: "chip " + state, "data-endpoint": ep, "data-value": state}, `${ep}: ${state}`));
  $("breakers").replaceChildren(...(chips.length ? chips : [el("span", {class: "muted"}, "no endpoints yet")]));

  const reqRows = [];
  const eps = ((st.requests || {}).endpoints) || {};
  for (const [ep, e] of Object.entries(eps)) {
    for (const [op, o] of Object.entries(e.operations || {})) {
      const count = Object.values(o.outcomes || {}).reduce((a, n) => a + n, 0);
      const ratio = o.ratio;
      reqRows.push(el("tr", {"data-endpoint": ep, "data-operation": op},
        el("td", {}, ep), el("td", {}, op),
        el("td", {class: "n"}, o.latency_s === null || o.latency_s === undefined ? "–" : (o.latency_s * 1000).toFixed(1)),
        el("td", {class: "n"}, o.baseline_s === null || o.baseline_s === undefined ? "–" : (o.baseline_s * 1000).toFixed(1)),
        el("td", {class: "n" + (ratio >= 1.2 ? " bad" : "")}, ratio === null || ratio === undefined ? "–" : ratio.toFixed(2)),
        el("td", {class: "n", "data-value": count}, fmtInt(count))));
    }
  }
  replaceRows($("requests"), reqRows, "no requests yet", 6);
  const w = st.workers || {};
  const cap = [];
  if (w.concurrency) cap.push(`appliers busy ${w.busy} of ${w.concurrency}`);
  for (const [ep, e] of Object.entries(eps)) {
    if (e.pool_size) cap.push(`${ep} pool ${e.in_flight} / ${e.pool_size}`);
    if (e.auth_failures) cap.push(`${ep} auth failures ${e.auth_failures}`);
  }
  $("capacity").textContent = cap.join(" · ");
  const sw = st.switch || {};
  $("switch-now").textContent = sw.running && sw.current ?
    `running now: ${sw.current.kind || sw.current.request} (plan ${String(sw.current.plan_hash || "").slice(0, 12)}…) since ${fmtTime(sw.current.started_at)}` :
    (sw.auto_rollback ? `automatic rollback: ${sw.auto_rollback}` : "");
}

function renderAlerts(alerts) {
  const firing = (alerts.firing || []).map((a) => el("li", {"data-alert": a.alert},
    `${a.alert}${Object.keys(a.labels || {}).length ? " " + JSON.stringify(a.labels) : ""}: ${a.summary} — ${a.value} ${a.op} ${a.threshold}, since ${fmtTime(a.since)}`));
  $("alerts").replaceChildren(...(firing.length ? firing : [el("li", {class: "none"}, "no alert is firing")]));
  const recent = (alerts.recent || []).slice(0, 8).map((t) => el("li", {class: t.status === "resolved" ? "resolved" : ""},
    `${fmtTime(t.at)} ${t.alert} ${t.status}${Object.keys(t.labels || {}).length ? " " + JSON.stringify(t.labels) : ""}`));
  $("alerts-recent").replaceChildren(...(recent.length ? recent : [el("li", {class: "none"}, "nothing yet")]));
}

// -- charts, history and timeline from /api/dashboard -------------------------------------
function lineChart(svg, lines, opts) {
  const W = svg.clientWidth || 600, H = svg.clientHeight || 220;
  const pad = {l: 52, r: 12, t: 18, b: 22};
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.replaceChildren();
  const pts = lines.flatMap((l) => l.points);
  if (!pts.length) {
    svg.append(Object.assign(svgEl("text", {x: W / 2, y: H / 2, "text-anchor": "middle"}), {textContent: "no data yet"}));
    return;
  }
  const t0 = Math.min(...pts.map((p) => p[0])), t1 = Math.max(...pts.map((p) => p[0]), t0 + 1);
  const dataMax = Math.max(...pts.map((p) => p[1]));
  // a threshold far above the data would flatten it: drawn only when near
  const threshold = opts.threshold && opts.threshold <= Math.max(dataMax * 3, opts.min || 0)
    ? opts.threshold : null;
  if (opts.onThreshold) opts.onThreshold(threshold !== null);
  let vmax = Math.max(dataMax, threshold || 0, opts.min || 0);
  vmax = vmax > 0 ? vmax * 1.15 : 1;
  const x = (t) => pad.l + (t - t0) / (t1 - t0) * (W - pad.l - pad.r);
  const y = (v) => H - pad.b - v / vmax * (H - pad.t - pad.b);
  for (let i = 0; i <= 4; i++) {
    const v = vmax * i / 4, yy = y(v);
    svg.append(svgEl("line", {x1: pad.l, x2: W - pad.r, y1: yy, y2: yy, class: "grid-line"}));
    svg.append(Object.assign(svgEl("text", {x: pad.l - 6, y: yy + 4, "text-anchor": "end"}), {textContent: opts.fmt(v)}));
  }
  const clock = (t) => new Date(t * 1000).toLocaleTimeString("en-GB", {hour12: false});
  svg.append(Object.assign(svgEl("text", {x: pad.l, y: H - 6}), {textContent: clock(t0)}));
  svg.append(Object.assign(svgEl("text", {x: W - pad.r, y: H - 6, "text-anchor": "end"}), {textContent: clock(t1)}));
  if (threshold) {
    const yy = y(threshold);
    svg.append(svgEl("line", {x1: pad.l, x2: W - pad.r, y1: yy, y2: yy, class: "threshold"}));
  }
  let lx = pad.l;
  lines.forEach((l, i) => {
    const color = COLORS[i % COLORS.length];
    if (l.points.length) {
      svg.append(svgEl("polyline", {fill: "none", stroke: color, "stroke-width": 2,
        points: l.points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" "),
        "data-series": l.name}));
    }
    svg.append(svgEl("rect", {x: lx, y: 4, width: 10, height: 10, fill: color}));
    const label = Object.assign(svgEl("text", {x: lx + 14, y: 13}), {textContent: l.name});
    svg.append(label);
    lx += 24 + 7 * l.name.length;
  });
}

function seriesOf(points, key) {
  const names = new Set();
  for (const p of points) for (const n of Object.keys(p[key] || {})) names.add(n);
  return [...names].sort().map((name) => ({name, points: points
    .filter((p) => p[key] && p[key][name] !== null && p[key][name] !== undefined)
    .map((p) => [p.t, Number(p[key][name])])}));
}

function renderTimeline(svg, sw) {
  const W = svg.clientWidth || 600, H = svg.clientHeight || 40;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.replaceChildren();
  const steps = ((sw && sw.steps) || []).filter((s) => s.started_at);
  if (!steps.length) {
    svg.append(Object.assign(svgEl("text", {x: 4, y: 24}), {textContent: "no cutover or rollback yet"}));
    return;
  }
  const t = (iso) => new Date(iso).getTime();
  const t0 = Math.min(...steps.map((s) => t(s.started_at)));
  const t1 = Math.max(...steps.map((s) => t(s.finished_at || s.started_at)), t0 + 1);
  const colors = {ok: "#1a7f37", failed: "#c62828", skipped: "#9ca3af", undone: "#b26b00"};
  for (const s of steps) {
    const a = (t(s.started_at) - t0) / (t1 - t0) * (W - 8) + 4;
    const b = (t(s.finished_at || s.started_at) - t0) / (t1 - t0) * (W - 8) + 4;
    const bar = svgEl("rect", {x: a, y: 6, width: Math.max(3, b - a), height: 26, rx: 3,
      fill: s.outcome ? (colors[s.outcome] || "#4b5563") : "#2756c5", "data-step": s.name});
    const title = svgEl("title", {});
    title.textContent = `${s.name}: ${s.outcome || "running"} ${s.duration_s !== undefined && s.duration_s !== null ? "(" + s.duration_s + " s)" : ""}`;
    bar.append(title);
    svg.append(bar);
    if (b - a > 70) svg.append(Object.assign(svgEl("text", {x: a + 4, y: 23, class: "on-bar"}), {textContent: s.name}));
  }
}

function renderDashboard(d) {
  const points = d.series || [];
  const slo = points.length ? points[points.length - 1].slo_s : null;
  lineChart($("chart-lag"), seriesOf(points, "lag_p99_s"), {threshold: slo, fmt: (v) => v.toFixed(v < 10 ? 1 : 0) + "s",
    onThreshold: (shown) => { $("lag-slo-note").textContent = slo ? `(SLO ${fmtS(slo)}${shown ? ", dashed" : ", far above the lag"})` : ""; }});
  lineChart($("chart-rate"), seriesOf(points, "throughput"), {fmt: (v) => v.toFixed(v < 10 ? 1 : 0)});
  lineChart($("chart-backlog"), seriesOf(points, "backlog"), {fmt: (v) => v.toFixed(0)});
  const last = points[points.length - 1];
  if (last) {
    const rate = Object.values(last.throughput || {}).reduce((a, v) => a + v, 0);
    $("t-rate").textContent = `${rate.toFixed(1)} /s`;
    $("t-bps").textContent = `${fmtBytes(last.bytes_per_s)}/s`;
  }
  const one = ((d.oneshot || {}).objects) || [];
  const sumOf = (outcome, field) => one.filter((r) => r.outcome === outcome).reduce((a, r) => a + (r[field] || 0), 0);
  setValue("t-oneshot", fmtInt(sumOf("copied", "count")), sumOf("copied", "count"));
  $("t-oneshot-sub").textContent = `${fmtBytes(sumOf("copied", "bytes"))} · failed ${fmtInt(sumOf("failed", "count"))}`;
  const dlq = d.dlq || {};
  const kinds = Object.entries(dlq.by_kind || {});
  $("t-dlqkinds").textContent = kinds.length ? kinds.map(([k, n]) => `${k} ${n}`).join(", ") : "empty";
  replaceRows($("dlq"), kinds.map(([k, n]) => el("tr", {"data-kind": k}, el("td", {}, k), el("td", {class: "n", "data-value": n}, fmtInt(n)))), "empty", 2);

  const sws = d.switches || {};
  const rows = ["cutover", "rollback"].filter((k) => sws[k]).map((k) => {
    const r = sws[k];
    return el("tr", {"data-switch": k}, el("td", {}, k + (r.rehearsal ? " (rehearsal)" : "")),
      el("td", {class: r.status === "succeeded" ? "ok" : "bad"}, r.status),
      el("td", {}, fmtTime(r.finished_at)), el("td", {class: "n"}, r.duration_s ?? "–"),
      el("td", {class: "n", "data-value": r.rto_s ?? ""}, r.rto_s ?? "–"));
  });
  replaceRows($("switches"), rows, "no switch yet", 5);
  const rb = sws.rollback;
  setValue("t-rto", rb && rb.rto_s !== null && rb.rto_s !== undefined ? fmtS(rb.rto_s) : "–", rb ? rb.rto_s : null);
  $("t-cutover").textContent = sws.cutover ? `cutover ${fmtS(sws.cutover.duration_s)} (${sws.cutover.status})` : "no cutover yet";
  renderTimeline($("timeline"), d.timeline || sws.rollback || sws.cutover);

  const vrows = (d.validation_history || []).slice(0, 12).map((v) => el("tr", {"data-run": v.id},
    el("td", {}, v.id), el("td", {}, v.direction), el("td", {}, fmtTime(v.finished_at || v.started_at)),
    el("td", {class: v.verdict === "pass" ? "ok" : (v.verdict === "running" ? "" : "bad")}, v.verdict),
    el("td", {class: "n", "data-value": v.completeness_pct ?? ""}, fmtPct(v.completeness_pct)),
    el("td", {class: "n", "data-value": v.pass_rate_pct ?? ""}, fmtPct(v.pass_rate_pct)),
    el("td", {class: "n"}, fmtInt(v.items))));
  replaceRows($("validations"), vrows, "no validation yet", 7);
  $("version").textContent = d.version ? `crosswind ${d.version}` : "";
}

// -- polling ---------------------------------------------------------------------------
let statusBusy = false, dashBusy = false;
async function poll(url, render) {
  const res = await fetch(url, {cache: "no-store", credentials: "same-origin"});
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  render(await res.json());
}
async function tickStatus() {
  if (statusBusy) return;
  statusBusy = true;
  try {
    await poll("/api/status", renderStatus);
    $("conn").className = "dot ok";
    $("updated").textContent = "updated " + new Date().toLocaleTimeString("en-GB", {hour12: false});
    document.body.dataset.statusAt = String(Date.now());
  } catch (err) {
    $("conn").className = "dot bad";
    $("updated").textContent = "cannot reach crosswind: " + err.message;
  } finally { statusBusy = false; }
}
async function tickDashboard() {
  if (dashBusy) return;
  dashBusy = true;
  try { await poll("/api/dashboard", renderDashboard); document.body.dataset.dashboardAt = String(Date.now()); }
  catch (err) { /* the status poll reports the connection */ }
  finally { dashBusy = false; }
}
tickStatus(); tickDashboard();
setInterval(tickStatus, 1000);
setInterval(tickDashboard, 2000);
