// Loaded on every signed-in page: connection badge, toasts, alert toasts.
import { displayPrefs, fmtTime, resolveZone } from "./format.js";
import { market } from "./socket.js";

const badge = document.getElementById("conn-badge");
const toasts = document.getElementById("toasts");
const alertsUrl = document.body.dataset.alertsUrl;

export function toast(text, { kind = "info", href = null, timeout = 6000 } = {}) {
  if (!toasts) return;
  const el = document.createElement("div");
  el.className = `toast toast-${kind}`;
  const span = document.createElement("span");
  span.textContent = text;
  el.append(span);
  if (href) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = "View";
    el.append(" ", a);
  }
  const close = document.createElement("button");
  close.type = "button";
  close.className = "icon";
  close.setAttribute("aria-label", "Dismiss");
  close.textContent = "✕";
  close.onclick = () => el.remove();
  el.append(close);
  toasts.append(el);
  while (toasts.children.length > 5) toasts.firstElementChild.remove();
  if (timeout) setTimeout(() => el.remove(), timeout);
  return el;
}

const BADGE_TEXT = { connected: "connected", unavailable: "live feed unavailable" };
const liveNotice = document.getElementById("live-notice");

let lastState = null;
let lostToast = null;
market.addEventListener("state", (e) => {
  const { state, attempt } = e.detail;
  if (badge) {
    badge.dataset.state = state;
    badge.textContent = state === "reconnecting" ? `reconnecting (attempt ${attempt})` : BADGE_TEXT[state] || state;
  }
  if (state === "unavailable") {
    // The socket is up but Redis is not: the server says so, no reconnect loop.
    lostToast?.remove();
    lostToast = null;
  } else if (state === "connected" && lastState && lastState !== "connected" && lastState !== "connecting") {
    lostToast?.remove();
    lostToast = null;
    toast("Live data connection restored.", { kind: "ok" });
  } else if (state !== "connected" && lastState === "connected") {
    // Stays up while the connection is down; replaced when it comes back.
    lostToast = toast("Live data connection lost; reconnecting…", { kind: "warn", timeout: 0 });
  }
  lastState = state;
});

market.addEventListener("feed", (e) => {
  if (liveNotice) liveNotice.hidden = e.detail.available !== false;
});

market.addEventListener("unauthenticated", () => {
  toast("Your session ended. Log in again.", { kind: "warn", href: document.body.dataset.loginUrl, timeout: 0 });
});

const unseen = document.getElementById("alerts-unseen");
market.addEventListener("alert", (e) => {
  const alert = e.detail;
  if (unseen) {
    const count = Number(unseen.dataset.count || 0) + 1;
    unseen.dataset.count = String(count);
    unseen.textContent = String(count);
    unseen.setAttribute("aria-label", `${count} unseen alerts`);
    unseen.hidden = false;
  }
  // Toasts off, or the owner's quiet hours: counted above, no pop-up.
  if (alert.toast === false || displayPrefs().toast === false) return;
  let text = alert.message || `${alert.symbol || ""} alert ${alert.name || ""} fired`.trim();
  // Recorded late (the database was away when it fired): say when it fired.
  // Crypto pairs (BASE/QUOTE) keep UTC as their exchange time.
  const exchange = alert.symbol?.includes("/") ? "UTC" : undefined;
  if (alert.delayed && alert.ts) text += ` (delayed; fired ${fmtTime(alert.ts, { zone: resolveZone(exchange) })})`;
  toast(`🔔 ${text}`, { kind: "alert", href: alert.url || alertsUrl || null, timeout: 15000 });
});

market.addEventListener("servererror", (e) => {
  const f = e.detail;
  if (f.code === "unknown_symbols") toast(`Unknown instrument: ${f.symbols.join(", ")}`, { kind: "warn" });
  else if (f.code === "too_many_instruments") toast(f.message, { kind: "warn" });
});

// Staff only (the server sends them to staff sockets): feed monitor ops alerts.
market.addEventListener("ops_alert", (e) => {
  const alert = e.detail.alert || {};
  const text = alert.active ? `⚠ Ops: ${alert.message}` : `✓ Ops alert cleared: ${alert.message}`;
  toast(text, { kind: alert.active ? "warn" : "ok", href: alert.url || null, timeout: alert.active ? 0 : 8000 });
});
