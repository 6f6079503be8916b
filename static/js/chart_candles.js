// Candlestick-pattern markers on the instrument chart (marker layer "candles").
//
// On every `chart:bars` event (see chart_layers.js) it asks the candles
// endpoint (/api/instruments/<symbol>/candles, TA-Lib's CDL* rules computed by
// the server) for the patterns in the bars shown, and draws one marker per
// pattern and bar with a short text ("Hammer"): below the bar when bullish,
// above it when bearish or neutral (doji). The legend under the chart explains
// each pattern in view; hovering a bar names the patterns found there.
// The "Candlestick patterns" toggle is saved with the user's chart settings
// (their `candles` section, see marketdata/indicators_settings.py).
import { toast } from "./app.js";
import { csrfToken } from "./format.js";

const LAYER = "candles";
const REFRESH_MS = 30000; // at most this often while bars close live

const root = document.getElementById("instrument");
const toggle = document.getElementById("candles-toggle");
const legend = document.getElementById("candles-legend");
if (root && toggle && legend) setup();

function setup() {
  const checkbox = toggle.querySelector("input[type=checkbox]");
  const hover = legend.querySelector("[data-hover]");
  const list = legend.querySelector("dl");
  const css = getComputedStyle(document.documentElement);
  const colors = {
    bullish: css.getPropertyValue("--up").trim() || "#0a7d32",
    bearish: css.getPropertyValue("--down").trim() || "#c62828",
    neutral: css.getPropertyValue("--muted").trim() || "#777",
  };
  let latest = null; // the last chart:bars detail
  let generation = 0;
  let lastRefresh = 0;
  let hovered = false;
  let byTime = new Map();
  // What is drawn now: tests and the console read it.
  const state = { markers: [], events: [] };
  window.tapelineCandles = state;

  function marker(e) {
    const shape = { bullish: "arrowUp", bearish: "arrowDown" }[e.direction] || "circle";
    return {
      id: `candle:${e.pattern}:${e.t}`,
      time: e.t,
      position: e.direction === "bullish" ? "belowBar" : "aboveBar",
      shape,
      color: colors[e.direction],
      text: e.label,
    };
  }

  function renderLegend(events) {
    const groups = new Map();
    for (const e of events) {
      const key = `${e.pattern}:${e.direction}`;
      const group = groups.get(key) || { ...e, count: 0 };
      group.count += 1;
      groups.set(key, group);
    }
    list.replaceChildren();
    for (const g of groups.values()) {
      const dt = document.createElement("dt");
      dt.className = g.direction;
      dt.textContent = `${g.label}${g.direction === "neutral" ? "" : ` (${g.direction})`} ×${g.count}`;
      const dd = document.createElement("dd");
      dd.textContent = g.explanation;
      list.append(dt, dd);
    }
    hover.textContent = events.length
      ? "Hover a marked bar to name its patterns."
      : "No candlestick pattern in the bars shown.";
    legend.hidden = false;
  }

  function draw(detail, events) {
    state.events = events;
    state.markers = events.map(marker);
    byTime = new Map();
    for (const e of events) byTime.set(e.t, [...(byTime.get(e.t) || []), e]);
    detail.layers.set(LAYER, state.markers);
    root.dataset.candleMarkers = String(state.markers.length);
    renderLegend(events);
  }

  function clear() {
    generation += 1;
    state.markers = [];
    state.events = [];
    byTime = new Map();
    latest?.layers.clear(LAYER);
    root.dataset.candleMarkers = "0";
    legend.hidden = true;
  }

  async function load() {
    const detail = latest;
    if (!detail || !checkbox.checked) return;
    const own = ++generation;
    lastRefresh = Date.now();
    const { bars, timeframe, span } = detail;
    if (!bars.length) {
      draw(detail, []);
      return;
    }
    const url = new URL(toggle.dataset.candlesUrl, location.origin);
    url.search = new URLSearchParams({
      timeframe,
      start: bars[0].time,
      end: bars[bars.length - 1].time + span,
      limit: Math.min(5000, bars.length + 10),
    }).toString();
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      const payload = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(payload.error || `Server answered ${response.status}`);
      // A newer load, or the toggle turned off meanwhile, wins.
      if (own !== generation || !checkbox.checked) return;
      draw(detail, payload.candles);
    } catch (err) {
      if (own === generation) toast(`Candlestick patterns not loaded: ${err.message}`, { kind: "warn" });
    }
  }

  async function save(on) {
    toggle.dataset.saved = "false";
    try {
      const response = await fetch(toggle.dataset.saveUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(), Accept: "application/json" },
        body: JSON.stringify({ candles: { on } }),
        credentials: "same-origin",
      });
      const payload = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(payload.error || `Server answered ${response.status}`);
      toggle.dataset.saved = "true";
    } catch (err) {
      toast(`Candlestick choice not saved: ${err.message}`, { kind: "warn" });
    }
  }

  root.addEventListener("chart:bars", (e) => {
    latest = e.detail;
    if (!hovered) {
      hovered = true;
      latest.chart.subscribeCrosshairMove((param) => {
        if (!checkbox.checked || legend.hidden) return;
        const here = param.time === undefined ? null : byTime.get(param.time);
        if (here) {
          hover.textContent = here.map((ev) => `${ev.label} (${ev.direction}): ${ev.explanation}`).join(" · ");
        }
      });
    }
    if (!checkbox.checked) return;
    if (e.detail.reason === "closed" && Date.now() - lastRefresh < REFRESH_MS) return;
    load();
  });

  checkbox.addEventListener("change", () => {
    save(checkbox.checked);
    if (checkbox.checked) load();
    else clear();
  });
}
