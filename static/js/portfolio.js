// Entry module of the portfolio page: open positions revalued on every price
// update (batched per frame), by the same rules as portfolio/ledger.py: the
// server puts each position's held cost, realized P/L, amount invested,
// quantity held before the session and the session's cash flow on its row.
import { direction, fmtPct, fmtPrice, fmtSigned, num } from "./format.js";
import { getJson } from "./page.js";
import { market } from "./socket.js";

const rows = new Map();
document.querySelectorAll("#positions tbody tr[data-symbol]").forEach((tr) => {
  const cells = {};
  tr.querySelectorAll("[data-p]").forEach((el) => (cells[el.dataset.p] = el));
  const d = tr.dataset;
  rows.set(d.symbol, {
    tr,
    cells,
    decimals: Number(d.decimals || 2),
    qty: num(d.qty),
    cost: num(d.cost),
    realized: num(d.realized) ?? 0,
    invested: num(d.invested) ?? 0,
    before: num(d.before) ?? 0,
    flow: num(d.flow) ?? 0,
    last: num(d.last),
    prev: num(d.prev),
  });
});
const totalsEl = {};
document.querySelectorAll("[data-total]").forEach((el) => (totalsEl[el.dataset.total] = el));
const allRealized = num(document.getElementById("totals")?.dataset.realized) ?? 0;

function colour(el, value) {
  el.classList.remove("up", "down", "flat");
  el.classList.add(direction(value));
}

// Value now − value at the previous close + the session's cash flow.
function dayPl(r) {
  if (r.prev === null && r.before !== 0) return null;
  return r.qty * r.last - r.before * (r.prev ?? 0) + r.flow;
}

function repaint() {
  let value = 0;
  let day = 0;
  let unrealized = 0;
  for (const r of rows.values()) {
    if (r.last === null) continue;
    r.value = r.qty * r.last;
    r.unrealized = r.value - r.cost;
    r.day = dayPl(r);
    value += r.value;
    unrealized += r.unrealized;
    if (r.day !== null) day += r.day;
  }
  for (const r of rows.values()) {
    if (r.last === null) continue;
    const total = r.realized + r.unrealized;
    r.cells.last.textContent = fmtPrice(r.last, r.decimals);
    r.cells.value.textContent = fmtPrice(r.value, 2);
    r.cells.day.textContent = fmtSigned(r.day, 2);
    r.cells.unrealized.textContent = fmtSigned(r.unrealized, 2);
    r.cells.return.textContent = fmtPct(r.invested ? (total / r.invested) * 100 : null);
    r.cells.weight.textContent = value ? `${fmtPrice((r.value / value) * 100, 1)}%` : "—";
    colour(r.cells.day, r.day);
    colour(r.cells.unrealized, r.unrealized);
  }
  const total = allRealized + unrealized;
  totalsEl.value.textContent = fmtPrice(value, 2);
  totalsEl.day.textContent = fmtSigned(day, 2);
  totalsEl.unrealized.textContent = fmtSigned(unrealized, 2);
  totalsEl.total.textContent = fmtSigned(total, 2);
  colour(totalsEl.day, day);
  colour(totalsEl.unrealized, unrealized);
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

// The transaction form's date follows the typed instrument: "today" where it
// trades (the server's `data-days`, by asset class: New York's for a stock,
// UTC's for a coin), while it still holds a day the page offered. A form
// sent while the symbol's class is being looked up waits for the answer.
function wireTradeDay() {
  const date = document.querySelector("input[data-days]");
  const form = date?.form;
  const symbol = form?.elements.symbol;
  if (!symbol) return;
  const days = JSON.parse(date.dataset.days);
  const offered = new Set(Object.values(days));
  let lookup = null;
  const follow = async (wanted) => {
    try {
      const data = await getJson(`${date.dataset.searchUrl}?q=${encodeURIComponent(wanted)}`);
      const match = data.results.find((r) => r.symbol === wanted);
      if (match && days[match.asset_class] && offered.has(date.value)) date.value = days[match.asset_class];
    } catch {
      // Unknown to the search: the server says so when the form is sent.
    }
  };
  symbol.addEventListener("change", () => {
    const wanted = symbol.value.trim().toUpperCase();
    if (!wanted) return;
    const done = (lookup = follow(wanted).finally(() => {
      if (lookup === done) lookup = null;
    }));
  });
  form.addEventListener("submit", async (event) => {
    if (!lookup) return;
    event.preventDefault();
    await lookup;
    form.requestSubmit(event.submitter);
  });
}
wireTradeDay();
