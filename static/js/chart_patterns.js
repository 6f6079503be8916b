// Chart patterns on the instrument chart (marketdata/patterns, served by
// GET /api/instruments/<symbol>/patterns): the lines of each detection
// (necklines, trend lines, levels, triangle and flag sides, the pole) as
// line series, a marker on each confirming bar in the "patterns" layer (see
// chart_layers.js), and a list under the chart with each explanation. The
// "Patterns" toggle sits with the indicators and is saved with them.
// instrument.js calls startPatterns() before it loads the bars.
import { fmtTime, resolveZone } from "./format.js";
import { getJson, postJson, toast } from "./page.js";

const LW = window.LightweightCharts;
const LAYER = "patterns";
const root = document.getElementById("instrument");
const label = document.getElementById("patterns-toggle");
const toggle = label?.querySelector("input[type=checkbox]");
const panel = document.getElementById("patterns");
const list = document.getElementById("pattern-list");
const container = document.getElementById("chart");

const css = getComputedStyle(document.documentElement);
const COLOR = {
  bullish: css.getPropertyValue("--up").trim() || "#0a7d32",
  bearish: css.getPropertyValue("--down").trim() || "#c62828",
  neutral: "#607d8b",
};
const DASHED = new Set(["neckline", "level"]);

let view = null; // the latest chart:bars detail
let drawn = []; // line series added for detections
let detections = [];
let generation = 0;

function clear() {
  if (view) {
    for (const series of drawn) view.chart.removeSeries(series);
    view.layers.clear(LAYER);
  }
  drawn = [];
  detections = [];
  list.replaceChildren();
  container.dataset.patterns = "";
}

// A segment as line data: times strictly increasing, cut at the first bar
// shown (a pattern that began earlier must not add times to the axis).
function segment(points, first) {
  const out = [];
  for (let i = 0; i < points.length; i += 1) {
    const p = points[i];
    if (p.t < first) {
      const next = points[i + 1];
      if (next && next.t > first) out.push({ time: first, value: p.price + ((next.price - p.price) * (first - p.t)) / (next.t - p.t) });
      continue;
    }
    if (out.length && out[out.length - 1].time === p.t) out.pop();
    out.push({ time: p.t, value: p.price });
  }
  return out;
}

// The confirming bar's time as the chart's axis shows it (days in the
// exchange's session, intraday bars in the display zone).
function when(t) {
  const exchange = root.dataset.tzExchange || "America/New_York";
  if (view.timeframe === "1d") return fmtTime(t, { zone: exchange, fmt: "date", label: false });
  return fmtTime(t, { zone: resolveZone(exchange), fmt: "datetime_minute" });
}

function draw(found) {
  const { chart, layers, bars } = view;
  const first = bars.length ? bars[0].time : 0;
  const markers = [];
  for (const d of found) {
    const color = COLOR[d.direction] || COLOR.neutral;
    d.lines.forEach((line, i) => {
      const data = segment(line.points, first);
      if (data.length < 2) return;
      const series = chart.addSeries(LW.LineSeries, {
        color,
        lineWidth: i === 0 ? 2 : 1,
        lineStyle: DASHED.has(line.role) ? LW.LineStyle.Dashed : LW.LineStyle.Solid,
        priceLineVisible: false,
        lastValueVisible: false,
        crosshairMarkerVisible: false,
      });
      series.setData(data);
      drawn.push(series);
    });
    if (d.t >= first) {
      const up = d.direction === "bullish";
      markers.push({ time: d.t, position: up ? "belowBar" : "aboveBar", color, shape: up ? "arrowUp" : "arrowDown", text: d.label });
    }
    const item = document.createElement("li");
    item.dataset.kind = d.kind;
    item.dataset.t = String(d.t);
    item.title = d.explain;
    item.innerHTML = `<span class="dot ${d.direction}"></span> <b></b> <time></time> <span class="explain"></span> <span class="conf"></span>`;
    item.querySelector("b").textContent = d.label;
    item.querySelector("time").textContent = when(d.t);
    item.querySelector(".explain").textContent = d.explain;
    item.querySelector(".conf").textContent = `confidence ${Math.round(d.confidence * 100)}%`;
    item.addEventListener("click", () => {
      const index = bars.findIndex((b) => b.time >= d.t);
      if (index >= 0) chart.timeScale().setVisibleLogicalRange({ from: index - 80, to: index + 20 });
    });
    list.prepend(item); // newest first
  }
  layers.set(LAYER, markers);
}

async function refresh() {
  const mine = ++generation;
  if (!view || !toggle?.checked) return;
  const { bars, timeframe } = view;
  if (!bars.length) {
    clear();
    panel.dataset.state = "empty";
    return;
  }
  const url = new URL(panel.dataset.url, location.origin);
  url.search = new URLSearchParams({ timeframe, start: bars[0].time, limit: Math.min(5000, bars.length + 10) }).toString();
  let payload;
  try {
    payload = await getJson(url);
  } catch (err) {
    if (mine === generation) panel.querySelector(".pattern-note").textContent = `Patterns unavailable: ${err.message}`;
    return;
  }
  if (mine !== generation || !toggle.checked) return;
  clear();
  detections = payload.detections;
  draw(detections);
  container.dataset.patterns = String(detections.length);
  panel.querySelector(".pattern-note").textContent =
    payload.message || (detections.length ? `${detections.length} pattern${detections.length === 1 ? "" : "s"} confirmed on these ${timeframe} bars (newest first; click one to show it).` : `No pattern confirmed on these ${timeframe} bars.`);
  panel.dataset.state = "shown";
}

async function save() {
  label.dataset.saved = "false";
  try {
    await postJson(label.dataset.saveUrl, { patterns: { on: toggle.checked } });
    label.dataset.saved = "true";
  } catch (err) {
    toast(`Patterns choice not saved: ${err.message}`, { kind: "warn" });
  }
}

function apply() {
  save();
  panel.hidden = !toggle.checked;
  if (toggle.checked) refresh();
  else {
    generation += 1;
    clear();
    panel.dataset.state = "off";
  }
}

// Hovering a confirming bar shows its explanations under the chart.
function hover(param) {
  const tip = panel.querySelector(".pattern-tip");
  const hits = param.time === undefined ? [] : detections.filter((d) => d.t === param.time);
  tip.textContent = hits.map((d) => d.explain).join(" ");
  tip.hidden = !hits.length;
}

export function startPatterns() {
  if (!root || !toggle || !panel) return;
  root.addEventListener("chart:bars", (e) => {
    if (view && e.detail.reason === "load") clear(); // a new timeframe
    if (!view) e.detail.chart.subscribeCrosshairMove(hover);
    view = e.detail;
    if (toggle.checked) refresh();
  });
  toggle.addEventListener("change", apply);
  panel.hidden = !toggle.checked;
}
