// Portfolio: positions revalued on every price update (batched per frame).
import { direction, fmtPrice, fmtSigned, num } from "./format.js";
import { market } from "./socket.js";

const rows = new Map();
document.querySelectorAll("#positions tbody tr[data-symbol]").forEach((tr) => {
  const cells = {};
  tr.querySelectorAll("[data-p]").forEach((el) => (cells[el.dataset.p] = el));
  rows.set(tr.dataset.symbol, {
    tr,
    cells,
    decimals: Number(tr.dataset.decimals || 2),
    qty: num(tr.dataset.qty),
    cost: num(tr.dataset.cost),
    last: num(tr.dataset.last),
    prev: num(tr.dataset.prev),
  });
});
const totalsEl = {};
document.querySelectorAll("[data-total]").forEach((el) => (totalsEl[el.dataset.total] = el));

function colour(el, value) {
  el.classList.remove("up", "down", "flat");
  el.classList.add(direction(value));
}

function repaint() {
  let value = 0;
  let day = 0;
  let total = 0;
  for (const r of rows.values()) {
    if (r.last === null) continue;
    r.value = r.qty * r.last;
    value += r.value;
    total += r.value - r.qty * r.cost;
    if (r.prev !== null) day += r.qty * (r.last - r.prev);
  }
  for (const r of rows.values()) {
    if (r.last === null) continue;
    const rowDay = r.prev !== null ? r.qty * (r.last - r.prev) : null;
    const rowTotal = r.value - r.qty * r.cost;
    r.cells.last.textContent = fmtPrice(r.last, r.decimals);
    r.cells.value.textContent = fmtPrice(r.value, 2);
    r.cells.day.textContent = fmtSigned(rowDay, 2);
    r.cells.total.textContent = fmtSigned(rowTotal, 2);
    r.cells.weight.textContent = value ? `${((r.value / value) * 100).toFixed(1)}%` : "—";
    colour(r.cells.day, rowDay);
    colour(r.cells.total, rowTotal);
  }
  totalsEl.value.textContent = fmtPrice(value, 2);
  totalsEl.day.textContent = fmtSigned(day, 2);
  totalsEl.total.textContent = fmtSigned(total, 2);
  colour(totalsEl.day, day);
  colour(totalsEl.total, total);
}

let requested = false;
market.addEventListener("quotes", (e) => {
  let changed = false;
  for (const doc of e.detail.docs) {
    const r = rows.get(doc.symbol);
    if (!r) continue;
    const last = num(doc.last);
    if (last !== null) r.last = last;
    const prev = num(doc.prev_close);
    if (prev !== null) r.prev = prev;
    changed = true;
  }
  if (changed && !requested) {
    requested = true;
    requestAnimationFrame(() => {
      requested = false;
      repaint();
    });
  }
});
repaint();
market.subscribe([...rows.keys()]);
