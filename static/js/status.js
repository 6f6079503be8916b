// Entry module of the status page: stream connections refreshed from the
// feed.status group (every 2 s).
import { fmtTime, resolveZone } from "./format.js";
import { market } from "./socket.js";

// Desk-wide times (no instrument): the display zone, New York for "exchange".
const zone = resolveZone();

const connBody = document.querySelector("#connections tbody");
const healthBody = document.querySelector("#feed-health tbody");
const opsBody = document.querySelector("#ops-alerts tbody");
const SVG = "http://www.w3.org/2000/svg";
const SPARK_W = 120;
const SPARK_H = 24;
const workerBody = document.querySelector("#workers tbody");
const suspectBody = document.querySelector("#suspect-ticks tbody");
const feedOk = document.getElementById("feed-ok");
const updated = document.getElementById("feed-updated");

function cell(tag, text, cls) {
  const el = document.createElement(tag);
  el.textContent = text ?? "—";
  if (cls) el.className = cls;
  return el;
}
const fixed = (v, d = 1) => (typeof v === "number" ? v.toFixed(d) : "—");

// Inline SVG sparkline of the last hour (one point per 30 s, see streaming/monitor.py).
function sparkline(values, label) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  svg.setAttribute("viewBox", `0 0 ${SPARK_W} ${SPARK_H}`);
  svg.setAttribute("width", SPARK_W);
  svg.setAttribute("height", SPARK_H);
  const known = values.map((v, i) => [i, v]).filter(([, v]) => typeof v === "number");
  const top = Math.max(...known.map(([, v]) => v), 0) || 1;
  const step = SPARK_W / Math.max(1, values.length - 1);
  const line = document.createElementNS(SVG, "polyline");
  if (known.length > 1) {
    line.setAttribute(
      "points",
      known.map(([i, v]) => `${(i * step).toFixed(1)},${(SPARK_H - 1 - ((SPARK_H - 2) * v) / top).toFixed(1)}`).join(" "),
    );
  }
  svg.append(line);
  return svg;
}

function renderHealth(connections) {
  const rows = connections.map((c) => {
    const tr = document.createElement("tr");
    tr.dataset.connection = c.id;
    const th = cell("th", c.id, "mono");
    th.scope = "row";
    const h = c.health;
    const score = cell("td", h ? `${h.value}${h.healthy ? "" : " unhealthy"}` : "—", `num ${h && h.healthy ? "ok" : "bad"}`);
    score.dataset.score = "";
    const history = c.history || [];
    const rate = cell("td", ` ${fixed(c.msgs_per_s?.frames)}`);
    rate.prepend(sparkline(history.map((p) => p[1]), "messages per second, last hour"));
    const lag = cell("td", ` ${fixed(c.lag_ms?.p99, 0)} ms`);
    lag.prepend(sparkline(history.map((p) => p[2]), "lag p99, last hour"));
    tr.append(th, cell("td", c.provider), score, cell("td", (h?.reasons || []).join("; ")), rate, lag);
    return tr;
  });
  if (rows.length) healthBody.replaceChildren(...rows);
}

// Suspect ticks (streaming.suspect): held out of bars / confirmed / rejected.
function suspectCell(counts) {
  const td = cell("td", `${counts?.suspect ?? 0} / ${counts?.confirmed ?? 0} / ${counts?.rejected ?? 0}`, "num");
  td.dataset.suspect = "";
  return td;
}

function renderSuspects(workers) {
  if (!suspectBody) return;
  const rows = [];
  for (const w of workers) {
    for (const [symbol, n] of Object.entries(w.suspect_ticks || {})) {
      const tr = document.createElement("tr");
      tr.dataset.symbol = symbol;
      const th = cell("th", symbol);
      th.scope = "row";
      tr.append(th, cell("td", w.id, "mono"), ...["suspect", "confirmed", "rejected", "held"].map((k) => cell("td", String(n[k] ?? 0), "num")));
      rows.push(tr);
    }
  }
  if (!rows.length) {
    const tr = document.createElement("tr");
    tr.className = "none";
    const td = cell("td", "No suspect ticks.", "empty");
    td.colSpan = 6;
    tr.append(td);
    rows.push(tr);
  }
  suspectBody.replaceChildren(...rows);
}

function render(status) {
  if (healthBody) renderHealth(status.connections || []);
  renderSuspects(status.workers || []);
  const rows = (status.connections || []).map((c) => {
    const tr = document.createElement("tr");
    tr.dataset.id = c.id;
    const th = cell("th", c.id, "mono");
    th.scope = "row";
    const state = document.createElement("td");
    const badge = cell("span", c.state, "fresh");
    badge.dataset.state = c.state === "live" ? "live" : "stale";
    state.append(badge);
    tr.append(
      th,
      cell("td", c.worker, "mono"),
      state,
      cell("td", fixed(c.msgs_per_s?.frames), "num"),
      cell("td", String(c.reconnects ?? "—"), "num"),
      cell("td", `${fixed(c.lag_ms?.p50)} ms`, "num"),
      cell("td", `${fixed(c.lag_ms?.p99)} ms`, "num"),
      cell("td", `${fixed(c.last_message_age_s)} s`, "num"),
      cell("td", String(c.subscribed ?? "—"), "num"),
      suspectCell(c.suspect_ticks),
      cell("td", c.last_error || ""),
    );
    return tr;
  });
  if (!rows.length) {
    const tr = document.createElement("tr");
    const td = cell("td", "No stream worker is reporting. Start one with python manage.py start_streams.", "empty");
    td.colSpan = 11;
    tr.append(td);
    rows.push(tr);
  }
  connBody.replaceChildren(...rows);
  workerBody.replaceChildren(
    ...(status.workers || []).map((w) => {
      const tr = document.createElement("tr");
      const th = cell("th", w.id, "mono");
      th.scope = "row";
      const fresh = Object.entries(w.freshness || {}).map(([k, v]) => `${k} ${v}`).join(", ");
      tr.append(
        th,
        cell("td", w.shard),
        cell("td", `${w.state}${w.alive ? "" : " (not reporting)"}`, w.alive ? "ok" : "bad"),
        cell("td", `${fixed(w.uptime_s, 0)} s`, "num"),
        cell("td", fixed(w.events_per_s), "num"),
        cell("td", fixed(w.published_per_s), "num"),
        cell("td", String(w.instruments ?? "—"), "num"),
        cell("td", fresh),
      );
      return tr;
    }),
  );
  feedOk.textContent = status.ok ? "ok" : (status.workers || []).length ? "degraded" : "no worker running";
  feedOk.className = status.ok ? "ok" : "bad";
  if (status.updated_at) updated.textContent = `updated ${fmtTime(status.updated_at, { zone, fmt: "time" })}`;
}

market.addEventListener("status", (e) => render(e.detail));
// An ops alert raised or cleared (staff sockets only): update the history.
market.addEventListener("ops_alert", (e) => {
  const a = e.detail.alert || {};
  if (!opsBody || !a.id) return;
  opsBody.querySelector("tr.none")?.remove();
  const tr = document.createElement("tr");
  tr.dataset.id = a.id;
  if (a.active) tr.className = "bad";
  const when = (iso) => (iso ? fmtTime(iso, { zone, fmt: "datetime" }) : "active");
  tr.append(
    cell("td", when(a.raised_at), "mono"),
    cell("td", a.kind),
    cell("td", a.connection || "—", "mono"),
    cell("td", a.message),
    cell("td", when(a.cleared_at), "mono"),
  );
  const old = opsBody.querySelector(`tr[data-id="${a.id}"]`);
  if (old) old.replaceWith(tr);
  else opsBody.prepend(tr);
});
market.watchStatus();
