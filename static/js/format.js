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
