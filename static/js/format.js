// Number formatting shared by every page; the same rule as dashboard/quotes.py,
// so a live update never reformats a value the server rendered: decimal text
// (strings as the server sends them, numbers by their shortest round-trip
// form, as Python's str(float)) rounded half to even at the decimal digits,
// never through a binary float (0.125 -> "0.12", 2.675 -> "2.68").
// tests/fixtures/rounding.json holds the values both sides are tested on.

export function num(value) {
  if (value === null || value === undefined || value === "") return null;
  const n = Number(value);
  return Number.isFinite(n) ? n : null;
}

const DECIMAL = /^([+-]?)(\d*)(?:\.(\d*))?(?:e([+-]?\d+))?$/i;

// {neg, digits, point}: the digits with the decimal point after the first
// `point` of them (point >= 0), or null when `value` is not a finite number.
function parse(value) {
  if (value === null || value === undefined || value === "") return null;
  if (typeof value === "number" && !Number.isFinite(value)) return null;
  const m = DECIMAL.exec(String(value).trim());
  if (!m || !(m[2] || m[3])) return null;
  const [, sign, whole, frac = "", exp = "0"] = m;
  let digits = whole + frac;
  let point = whole.length + Number(exp);
  if (point < 0) {
    digits = "0".repeat(-point) + digits;
    point = 0;
  }
  return { neg: sign === "-", digits: digits.padEnd(point, "0"), point };
}

// `d` rounded half to even at `places` decimals: {neg, whole, frac}.
function round(d, places) {
  const end = d.point + places;
  const digits = d.digits.padEnd(end, "0");
  let kept = digits.slice(0, end);
  const rest = digits.slice(end);
  const odd = Number(kept.at(-1) || 0) % 2 === 1;
  if (rest[0] > "5" || (rest[0] === "5" && (/[1-9]/.test(rest.slice(1)) || odd))) {
    kept = (BigInt(kept || "0") + 1n).toString().padStart(kept.length, "0");
  }
  const cut = kept.length - places;
  return { neg: d.neg, whole: kept.slice(0, cut).replace(/^0+(?=\d)/, "") || "0", frac: kept.slice(cut) };
}

function text({ neg, whole, frac }, { signed = false, grouped = false } = {}) {
  const sign = neg ? "-" : signed ? "+" : "";
  const w = grouped ? whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",") : whole;
  return `${sign}${w}${frac ? `.${frac}` : ""}`;
}

function fixed(value, places, options) {
  const d = parse(value);
  return d === null ? "—" : text(round(d, places), options);
}

// `a - b` exactly, as decimal text (a spread from the ask and bid strings);
// null when either is not a number.
export function difference(a, b) {
  const x = parse(a);
  const y = parse(b);
  if (x === null || y === null) return null;
  const places = Math.max(x.digits.length - x.point, y.digits.length - y.point);
  const scaled = (d) => BigInt(`${d.neg ? "-" : ""}${d.digits.padEnd(d.point + places, "0") || "0"}`);
  const n = scaled(x) - scaled(y);
  const digits = (n < 0n ? -n : n).toString().padStart(places + 1, "0");
  const cut = digits.length - places;
  return `${n < 0n ? "-" : ""}${digits.slice(0, cut)}${places ? `.${digits.slice(cut)}` : ""}`;
}

// 1,234.57 (grouped, `decimals` places).
export function fmtPrice(value, decimals) {
  return fixed(value, decimals, { grouped: true });
}

// +1,234.57 / -0.50.
export function fmtSigned(value, decimals) {
  return fixed(value, decimals, { grouped: true, signed: true });
}

// +1.25% (two places, not grouped).
export function fmtPct(value) {
  const t = fixed(value, 2, { signed: true });
  return t === "—" ? t : `${t}%`;
}

// Volumes: 950, 12.35K, 1.20M, 3.40B.
export function fmtCompact(value) {
  const d = parse(value);
  if (d === null) return "—";
  const whole = d.digits.slice(0, d.point).replace(/^0+/, "");
  // At least 10^power: the value shifted `shift` places, with its suffix.
  for (const [power, shift, suffix] of [[9, 9, "B"], [6, 6, "M"], [4, 3, "K"]]) {
    if (whole.length > power) return `${text(round({ ...d, point: d.point - shift }, 2))}${suffix}`;
  }
  return text(round(d, /[1-9]/.test(d.digits.slice(d.point)) ? 2 : 0));
}

export function direction(value) {
  const n = num(value);
  if (!n) return "flat";
  return n > 0 ? "up" : "down";
}

export function fmtAge(receivedAt) {
  if (!receivedAt) return "no data yet";
  const s = Math.max(0, Math.floor(Date.now() / 1000 - receivedAt));
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.floor(s / 60)} min ago`;
  if (s < 172800) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function sparkPoints(points, width = 100, height = 24) {
  if (!points || points.length < 2) return "";
  let low = Infinity;
  let high = -Infinity;
  for (const p of points) {
    if (p < low) low = p;
    if (p > high) high = p;
  }
  const span = high - low || 1;
  const step = width / (points.length - 1);
  return points
    .map((p, i) => `${(i * step).toFixed(1)},${(height - ((p - low) / span) * (height - 2) - 1).toFixed(1)}`)
    .join(" ");
}

// --- times ---------------------------------------------------------------------
// Every time on the desk follows the user's display zone (the JSON blob
// `tapeline-prefs` in templates/base.html): "exchange" = the instrument's
// exchange zone (US equities New York, crypto UTC), "local" = this browser's,
// "UTC", or an IANA name. Mirrors preferences/display.py.
let prefsCache = null;

export function displayPrefs() {
  if (prefsCache) return prefsCache;
  try {
    prefsCache = JSON.parse(document.getElementById("tapeline-prefs")?.textContent || "{}");
  } catch {
    prefsCache = {};
  }
  return prefsCache;
}

export const NEW_YORK = "America/New_York";

export function browserZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

// The zone to show a time in; `exchangeZone` is the instrument's (or the
// desk's market clock, New York, when a time belongs to no instrument).
export function resolveZone(exchangeZone = NEW_YORK) {
  const zone = displayPrefs().zone;
  if (!zone || zone === "exchange") return exchangeZone || NEW_YORK;
  if (zone === "local") return browserZone();
  return zone;
}

// "America/New_York" -> "New York"; "UTC" and "Etc/GMT-3" as written.
export function zoneLabel(zone) {
  if (zone === "UTC" || zone === "Etc/UTC") return "UTC";
  if (zone.startsWith("Etc/")) return zone.slice(4);
  return zone.split("/").pop().replaceAll("_", " ");
}

const dtfCache = new Map();
function dtf(zone, options) {
  const key = `${zone}|${JSON.stringify(options)}`;
  let f = dtfCache.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", { timeZone: zone, ...options });
    dtfCache.set(key, f);
  }
  return f;
}

function toDate(value) {
  if (value instanceof Date) return value;
  if (typeof value === "number") return new Date(value * 1000); // epoch seconds
  return new Date(value);
}

// The wall-clock fields of `date` in `zone`.
export function zoneParts(value, zone) {
  const out = {};
  const options = { hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" };
  for (const p of dtf(zone, options).formatToParts(toDate(value))) out[p.type] = p.value;
  return out;
}

// "UTC+1", "UTC-4", "UTC+5:30" or "UTC" at that moment.
export function utcOffset(zone, value = new Date()) {
  const name = dtf(zone, { timeZoneName: "longOffset" }).formatToParts(toDate(value)).find((p) => p.type === "timeZoneName")?.value || "GMT";
  const m = name.match(/GMT([+-])(\d\d):(\d\d)/);
  if (!m) return "UTC";
  const hours = String(Number(m[2]));
  return `UTC${m[1]}${hours}${m[3] === "00" ? "" : `:${m[3]}`}`;
}

// For notes and titles: "New York (UTC-4)", "UTC".
export function zoneTitle(zone, value = new Date()) {
  const label = zoneLabel(zone);
  const offset = utcOffset(zone, value);
  return label === offset ? label : `${label} (${offset})`;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

// `value` (Date, epoch seconds or ISO string) in `zone`, named:
// fmt "time" 14:32:05, "minute" 14:32, "datetime" 2026-12-06 14:32:05,
// "datetime_minute", "date" 2026-12-06, "day" Dec 6, "month" Dec, "year".
export function fmtTime(value, { zone = resolveZone(), fmt = "time", label = true } = {}) {
  const date = toDate(value);
  if (Number.isNaN(date.getTime())) return "—";
  const p = zoneParts(date, zone);
  const ymd = `${p.year}-${p.month}-${p.day}`;
  const text = {
    time: `${p.hour}:${p.minute}:${p.second}`,
    minute: `${p.hour}:${p.minute}`,
    datetime: `${ymd} ${p.hour}:${p.minute}:${p.second}`,
    datetime_minute: `${ymd} ${p.hour}:${p.minute}`,
    date: ymd,
    day: `${MONTHS[Number(p.month) - 1]} ${Number(p.day)}`,
    month: MONTHS[Number(p.month) - 1],
    year: p.year,
  }[fmt];
  return label ? `${text} ${zoneLabel(zone)}` : text;
}

// Server-rendered times (`{% show_time %}`: <time datetime data-tz-exchange
// data-fmt>) rewritten in the display zone: the server cannot know "local".
export function localizeTimes(root = document) {
  for (const el of root.querySelectorAll("time[data-fmt]")) {
    const zone = resolveZone(el.dataset.tzExchange);
    const text = fmtTime(el.dateTime, { zone, fmt: el.dataset.fmt });
    if (el.textContent !== text) el.textContent = text;
    el.title = zoneTitle(zone, toDate(el.dateTime));
  }
}
