// The page's one WebSocket to /ws/market/ (schema: streaming/consumers.py).
// Reconnects with exponential backoff and full jitter, resubscribes, and
// applies a snapshot document only when its per-instrument seq is newer.
// Importing it connects nothing: app.js calls startMarket() once per page;
// subscribing before then is fine (the connection sends what is wanted).
import { expose } from "./hooks.js";

const MAX_DELAY_MS = 30000;
const OFFLINE_AFTER_ATTEMPTS = 6;
// A socket can die without a close event (sleeping laptop, dropped NAT entry):
// ping when quiet, and give up on it when nothing at all arrives for a while.
const PING_AFTER_MS = 20000;
const DEAD_AFTER_MS = 45000;

class MarketSocket extends EventTarget {
  constructor() {
    super();
    this.path = null;
    this.wanted = new Map(); // symbol -> reference count
    this.seq = new Map(); // symbol -> last applied seq
    this.wantStatus = false;
    this.attempt = 0;
    this.ws = null;
    this.timer = null;
    this.state = "connecting";
    this.everConnected = false;
    this.feedAvailable = true;
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}${this.path}`;
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  setState(state) {
    this.state = state;
    this.emit("state", { state, attempt: this.attempt });
  }

  start() {
    if (this.ws) return;
    clearTimeout(this.timer);
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.onopen = () => {
      const resumed = this.everConnected;
      this.attempt = 0;
      this.everConnected = true;
      this.setState("connected");
      if (resumed) this.emit("resumed", {});
      this.resubscribe();
      if (this.wantStatus) this.send({ action: "status" });
    };
    this.lastFrameAt = Date.now();
    clearInterval(this.heartbeat);
    this.heartbeat = setInterval(() => {
      const quiet = Date.now() - this.lastFrameAt;
      if (quiet > DEAD_AFTER_MS) {
        // Do not wait for a close handshake that may never finish.
        clearInterval(this.heartbeat);
        ws.onclose = null;
        ws.close();
        if (this.ws === ws) this.ws = null;
        this.scheduleReconnect();
      } else if (quiet > PING_AFTER_MS) this.send({ action: "ping" });
    }, 5000);
    ws.onmessage = (event) => {
      this.lastFrameAt = Date.now();
      this.onFrame(event.data);
    };
    ws.onclose = (event) => {
      clearInterval(this.heartbeat);
      this.ws = null;
      if (event.code === 4401) {
        this.setState("offline");
        this.emit("unauthenticated", {});
        return;
      }
      this.scheduleReconnect();
    };
    ws.onerror = () => {}; // onclose follows and handles it
  }

  // Resubscribing brings a snapshot per symbol: the catch-up after a gap.
  resubscribe() {
    const symbols = [...this.wanted.keys()];
    for (let i = 0; i < symbols.length; i += 100) {
      this.send({ action: "subscribe", symbols: symbols.slice(i, i + 100) });
    }
  }

  scheduleReconnect() {
    this.attempt += 1;
    this.setState(
      navigator.onLine === false || this.attempt > OFFLINE_AFTER_ATTEMPTS ? "offline" : "reconnecting",
    );
    const base = Math.min(MAX_DELAY_MS, 500 * 2 ** (this.attempt - 1));
    const delay = base / 2 + Math.random() * (base / 2);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.start(), delay);
  }

  // Close from the client side (used by tests and the offline toggle).
  restart() {
    if (this.ws) this.ws.close();
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  subscribe(symbols) {
    const fresh = [];
    for (const s of symbols) {
      const n = this.wanted.get(s) || 0;
      this.wanted.set(s, n + 1);
      if (!n) fresh.push(s);
    }
    if (fresh.length) this.send({ action: "subscribe", symbols: fresh });
  }

  unsubscribe(symbols) {
    const gone = [];
    for (const s of symbols) {
      const n = this.wanted.get(s) || 0;
      if (n <= 1) {
        this.wanted.delete(s);
        this.seq.delete(s);
        gone.push(s);
      } else this.wanted.set(s, n - 1);
    }
    if (gone.length) this.send({ action: "unsubscribe", symbols: gone });
  }

  watchStatus() {
    this.wantStatus = true;
    this.send({ action: "status" });
  }

  onFrame(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    switch (frame.type) {
      case "snapshot": {
        // A snapshot is authoritative (it also resets seq after a worker restart).
        const docs = frame.snapshots.filter((d) => this.wanted.has(d.symbol));
        for (const d of docs) this.seq.set(d.symbol, d.seq || 0);
        if (frame.instruments) this.emit("instruments", frame.instruments);
        if (docs.length) this.emit("quotes", { docs, snapshot: true });
        break;
      }
      case "updates": {
        const docs = [];
        for (const d of frame.snapshots) {
          if (!this.wanted.has(d.symbol)) continue;
          const known = this.seq.get(d.symbol);
          if (known !== undefined && (d.seq || 0) <= known) continue;
          this.seq.set(d.symbol, d.seq || 0);
          docs.push(d);
        }
        if (docs.length) this.emit("quotes", { docs, snapshot: false, sentAt: frame.sent_at });
        break;
      }
      case "alert":
        this.emit("alert", frame.alert || {});
        break;
      case "status":
        this.emit("status", frame.status || {});
        break;
      case "feed":
        // The live feed store (Redis) went away or came back; the socket stays.
        this.feedAvailable = frame.available !== false;
        this.setState(this.feedAvailable ? "connected" : "unavailable");
        this.emit("feed", frame);
        // Back: resubscribing brings a snapshot per symbol (the catch-up).
        if (this.feedAvailable) this.resubscribe();
        break;
      case "error":
        this.emit("servererror", frame);
        break;
      default:
        this.emit(frame.type, frame);
    }
  }
}

export const market = new MarketSocket();

// Connect to the path the page names (`<body data-ws-path>`), and again when
// the browser comes back online.
export function startMarket() {
  if (market.path) return;
  market.path = document.body.dataset.wsPath;
  expose("tapelineMarket", market); // for tests and debugging in the console
  addEventListener("online", () => {
    if (!market.ws) market.start();
  });
  market.start();
}
