// Paint probe: with the test hooks on (`<body data-test-hooks="1">`), records
// for each live update the renderer drew when it reached the screen, beside
// the times the server stamped on its way (streaming.publisher,
// streaming.hub), all in ms since the epoch (this machine's clock; the bench
// runs the server and the browser on one machine). bench.bench_latency reads
// them with window.tapelinePaintProbe.take(). Off, every call returns at once.
import { expose, hooksOn } from "./hooks.js";

const FIELDS = [
  "ts", "received_at", "pending_since", "normalized_at", "due_at", "published_at",
  "hub_at", "sent_at", "arrived", "rendered", "next_frame",
];
const LIMIT = 50000; // samples kept between two take() calls; past it, counted and dropped

let on = null; // decided at the first call, when the body exists
const arrivals = new WeakMap(); // doc -> [sent_at, arrived]
let samples = [];
let dropped = 0;

function enabled() {
  if (on === null) {
    on = hooksOn();
    if (on) expose("tapelinePaintProbe", { fields: FIELDS, take });
  }
  return on;
}

function take() {
  const taken = { samples, dropped };
  samples = [];
  dropped = 0;
  return taken;
}

const now = () => performance.timeOrigin + performance.now();
const ms = (seconds) => (seconds ? seconds * 1000 : null);

// The market socket's `quotes` event detail: the documents of one frame.
export function probeArrived(detail) {
  if (!enabled() || detail.snapshot) return;
  const at = [ms(detail.sentAt), now()];
  for (const d of detail.docs) arrivals.set(d, at);
}

// Called in the animation frame that wrote `batch` into the DOM. A message
// posted now runs once this frame's rendering work is done ("rendered"); the
// next animation frame starts after it was presented ("next_frame", the
// figure the bench calls pixels).
export function probePainted(batch) {
  if (!enabled()) return;
  const docs = batch.filter((d) => arrivals.has(d));
  if (!docs.length) return;
  const channel = new MessageChannel();
  channel.port1.onmessage = () => {
    const rendered = now();
    requestAnimationFrame(() => {
      const nextFrame = now();
      for (const d of docs) {
        if (samples.length >= LIMIT) {
          dropped += 1;
          continue;
        }
        samples.push([
          Date.parse(d.ts), ms(d.received_at), ms(d.pending_since), ms(d.normalized_at),
          ms(d.due_at), ms(d.published_at), ms(d.hub_at), ...arrivals.get(d), rendered, nextFrame,
        ]);
      }
    });
  };
  channel.port2.postMessage(null);
}
