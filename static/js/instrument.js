// Entry module of the instrument page (templates/dashboard/instrument.html):
// candles + volume from the bars endpoint, timeframes, scroll-back, indicator
// overlays and panes, the live forming candle, and the chart's marker layers.
import { startAnomalies } from "./chart_anomalies.js";
import { startCandles } from "./chart_candles.js";
import { markerLayers } from "./chart_layers.js";
import { startPatterns } from "./chart_patterns.js";
import { fmtTime, resolveZone, zoneLabel, zoneTitle } from "./format.js";
import { expose } from "./hooks.js";
import { getJson, postForm, postJson, toast } from "./page.js";
import { startQuotes, trackRow } from "./quotes.js";
import { market } from "./socket.js";

const LW = window.LightweightCharts;
const root = document.getElementById("instrument");
const symbol = root.dataset.symbol;
const decimals = Number(root.dataset.decimals || 2);
const barsUrl = root.dataset.barsUrl;
const note = document.getElementById("chart-note");
const container = document.getElementById("chart");
// Each timeframe's bar length in seconds, from its button (the server renders
// them from marketdata.rollups.STEPS).
const TF_SECONDS = Object.fromEntries(
  [...document.querySelectorAll("button[data-tf]")].map((b) => [b.dataset.tf, Number(b.dataset.seconds)]),
);
const PAGE = 500;
// Line colors by indicator, and by line for multi-line oscillators.
const COLORS = {
  sma: "#f9a825",
  ema: "#8e24aa",
  bb: "#26a69a",
  rsi: "#5c6bc0",
  macd: "#1e88e5",
  signal: "#fb8c00",
  stoch: "#00897b",
  k: "#00897b",
  d: "#fb8c00",
  willr: "#6d4c41",
  atr: "#d81b60",
};
const OVERLAYS = new Set(["sma", "ema", "bb"]);

trackRow(root);
startQuotes();
market.subscribe([symbol]);

const css = getComputedStyle(document.documentElement);
const fg = css.getPropertyValue("--fg").trim() || "#111";
const line = css.getPropertyValue("--line").trim() || "#ddd";
const up = css.getPropertyValue("--up").trim() || "#0a7d32";
const down = css.getPropertyValue("--down").trim() || "#c62828";

// --- times on the axis and crosshair ------------------------------------------------
// Intraday bars in the display zone; daily bars stay on the exchange's session
// (an equity day starts at midnight New York), so a day never shifts whatever
// the display zone.
let timeframe = root.dataset.timeframe || "1m";
const exchangeZone = root.dataset.tzExchange || "America/New_York";
const displayZone = resolveZone(exchangeZone);
function axisZone() {
  return timeframe === "1d" ? exchangeZone : displayZone;
}
// What the axis last drew, newest last: tests and the console read it.
const axisLog = expose("tapelineAxis", []);
function logAxis(entry) {
  axisLog.push(entry);
  if (axisLog.length > 200) axisLog.shift();
}
const TICK = ["year", "month", "day", "minute", "time"]; // LW TickMarkType order
function tickMarkFormatter(time, type) {
  const zone = axisZone();
  let fmt = TICK[type] || "minute";
  if (timeframe !== "1d" && (fmt === "day" || fmt === "month" || fmt === "year")) {
    // The library puts date ticks on UTC day boundaries; off local midnight
    // the label carries the hour too, so it never reads as a day start.
    const hm = fmtTime(time, { zone, fmt: "minute", label: false });
    if (hm !== "00:00") fmt = "day_minute";
  }
  const text = fmt === "day_minute" ? `${fmtTime(time, { zone, fmt: "day", label: false })} ${fmtTime(time, { zone, fmt: "minute", label: false })}` : fmtTime(time, { zone, fmt, label: false });
  logAxis({ kind: "tick", time, fmt, zone, text });
  return text;
}
function timeFormatter(time) {
  const zone = axisZone();
  const text = timeframe === "1d" ? fmtTime(time, { zone, fmt: "date", label: false }) : fmtTime(time, { zone, fmt: "datetime_minute" });
  logAxis({ kind: "crosshair", time, zone, text });
  return text;
}
function zoneNote() {
  return timeframe === "1d" ? `days of the ${zoneLabel(exchangeZone)} session` : `times in ${zoneTitle(displayZone)}`;
}

container.replaceChildren();
const chart = LW.createChart(container, {
  autoSize: true,
  layout: { background: { color: "transparent" }, textColor: fg, panes: { separatorColor: line } },
  grid: { vertLines: { color: line }, horzLines: { color: line } },
  timeScale: { timeVisible: true, secondsVisible: false, rightOffset: 4, tickMarkFormatter },
  rightPriceScale: { borderColor: line },
  localization: { priceFormatter: (p) => p.toFixed(decimals), timeFormatter },
});
expose("tapelineChart", chart);
container.dataset.zone = displayZone;

document.addEventListener("tapeline:theme", () => {
  const now = getComputedStyle(document.documentElement);
  const color = (name, fallback) => now.getPropertyValue(name).trim() || fallback;
  const grid = color("--line", line);
  chart.applyOptions({
    layout: { textColor: color("--fg", fg), panes: { separatorColor: grid } },
    grid: { vertLines: { color: grid }, horzLines: { color: grid } },
    rightPriceScale: { borderColor: grid },
  });
});
const candles = chart.addSeries(LW.CandlestickSeries, {
  upColor: up,
  downColor: down,
  borderUpColor: up,
  borderDownColor: down,
  wickUpColor: up,
  wickDownColor: down,
  priceFormat: { type: "price", precision: decimals, minMove: 1 / 10 ** decimals },
});
const volume = chart.addSeries(LW.HistogramSeries, {
  priceFormat: { type: "volume" },
  priceScaleId: "",
  lastValueVisible: false,
  priceLineVisible: false,
});
volume.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
const layers = markerLayers(candles);
candles.priceScale().applyOptions({ scaleMargins: { top: 0.05, bottom: 0.25 } });

let bars = []; // oldest first: {time, open, high, low, close, volume}
let nextBefore = null;
let loading = false;
let painted = false; // the current timeframe's first page of bars is drawn
let generation = 0;
let indicatorSeries = []; // series created for indicators
let live = { minuteTs: null, base: 0, minuteVolume: 0 };

// --- indicator controls: one row per indicator (checkbox + parameters) ------------
const controls = document.getElementById("indicators");
const indicatorRows = [...controls.querySelectorAll("[data-indicator]")];

function paramValue(input) {
  const n = Number(input.value);
  const ok = input.value !== "" && Number.isFinite(n) && n >= Number(input.min) && n <= Number(input.max) && (input.step !== "1" || Number.isInteger(n));
  input.setAttribute("aria-invalid", String(!ok));
  return ok ? n : null;
}

// The saved document (see marketdata/indicators_settings.py), or null while a
// parameter is out of range (nothing is sent or drawn until it is fixed).
function chartSettings() {
  const indicators = {};
  for (const row of indicatorRows) {
    const entry = { on: row.querySelector("input[type=checkbox]").checked };
    for (const input of row.querySelectorAll("input[data-param]")) {
      const value = paramValue(input);
      if (value === null) return null;
      entry[input.dataset.param] = value;
    }
    indicators[row.dataset.indicator] = entry;
  }
  // Marker layers (chart_layers.js): on or off, saved with the indicators.
  const layers = {};
  for (const row of controls.querySelectorAll("[data-layer]")) {
    layers[row.dataset.layer] = { on: row.querySelector("input[type=checkbox]").checked };
  }
  return { indicators, layers };
}

function indicatorSpec() {
  const settings = chartSettings();
  if (!settings) return controls.dataset.spec || "";
  return Object.entries(settings.indicators)
    .filter(([, entry]) => entry.on)
    .map(([name, entry]) => [name, ...Object.entries(entry).filter(([k]) => k !== "on").map(([, v]) => v)].join(":"))
    .join(",");
}

let saveTimer = null;
async function saveSettings() {
  const settings = chartSettings();
  if (!settings) {
    note.textContent = "An indicator parameter is out of range; the chart keeps the last valid choice.";
    return;
  }
  try {
    const payload = await postJson(controls.dataset.saveUrl, settings);
    controls.dataset.spec = payload.spec;
    controls.dataset.saved = "true";
  } catch (err) {
    toast(`Indicator choice not saved: ${err.message}`, { kind: "warn" });
  }
}

function toBar(b) {
  return { time: b.t, open: b.o, high: b.h, low: b.l, close: b.c, volume: b.v };
}

function volumeBar(b) {
  return { time: b.time, value: b.volume, color: b.close >= b.open ? `${up}66` : `${down}66` };
}

async function fetchBars(params) {
  const url = new URL(barsUrl, location.origin);
  url.searchParams.set("timeframe", timeframe);
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") url.searchParams.set(k, v);
  return getJson(url);
}

function paintAll() {
  candles.setData(bars);
  volume.setData(bars.map(volumeBar));
}

// Tell the chart's marker features (see chart_layers.js) what is drawn now.
function barsChanged(reason) {
  root.dispatchEvent(new CustomEvent("chart:bars", { detail: { reason, timeframe, span: TF_SECONDS[timeframe], bars, chart, candles, layers } }));
}

async function loadInitial() {
  const mine = ++generation;
  loading = true;
  painted = false;
  note.textContent = `Loading ${timeframe} bars…`;
  try {
    const payload = await fetchBars({ limit: PAGE });
    if (mine !== generation) return;
    bars = payload.bars.map(toBar);
    nextBefore = payload.next_before;
    live = { minuteTs: null, base: bars.length ? bars[bars.length - 1].volume : 0, minuteVolume: 0 };
    paintAll();
    painted = true;
    chart.timeScale().fitContent();
    if (bars.length > 120) chart.timeScale().setVisibleLogicalRange({ from: bars.length - 120, to: bars.length + 4 });
    note.textContent = bars.length ? `${bars.length} ${timeframe} bars · ${zoneNote()} · scroll left for older bars` : "No stored bars for this timeframe yet; live candles appear as trades arrive.";
    container.dataset.bars = String(bars.length);
    container.dataset.timeframe = timeframe;
    barsChanged("load");
    await loadIndicators(mine);
  } catch (err) {
    note.textContent = `Could not load bars: ${err.message}`;
    if (mine === generation) painted = true; // live candles still draw on an empty chart
  } finally {
    if (mine === generation) loading = false;
  }
}

async function loadOlder() {
  if (loading || nextBefore === null || !bars.length) return;
  const mine = generation;
  loading = true;
  note.textContent = "Loading older bars…";
  try {
    const payload = await fetchBars({ end: nextBefore, limit: PAGE });
    if (mine !== generation) return;
    const older = payload.bars.map(toBar).filter((b) => b.time < bars[0].time);
    const range = chart.timeScale().getVisibleLogicalRange();
    bars = older.concat(bars);
    nextBefore = payload.next_before;
    paintAll();
    if (range) chart.timeScale().setVisibleLogicalRange({ from: range.from + older.length, to: range.to + older.length });
    container.dataset.bars = String(bars.length);
    note.textContent = `${bars.length} ${timeframe} bars · ${zoneNote()}${nextBefore === null ? " · start of history" : ""}`;
    barsChanged("older");
    await loadIndicators(mine);
  } catch (err) {
    note.textContent = `Could not load older bars: ${err.message}`;
  } finally {
    if (mine === generation) loading = false;
  }
}

function clearIndicators() {
  for (const s of indicatorSeries) chart.removeSeries(s);
  indicatorSeries = [];
  // Drop now-empty panes below the price pane.
  const panes = chart.panes();
  for (let i = panes.length - 1; i > 0; i -= 1) chart.removePane(i);
}

function seriesData(values) {
  // Accept values aligned to the bars, or [{t, v}] / [{time, value}] points.
  const out = [];
  values.forEach((v, i) => {
    if (v !== null && typeof v === "object") {
      const time = v.t ?? v.time;
      const value = v.v ?? v.value;
      if (time !== undefined && value !== null && Number.isFinite(value)) out.push({ time, value });
    } else if (v !== null && Number.isFinite(v) && bars[i]) {
      out.push({ time: bars[i].time, value: v });
    }
  });
  return out;
}

let indicatorGeneration = 0;
let lastIndicatorRefresh = 0;
async function loadIndicators(mine) {
  const spec = indicatorSpec();
  const own = ++indicatorGeneration;
  if (!spec || !bars.length) {
    clearIndicators();
    container.dataset.indicators = "";
    return;
  }
  let payload;
  try {
    payload = await fetchBars({ start: bars[0].time, limit: Math.min(5000, bars.length + 10), indicators: spec });
  } catch (err) {
    note.textContent = `Indicators unavailable: ${err.message}`;
    return;
  }
  // A newer timeframe or indicator choice supersedes this answer.
  if (mine !== generation || own !== indicatorGeneration) return;
  clearIndicators();
  if (!payload.indicators) {
    note.textContent = "Indicators are not available from this server yet.";
    return;
  }
  // Align to the bars this response carried.
  const saved = bars;
  bars = payload.bars.map(toBar);
  let pane = 1;
  for (const [key, lines] of Object.entries(payload.indicators)) {
    const name = key.split(":")[0];
    if (OVERLAYS.has(name)) {
      for (const [lineName, values] of Object.entries(lines)) {
        const s = chart.addSeries(LW.LineSeries, {
          color: COLORS[name] || "#888",
          lineWidth: lineName === "middle" || name !== "bb" ? 2 : 1,
          lineStyle: name === "bb" && lineName !== "middle" ? 2 : 0,
          priceLineVisible: false,
          lastValueVisible: false,
          title: name === "bb" ? (lineName === "middle" ? key.toUpperCase() : "") : key.toUpperCase(),
        });
        s.setData(seriesData(values));
        indicatorSeries.push(s);
      }
    } else {
      const index = pane++;
      for (const [lineName, values] of Object.entries(lines)) {
        const isHist = lineName === "hist";
        const s = chart.addSeries(
          isHist ? LW.HistogramSeries : LW.LineSeries,
          isHist
            ? { color: "#90a4ae", priceLineVisible: false, lastValueVisible: false }
            : { color: COLORS[lineName] || COLORS[name] || "#5c6bc0", lineWidth: 2, priceLineVisible: false, title: lineName === name ? key.toUpperCase() : lineName.toUpperCase() },
          index,
        );
        s.setData(seriesData(values));
        indicatorSeries.push(s);
      }
    }
  }
  // Give every oscillator pane a readable height once all panes exist.
  const panes = chart.panes();
  const total = container.clientHeight || 520;
  const below = Math.min(120, Math.floor((total * 0.45) / Math.max(1, panes.length - 1)));
  panes.forEach((p, i) => {
    if (i > 0) p.setHeight(below);
  });
  if (panes.length > 1) panes[0].setHeight(total - below * (panes.length - 1) - 30);
  bars = saved;
  container.dataset.indicators = spec;
}

// --- live candle from the socket ------------------------------------------------
function applyMinute(doc) {
  // Until the first page is drawn, a live minute would be merged into the
  // previous timeframe's bars (or stand alone) and then be replaced by the page.
  if (!painted) return;
  const m = doc.minute;
  if (!m || !m.ts) return;
  const t = Math.floor(Date.parse(m.ts) / 1000);
  if (!Number.isFinite(t)) return;
  const minute = { open: +m.open, high: +m.high, low: +m.low, close: +m.close, volume: +(m.volume || 0) };
  if (!Number.isFinite(minute.close)) return;
  const span = TF_SECONDS[timeframe];
  const last = bars[bars.length - 1];
  if (live.minuteTs !== null && t > live.minuteTs) live.base += live.minuteVolume; // the previous minute closed
  if (live.minuteTs === null || t !== live.minuteTs) live.minuteVolume = 0;
  live.minuteTs = t;
  live.minuteVolume = minute.volume;
  let bar;
  if (last && t >= last.time && t < last.time + span) {
    bar = {
      time: last.time,
      open: last.open,
      high: Math.max(last.high, minute.high),
      low: Math.min(last.low, minute.low),
      close: minute.close,
      volume: live.base + live.minuteVolume,
    };
    if (timeframe === "1m") bar = { time: t, ...minute };
    bars[bars.length - 1] = bar;
  } else if (!last || t >= last.time + span) {
    const start = t - (t % span);
    bar = { time: start, ...minute };
    live.base = 0;
    bars.push(bar);
    container.dataset.bars = String(bars.length);
    barsChanged("closed");
    // A bar closed: extend the indicator lines (at most every 30 s).
    if (indicatorSpec() && Date.now() - lastIndicatorRefresh > 30000) {
      lastIndicatorRefresh = Date.now();
      loadIndicators(generation);
    }
  } else return; // older than what is shown
  candles.update(bar);
  volume.update(volumeBar(bar));
  container.dataset.liveClose = String(bar.close);
}

market.addEventListener("quotes", (e) => {
  for (const doc of e.detail.docs) if (doc.symbol === symbol) applyMinute(doc);
});

// --- controls ---------------------------------------------------------------------
chart.timeScale().subscribeVisibleLogicalRangeChange((range) => {
  if (range && range.from < 10) loadOlder();
});

document.querySelectorAll("button[data-tf]").forEach((button) => {
  button.addEventListener("click", () => {
    if (button.dataset.tf === timeframe) return;
    timeframe = button.dataset.tf;
    document.querySelectorAll("button[data-tf]").forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
    const url = new URL(location.href);
    url.searchParams.set("tf", timeframe);
    history.replaceState(null, "", url);
    loadInitial();
  });
});

controls.addEventListener("change", (e) => {
  // A marker layer redraws itself (its own module listens to its checkbox).
  if (!e.target.closest("[data-layer]") && chartSettings()) loadIndicators(generation);
  controls.dataset.saved = "false";
  clearTimeout(saveTimer);
  saveTimer = setTimeout(saveSettings, 300);
});

// --- CSV export of the bars in view, with the indicator columns ------------------
const exportButton = document.getElementById("export-bars");
function visibleRange() {
  if (!bars.length) return null;
  const range = chart.timeScale().getVisibleLogicalRange();
  const from = range ? Math.max(0, Math.ceil(range.from)) : 0;
  const to = range ? Math.min(bars.length - 1, Math.floor(range.to)) : bars.length - 1;
  if (from > to) return null;
  return { start: bars[from].time, end: bars[to].time + TF_SECONDS[timeframe] };
}

exportButton.addEventListener("click", async () => {
  const range = visibleRange();
  if (!range) {
    toast("No bars in view to export.", { kind: "warn" });
    return;
  }
  const url = new URL(exportButton.dataset.url, location.origin);
  url.search = new URLSearchParams({ symbol, timeframe, start: range.start, end: range.end, indicators: indicatorSpec() }).toString();
  exportButton.disabled = true;
  try {
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) {
      const payload = await response.json().catch(() => ({}));
      throw new Error(payload.error || `Server answered ${response.status}`);
    }
    const disposition = response.headers.get("Content-Disposition") || "";
    const match = disposition.match(/filename\*?=(?:utf-8'')?"?([^";]+)"?/i);
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = match ? decodeURIComponent(match[1]) : `${symbol}.csv`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    exportButton.dataset.lastUrl = url.pathname + url.search;
  } catch (err) {
    toast(`Export failed: ${err.message}`, { kind: "warn" });
  } finally {
    exportButton.disabled = false;
  }
});

const addForm = document.getElementById("add-to-list");
addForm?.addEventListener("submit", async (e) => {
  e.preventDefault();
  const select = addForm.elements.list;
  const option = select.selectedOptions[0];
  if (!option || option.disabled) return;
  try {
    await postForm(option.value, { symbol });
    option.disabled = true;
    option.textContent += " (added)";
    toast(`Added ${symbol} to ${option.textContent.replace(" (added)", "")}.`, { kind: "ok" });
  } catch (err) {
    toast(err.message, { kind: "warn" });
  }
});

startCandles();
startPatterns();
startAnomalies();
loadInitial();

document.body.dataset.ready = "instrument";
