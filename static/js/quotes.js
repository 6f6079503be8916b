// Live quote rows: one table row per instrument, updated from snapshot
// documents. DOM writes are batched into one animation frame. The page's
// entry module calls startQuotes() once; trackRow() any time.
import { difference, direction, fmtAge, fmtCompact, fmtPct, fmtPrice, fmtSigned, fmtTime, num, resolveZone, sparkPoints, zoneTitle } from "./format.js";
import { market } from "./socket.js";
import { probeArrived, probePainted } from "./paint_probe.js";

let staleAfter = 30;
const rows = new Map(); // symbol -> row state
const pending = new Map(); // symbol -> latest doc not yet painted
let frameRequested = false;

function parseSpark(tr) {
  try {
    const s = JSON.parse(tr.dataset.spark || "{}");
    return { bucket: s.bucket || 1, start: s.start || 0, points: s.points || [], last: s.last ?? null };
  } catch {
    return { bucket: 1, start: 0, points: [], last: null };
  }
}

export function trackRow(tr) {
  const symbol = tr.dataset.symbol;
  const cells = {};
  tr.querySelectorAll("[data-f]").forEach((el) => (cells[el.dataset.f] = el));
  const state = {
    tr,
    symbol,
    cells,
    decimals: Number(tr.dataset.decimals || 2),
    receivedAt: Number(tr.dataset.receivedAt || 0),
    freshness: tr.dataset.freshness || "waiting",
    spark: parseSpark(tr),
    polyline: tr.querySelector(".spark polyline"),
    svg: tr.querySelector(".spark"),
    fresh: tr.querySelector(".fresh"),
    zone: resolveZone(tr.dataset.tzExchange),
    last: null,
    dir: null, // the change's direction last painted (classes set only when it turns)
  };
  rows.set(symbol, state);
  return state;
}

export function untrackRow(symbol) {
  rows.delete(symbol);
  pending.delete(symbol);
}

function setText(el, text) {
  if (el && el.textContent !== text) el.textContent = text;
}

// The tick flash: a tinted layer over the cell (`[data-flash]::after`,
// tapeline.css) fading out. Only its opacity is animated, which the
// compositor does without repainting the row; one animation per cell,
// restarted on each change (a row ticking ten times a second would
// otherwise stack seven of them).
const flashes = new WeakMap(); // cell -> its running animation
function flash(el, up) {
  if (!el || !el.animate) return;
  el.dataset.flash = up ? "up" : "down";
  const running = flashes.get(el);
  if (running) {
    running.currentTime = 0;
    running.play();
    return;
  }
  flashes.set(
    el,
    el.animate([{ opacity: 1 }, { opacity: 0 }], { duration: 700, easing: "ease-out", pseudoElement: "::after" }),
  );
}

function bucketIndex(spark, minuteTs) {
  const t = Date.parse(minuteTs) / 1000;
  if (!spark.start || !Number.isFinite(t) || t < spark.start) return null;
  return Math.floor((t - spark.start) / (spark.bucket * 60));
}

function extendSpark(state, doc) {
  const price = num(doc.last);
  if (price === null || !doc.minute || !state.polyline) return false;
  const spark = state.spark;
  const idx = bucketIndex(spark, doc.minute.ts);
  if (idx === null) return false;
  const lastIdx = spark.last === null ? null : Math.floor((spark.last - spark.start) / (spark.bucket * 60));
  if (lastIdx !== null && idx === lastIdx && spark.points.length) {
    const end = spark.points.length - 1;
    if (spark.points[end] === price) return false; // nothing to redraw
    spark.points[end] = price;
  } else if (lastIdx === null || idx > lastIdx) {
    spark.points.push(price);
    spark.last = spark.start + idx * spark.bucket * 60;
    if (spark.points.length > 400) spark.points.shift();
  } else return false;
  return true;
}

function freshnessOf(state) {
  if (state.freshness === "live" && state.receivedAt && Date.now() / 1000 - state.receivedAt > staleAfter) {
    return "stale";
  }
  return state.freshness;
}

// States whose words are not their names (streaming/freshness.py LABELS).
const FRESHNESS_LABELS = {
  over_limit: "unsubscribed: over plan limit",
  no_provider: "unsubscribed: no provider",
};

function paintFreshness(state) {
  const f = freshnessOf(state);
  if (state.fresh && state.fresh.dataset.state !== f) {
    state.fresh.dataset.state = f;
    state.fresh.textContent = FRESHNESS_LABELS[f] || f;
    state.tr.dataset.freshness = f;
  }
}

// "14:32:05 New York": when the row's snapshot arrived, in the display zone.
function paintUpdated(state) {
  const el = state.cells.updated;
  if (!el || !state.receivedAt) return;
  let t = el.querySelector("time");
  if (!t) {
    t = document.createElement("time");
    t.dataset.fmt = "time";
    el.append(t);
  }
  // Shown to the second: the same second is not formatted again.
  const second = Math.floor(state.receivedAt);
  if (state.updatedSecond === second) return;
  state.updatedSecond = second;
  const when = new Date(state.receivedAt * 1000);
  t.dateTime = when.toISOString();
  setText(t, fmtTime(when, { zone: state.zone, fmt: "time" }));
  t.title = zoneTitle(state.zone, when);
}

function paint(state, doc) {
  const d = state.decimals;
  const c = state.cells;
  const last = num(doc.last);
  if (state.last !== null && last !== null && last !== state.last) flash(c.last, last > state.last);
  state.last = last;
  state.tr.classList.remove("nodata");
  setText(c.last, fmtPrice(doc.last, d));
  const dir = direction(doc.change);
  const turned = dir !== state.dir;
  state.dir = dir;
  if (turned) {
    for (const el of [c.change, c.change_pct]) {
      if (el) el.className = el.className.replace(/\b(up|down|flat)\b/g, "").trim() + ` ${dir}`;
    }
  }
  setText(c.change, fmtSigned(doc.change, d));
  setText(c.change_pct, fmtPct(doc.change_pct));
  setText(c.bid, fmtPrice(doc.bid, d));
  setText(c.ask, fmtPrice(doc.ask, d));
  setText(c.spread, fmtPrice(difference(doc.ask, doc.bid), d));
  setText(c.high, fmtPrice(doc.high, d));
  setText(c.low, fmtPrice(doc.low, d));
  setText(c.open, fmtPrice(doc.open, d));
  setText(c.prev_close, fmtPrice(doc.prev_close, d));
  setText(c.volume, fmtCompact(doc.volume));
  state.receivedAt = Number(doc.received_at || 0);
  state.freshness = doc.freshness || "live";
  setText(c.age, fmtAge(state.receivedAt));
  paintUpdated(state);
  paintFreshness(state);
  state.tr.dataset.seq = doc.seq;
  if (extendSpark(state, doc) && state.polyline) {
    state.polyline.setAttribute("points", sparkPoints(state.spark.points));
  }
  if (state.svg && turned) state.svg.setAttribute("class", `spark ${dir}`);
}

function onFrame() {
  frameRequested = false;
  const batch = [...pending.values()];
  pending.clear();
  for (const doc of batch) {
    const state = rows.get(doc.symbol);
    if (state) paint(state, doc);
  }
  probePainted(batch);
}

function onQuotes(e) {
  probeArrived(e.detail);
  for (const doc of e.detail.docs) {
    if (rows.has(doc.symbol)) pending.set(doc.symbol, doc);
  }
  if (pending.size && !frameRequested) {
    frameRequested = true;
    requestAnimationFrame(onFrame);
  }
}

// "updated N s ago" and live → stale without any message arriving.
function tick() {
  for (const state of rows.values()) {
    setText(state.cells.age, fmtAge(state.receivedAt));
    paintFreshness(state);
  }
}

let started = false;
export function startQuotes() {
  if (started) return;
  started = true;
  staleAfter = Number(document.body.dataset.staleAfter || 30);
  market.addEventListener("quotes", onQuotes);
  setInterval(tick, 1000);
}
