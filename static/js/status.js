// Status page: stream connections refreshed from the feed.status group (every 2 s).
import { market } from "./socket.js";

const connBody = document.querySelector("#connections tbody");
const workerBody = document.querySelector("#workers tbody");
const feedOk = document.getElementById("feed-ok");
const updated = document.getElementById("feed-updated");

function cell(tag, text, cls) {
  const el = document.createElement(tag);
  el.textContent = text ?? "—";
  if (cls) el.className = cls;
  return el;
}
const fixed = (v, d = 1) => (typeof v === "number" ? v.toFixed(d) : "—");

function render(status) {
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
      cell("td", c.last_error || ""),
    );
    return tr;
  });
  if (!rows.length) {
    const tr = document.createElement("tr");
    const td = cell("td", "No stream worker is reporting. Start one with python manage.py start_streams.", "empty");
    td.colSpan = 10;
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
  if (status.updated_at) updated.textContent = `updated ${status.updated_at.slice(11, 19)} UTC`;
}

market.addEventListener("status", (e) => render(e.detail));
market.watchStatus();
