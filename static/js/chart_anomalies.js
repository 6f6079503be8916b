// Market anomalies on the instrument chart: the "anomalies" marker layer
// (chart_layers.js), a list of those in view with their explanation, and a
// toast when one is detected live (the socket's `anomaly` frame).
//
// Anomalies come from GET /api/anomalies for the time range of the bars shown
// (on load, timeframe switch and scroll-back); live ones are added as they
// arrive. Each is drawn on the bar containing its minute, whatever the
// timeframe. The layer's checkbox (saved with the indicator choices,
// marketdata/indicators_settings.py) hides or shows it. instrument.js calls
// startAnomalies() before it loads the bars.
import { fmtTime, resolveZone } from "./format.js";
import { getJson, toast } from "./page.js";
import { market } from "./socket.js";

const root = document.getElementById("instrument");
const panel = document.getElementById("chart-anomalies");
const toggle = document.querySelector('[data-layer="anomalies"] input[type=checkbox]');
const container = document.getElementById("chart");
export function startAnomalies() {
  if (!root || !panel || !toggle) return;
  const symbol = root.dataset.symbol;
  const zone = resolveZone(root.dataset.tzExchange || "America/New_York");
  const css = getComputedStyle(document.documentElement);
  const up = css.getPropertyValue("--up").trim() || "#0a7d32";
  const down = css.getPropertyValue("--down").trim() || "#c62828";
  const surge = "#8e24aa";
  const LABEL = { return_spike: "Spike", volume_surge: "Vol", trade_rate_surge: "Trades" };
  const known = new Map(); // `${kind}@${time}` -> anomaly
  let view = null; // the last chart:bars detail
  let fetched = null; // [start, end) already asked for, epoch seconds
  let request = 0;

  const key = (a) => `${a.kind}@${a.time}`;
  const timeOf = (a) => a.time ?? Math.floor(Date.parse(a.ts) / 1000);

  // The start of the bar containing `t` (bars oldest first), or null.
  function barTime(bars, t) {
    let lo = 0;
    let hi = bars.length - 1;
    if (hi < 0 || t < bars[0].time) return null;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (bars[mid].time <= t) lo = mid;
      else hi = mid - 1;
    }
    return bars[lo].time;
  }

  function marker(a, time) {
    const isReturn = a.kind === "return_spike";
    const score = isReturn ? `${a.score.toFixed(1)}σ` : `×${a.score.toFixed(1)}`;
    return {
      time,
      position: a.direction === "down" ? "belowBar" : "aboveBar",
      shape: isReturn ? (a.direction === "down" ? "arrowDown" : "arrowUp") : "circle",
      color: isReturn ? (a.direction === "down" ? down : up) : surge,
      text: `${LABEL[a.kind] || a.kind} ${score}`,
      id: key(a),
    };
  }

  function draw() {
    if (!view) return;
    const { bars, layers } = view;
    const shown = [];
    if (toggle.checked) {
      for (const a of known.values()) {
        const time = barTime(bars, a.time);
        if (time !== null) shown.push([a, time]);
      }
    }
    shown.sort((x, y) => x[0].time - y[0].time);
    if (shown.length) layers.set("anomalies", shown.map(([a, time]) => marker(a, time)));
    else layers.clear("anomalies");
    container.dataset.anomalies = String(shown.length);
    panel.hidden = !shown.length;
    panel.querySelector("[data-count]").textContent = String(shown.length);
    panel.querySelector("ul").replaceChildren(
      ...shown
        .slice(-50)
        .reverse()
        .map(([a]) => {
          const li = document.createElement("li");
          li.dataset.kind = a.kind;
          li.textContent = `${fmtTime(a.ts, { zone, fmt: "datetime" })} · ${a.explain}`;
          return li;
        }),
    );
  }

  async function load(start, end) {
    const mine = ++request;
    const url = new URL(panel.dataset.url, location.origin);
    url.search = new URLSearchParams({ symbol, start, end, limit: 5000 }).toString();
    try {
      const payload = await getJson(url);
      if (mine !== request) return;
      for (const a of payload) known.set(key(a), a);
      fetched = fetched ? [Math.min(fetched[0], start), Math.max(fetched[1], end)] : [start, end];
      draw();
    } catch (err) {
      toast(`Anomalies not shown: ${err.message}`, { kind: "warn" });
    }
  }

  root.addEventListener("chart:bars", (e) => {
    view = e.detail;
    const { bars, reason } = view;
    if (!bars.length) return draw();
    const start = bars[0].time;
    const end = bars[bars.length - 1].time + 86400; // the last bar, any timeframe
    if (reason === "load" || !fetched || start < fetched[0]) load(start, reason === "older" && fetched ? fetched[0] : end);
    draw();
  });

  toggle.addEventListener("change", draw);

  market.addEventListener("anomaly", (e) => {
    const a = e.detail.anomaly;
    if (!a || a.symbol !== symbol) return;
    a.time = timeOf(a);
    known.set(key(a), a);
    draw();
    if (toggle.checked) toast(`${symbol}: ${a.explain}`, { kind: "info" });
  });
}
