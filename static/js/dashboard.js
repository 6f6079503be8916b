// Entry module of the watchlist page (templates/dashboard/index.html): live
// rows, search-to-add, remove, reorder (buttons, the compact row menu on
// narrow screens, and drag and drop), moving lists, deleting a list.
import { getJson, postForm, toast } from "./page.js";
import { startQuotes, trackRow, untrackRow } from "./quotes.js";
import { market } from "./socket.js";

const section = document.getElementById("watchlist");
const tbody = document.getElementById("quote-rows");
const emptyNote = document.getElementById("empty-list");

function currentSymbols() {
  return [...tbody.querySelectorAll("tr[data-symbol]")].map((tr) => tr.dataset.symbol);
}

function refreshEmpty() {
  emptyNote.hidden = tbody.querySelector("tr[data-symbol]") !== null;
}

tbody.querySelectorAll("tr[data-symbol]").forEach(trackRow);
startQuotes();
market.subscribe(currentSymbols());

// --- reorder ---------------------------------------------------------------------
let saving = Promise.resolve();
function saveOrder() {
  const order = currentSymbols();
  saving = saving
    .then(() => postForm(section.dataset.reorderUrl, { order }))
    .catch((err) => toast(`Could not save the order: ${err.message}`, { kind: "warn" }));
  return saving;
}

tbody.addEventListener("click", (e) => {
  const button = e.target.closest("button[data-move]");
  if (!button) return;
  const tr = button.closest("tr");
  const step = Number(button.dataset.move);
  const sibling = step < 0 ? tr.previousElementSibling : tr.nextElementSibling;
  if (!sibling) return;
  if (step < 0) sibling.before(tr);
  else sibling.after(tr);
  if (button.getAttribute("role") === "menuitem") closeMenus({ focus: true });
  else button.focus();
  saveOrder();
});

// --- compact row menu (narrow screens: reorder and remove behind one button) ------
function closeMenus({ focus = false, except = null } = {}) {
  tbody.querySelectorAll("button.row-menu-toggle[aria-expanded='true']").forEach((toggle) => {
    if (toggle === except) return;
    toggle.setAttribute("aria-expanded", "false");
    document.getElementById(toggle.getAttribute("aria-controls")).hidden = true;
    if (focus) toggle.focus();
  });
}

function menuItems(menu) {
  return [...menu.querySelectorAll('[role="menuitem"]')];
}

function openMenu(toggle) {
  closeMenus({ except: toggle });
  const menu = document.getElementById(toggle.getAttribute("aria-controls"));
  // Fixed to the viewport: the table scrolls sideways and would clip it.
  const rect = toggle.getBoundingClientRect();
  menu.style.top = `${Math.round(rect.bottom + 2)}px`;
  menu.style.right = `${Math.round(document.documentElement.clientWidth - rect.right)}px`;
  toggle.setAttribute("aria-expanded", "true");
  menu.hidden = false;
  menuItems(menu)[0].focus();
}

tbody.addEventListener("click", (e) => {
  const toggle = e.target.closest("button.row-menu-toggle");
  if (toggle) {
    if (toggle.getAttribute("aria-expanded") === "true") closeMenus();
    else openMenu(toggle);
    return;
  }
  const remove = e.target.closest("button[data-remove]");
  if (remove) {
    closeMenus();
    remove.closest("tr").querySelector("form.js-remove").requestSubmit();
  }
});

tbody.addEventListener("keydown", (e) => {
  const menu = e.target.closest('[role="menu"]');
  if (!menu) return;
  const items = menuItems(menu);
  const at = items.indexOf(e.target);
  if (e.key === "Escape" || e.key === "Tab") {
    if (e.key === "Escape") e.preventDefault();
    closeMenus({ focus: e.key === "Escape" });
  } else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
    e.preventDefault();
    const step = e.key === "ArrowDown" ? 1 : -1;
    items[(at + step + items.length) % items.length].focus();
  } else if (e.key === "Home" || e.key === "End") {
    e.preventDefault();
    items[e.key === "Home" ? 0 : items.length - 1].focus();
  }
});

document.addEventListener("click", (e) => {
  if (!e.target.closest(".row-menu")) closeMenus();
});
window.addEventListener("resize", () => closeMenus());
document.querySelector(".table-wrap")?.addEventListener("scroll", () => closeMenus());

let dragged = null;
tbody.addEventListener("dragstart", (e) => {
  dragged = e.target.closest("tr");
  if (!dragged) return;
  dragged.classList.add("dragging");
  e.dataTransfer.effectAllowed = "move";
  e.dataTransfer.setData("text/plain", dragged.dataset.symbol);
});
tbody.addEventListener("dragover", (e) => {
  const over = e.target.closest("tr");
  if (!dragged || !over || over === dragged) return;
  e.preventDefault();
  const rect = over.getBoundingClientRect();
  if (e.clientY < rect.top + rect.height / 2) over.before(dragged);
  else over.after(dragged);
});
tbody.addEventListener("drop", (e) => e.preventDefault());
tbody.addEventListener("dragend", () => {
  if (!dragged) return;
  dragged.classList.remove("dragging");
  dragged = null;
  saveOrder();
});

// --- remove ------------------------------------------------------------------------
tbody.addEventListener("submit", async (e) => {
  const form = e.target.closest("form.js-remove");
  if (!form) return;
  e.preventDefault();
  const symbol = form.elements.symbol.value;
  try {
    await postForm(form.action, { symbol });
  } catch (err) {
    toast(err.message, { kind: "warn" });
    return;
  }
  const tr = form.closest("tr");
  const next = tr.nextElementSibling || tr.previousElementSibling;
  tr.remove();
  untrackRow(symbol);
  market.unsubscribe([symbol]);
  refreshEmpty();
  const visible = [...(next?.querySelectorAll("button") || [])].find((b) => b.offsetParent);
  (visible || document.getElementById("search-input")).focus();
  toast(`Removed ${symbol}.`);
});

// --- search and add ---------------------------------------------------------------
const input = document.getElementById("search-input");
const list = document.getElementById("search-results");
let active = -1;
let results = [];
let timer = null;
let seq = 0;

function closeResults() {
  list.hidden = true;
  input.setAttribute("aria-expanded", "false");
  input.removeAttribute("aria-activedescendant");
  active = -1;
}

function renderResults() {
  list.replaceChildren();
  const have = new Set(currentSymbols());
  if (!results.length) {
    const li = document.createElement("li");
    li.className = "none";
    li.textContent = "No matching instruments.";
    list.append(li);
  }
  results.forEach((r, i) => {
    const li = document.createElement("li");
    li.id = `sr-${i}`;
    li.setAttribute("role", "option");
    li.dataset.symbol = r.symbol;
    li.setAttribute("aria-selected", String(i === active));
    const sym = document.createElement("span");
    sym.className = "mono sym";
    sym.textContent = r.symbol;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = `${r.name} · ${r.exchange || r.asset_class}`;
    const add = document.createElement("button");
    add.type = "button";
    add.tabIndex = -1;
    add.textContent = have.has(r.symbol) ? "Added" : "Add";
    add.disabled = have.has(r.symbol);
    add.setAttribute("aria-label", `Add ${r.symbol} to the watchlist`);
    li.append(sym, name, add);
    list.append(li);
  });
  list.hidden = false;
  input.setAttribute("aria-expanded", "true");
  if (active >= 0) input.setAttribute("aria-activedescendant", `sr-${active}`);
}

async function runSearch() {
  const q = input.value.trim();
  if (!q) {
    closeResults();
    return;
  }
  const mine = ++seq;
  try {
    const payload = await getJson(`${input.dataset.url}?q=${encodeURIComponent(q)}`);
    if (mine !== seq) return; // a newer query is on its way
    results = payload.results;
    active = results.length ? 0 : -1;
    renderResults();
  } catch {
    toast("Search failed; try again.", { kind: "warn" });
  }
}

async function addSymbol(symbol) {
  if (currentSymbols().includes(symbol)) {
    toast(`${symbol} is already in this list.`);
    return;
  }
  let payload;
  try {
    payload = await postForm(section.dataset.addUrl, { symbol });
  } catch (err) {
    toast(err.message, { kind: "warn" });
    return;
  }
  const template = document.createElement("template");
  template.innerHTML = payload.row_html.trim();
  const tr = template.content.firstElementChild;
  tbody.append(tr);
  trackRow(tr);
  market.subscribe([payload.symbol]);
  refreshEmpty();
  toast(`Added ${payload.symbol}.`, { kind: "ok" });
  input.value = "";
  closeResults();
  input.focus();
}

input.addEventListener("input", () => {
  clearTimeout(timer);
  timer = setTimeout(runSearch, 150);
});
input.addEventListener("keydown", (e) => {
  if (e.key === "ArrowDown" || e.key === "ArrowUp") {
    if (!results.length) return;
    e.preventDefault();
    active = (active + (e.key === "ArrowDown" ? 1 : -1) + results.length) % results.length;
    renderResults();
  } else if (e.key === "Enter") {
    e.preventDefault();
    if (active >= 0 && results[active]) addSymbol(results[active].symbol);
  } else if (e.key === "Escape") {
    closeResults();
  }
});
list.addEventListener("mousedown", (e) => e.preventDefault()); // keep focus in the input
list.addEventListener("click", (e) => {
  const li = e.target.closest("li[data-symbol]");
  if (li) addSymbol(li.dataset.symbol);
});
input.addEventListener("blur", () => setTimeout(closeResults, 100));

// --- lists: move left/right, delete ------------------------------------------------
const tabs = document.getElementById("list-tabs");
document.querySelectorAll("button[data-list-move]").forEach((button) => {
  button.addEventListener("click", async () => {
    const wraps = [...tabs.querySelectorAll(".tab-wrap")];
    const i = wraps.findIndex((w) => w.dataset.id === section.dataset.id);
    const j = i + Number(button.dataset.listMove);
    if (i < 0 || j < 0 || j >= wraps.length) return;
    if (j < i) wraps[j].before(wraps[i]);
    else wraps[j].after(wraps[i]);
    const order = [...tabs.querySelectorAll(".tab-wrap")].map((w) => w.dataset.id);
    try {
      await postForm(tabs.dataset.reorderUrl, { order });
    } catch (err) {
      toast(`Could not move the list: ${err.message}`, { kind: "warn" });
    }
    button.focus();
  });
});

const deleteForm = document.getElementById("delete-list");
deleteForm?.addEventListener("submit", (e) => {
  if (!confirm(`Delete the watchlist “${deleteForm.dataset.name}”? Its instruments stay available.`)) {
    e.preventDefault();
  }
});

document.body.dataset.ready = "dashboard"; // page controls are wired (tests wait for this)
