// Entry module of every signed-in page (templates/base.html): the theme
// toggle, the connection badge, toasts for the live connection and alerts,
// the alerts helpers, then the page's one market socket. A page's own entry
// module (dashboard.js, instrument.js, ...) runs after this one.
import { hearAlert, showArrived, startAlerts } from "./alerts.js";
import { displayPrefs, fmtTime, resolveZone } from "./format.js";
import { setUnseenCount, toast, unseenCount } from "./page.js";
import { market, startMarket } from "./socket.js";
import { startTheme } from "./theme.js";

const BADGE_TEXT = { connected: "connected", unavailable: "live feed unavailable" };

function wireConnection() {
  const badge = document.getElementById("conn-badge");
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
}

// An alert fired for this user: one more unseen, and a toast unless muted
// (or the page's unseen list has counted and toasted it already).
function wireAlertToasts() {
  const alertsUrl = document.body.dataset.alertsUrl;
  market.addEventListener("alert", (e) => {
    const alert = e.detail;
    if (!hearAlert(alert.id)) return;
    setUnseenCount(unseenCount() + 1);
    showArrived();
    // Toasts off, or the owner's quiet hours: counted above, no pop-up.
    if (alert.toast === false || displayPrefs().toast === false) return;
    let text = alert.message || `${alert.symbol || ""} alert ${alert.name || ""} fired`.trim();
    // Recorded late (the database was away when it fired): say when it fired.
    // Crypto pairs (BASE/QUOTE) keep UTC as their exchange time.
    const exchange = alert.symbol?.includes("/") ? "UTC" : undefined;
    if (alert.delayed && alert.ts) text += ` (delayed; fired ${fmtTime(alert.ts, { zone: resolveZone(exchange) })})`;
    toast(`🔔 ${text}`, { kind: "alert", href: alert.url || alertsUrl || null, timeout: 15000 });
  });
}

startTheme();
wireConnection();
wireAlertToasts();
if (document.body.dataset.alertsUrl) startAlerts();
startMarket();
