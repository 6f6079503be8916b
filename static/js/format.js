// Number formatting shared by every page; mirrors dashboard/quotes.py so the
// live values look exactly like the server-rendered first paint.
const cache = new Map();

function formatter(decimals, signed) {
  const key = `${decimals}:${signed}`;
  let f = cache.get(key);
  if (!f) {
    f = new Intl.NumberFormat("en-US", {
      minimumFractionDigits: decimals,
      maximumFractionDigits: decimals,
      signDisplay: signed ? "always" : "auto",
    });
    cache.set(key, f);
  }
  return f;
}

export function num(value) {
  if (value === null || value === undefined || value === "") return null;
  const n = Number(value);
  return Number.isFinite(n) ? n : null;
}

export function fmtPrice(value, decimals) {
  const n = num(value);
  return n === null ? "—" : formatter(decimals, false).format(n);
}

export function fmtSigned(value, decimals) {
  const n = num(value);
  return n === null ? "—" : formatter(decimals, true).format(n);
}

export function fmtPct(value) {
  const n = num(value);
  return n === null ? "—" : `${n >= 0 ? "+" : "-"}${Math.abs(n).toFixed(2)}%`;
}

export function fmtCompact(value) {
  const n = num(value);
  if (n === null) return "—";
  const m = Math.abs(n);
  if (m >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (m >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (m >= 1e4) return `${(n / 1e3).toFixed(2)}K`;
  return Number.isInteger(n) ? n.toFixed(0) : n.toFixed(2);
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

export function csrfToken() {
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  if (input) return input.value;
  const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

// POST form-encoded data with the CSRF token; resolves to the JSON reply.
export async function postForm(url, data) {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(data)) {
    if (Array.isArray(v)) v.forEach((x) => body.append(k, x));
    else body.append(k, v);
  }
  const response = await fetch(url, {
    method: "POST",
    headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
    body,
    credentials: "same-origin",
  });
  let payload = {};
  try {
    payload = await response.json();
  } catch {
    payload = { ok: false, error: `Server answered ${response.status}.` };
  }
  if (!response.ok) throw new Error(payload.error || `Server answered ${response.status}.`);
  return payload;
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
