// Alerts: unseen alerts as toasts on a visit, "mark seen" without a reload,
// and the rule form showing only the fields the chosen kind uses. app.js
// calls startAlerts() on every signed-in page.
import { displayPrefs } from "./format.js";
import { getJson, postForm, setUnseenCount, toast, unseenCount } from "./page.js";

const SHOWN_KEY = "tapeline.alerts.toasted";

// What this page has counted: the alerts its socket brought (`heard`; ids,
// and how many came without one) and the server's unseen list when the page
// asked for it (`listed`). An alert in both is counted and toasted once: one
// recorded after the page was drawn but before its socket listened reaches
// the page only through the list.
const heard = new Set();
let heardWithoutId = 0;
let listed = null;

// A live alert: whether it is news to this page (count it, toast it), or the
// unseen list has already counted and toasted it.
export function hearAlert(id) {
  if (id == null) {
    heardWithoutId += 1;
    return true;
  }
  const news = !heard.has(id) && !listed?.has(id);
  heard.add(id);
  return news;
}

// On the alerts page, alerts recorded after its history was drawn: a line
// above the list says how many, with a link that draws it again (rows never
// move under the pointer on their own).
let arrivedSince = 0;
export function showArrived(count = 1) {
  const head = document.querySelector("#history .list-head");
  if (!head || count <= 0) return;
  arrivedSince += count;
  let line = document.getElementById("history-new");
  if (!line) {
    line = document.createElement("p");
    line.id = "history-new";
    line.className = "notice";
    line.setAttribute("role", "status");
    head.after(line);
  }
  const link = document.createElement("a");
  link.href = location.href;
  link.textContent = "Show them";
  line.replaceChildren(`${arrivedSince} new alert${arrivedSince === 1 ? "" : "s"} since this list was drawn. `, link);
}

// The unseen count as the server has it now, plus what the socket brought
// that it did not list; then, off the alerts pages (they list them
// themselves), a toast for each unseen alert not shown this browser session.
async function showUnseen({ toasts }) {
  const { alertsUrl, alertsUnseenUrl } = document.body.dataset;
  let data;
  try {
    data = await getJson(alertsUnseenUrl);
  } catch {
    return;
  }
  listed = new Set(data.alerts.map((a) => a.id));
  const unlisted = [...heard].filter((id) => !listed.has(id)).length;
  setUnseenCount(data.count + unlisted + heardWithoutId);
  // Recorded after the alerts page drew its history, before its socket
  // listened: only this list brings them.
  const drawnThrough = Number(document.getElementById("history")?.dataset.drawnThrough);
  if (drawnThrough >= 0) showArrived(data.alerts.filter((a) => a.id > drawnThrough && !heard.has(a.id)).length);
  // Pop-ups turned off: the unseen count in the header says enough.
  if (!toasts || displayPrefs().toast === false) return;
  const shown = new Set(JSON.parse(sessionStorage.getItem(SHOWN_KEY) || "[]"));
  // Quiet-hours alerts stay in the history; they never pop up. One the socket
  // brought has had its toast.
  const fresh = data.alerts.filter((a) => !shown.has(a.id) && !a.quiet && !heard.has(a.id)).reverse();
  for (const alert of fresh.slice(-3)) {
    toast(`🔔 ${alert.message}`, { kind: "alert", href: alert.url, timeout: 15000 });
    shown.add(alert.id);
  }
  if (fresh.length > 3 || data.count > data.alerts.length) {
    toast(`${data.count} unseen alert${data.count === 1 ? "" : "s"}`, { kind: "alert", href: data.alerts[0]?.url || alertsUrl, timeout: 15000 });
  }
  for (const alert of fresh) shown.add(alert.id);
  sessionStorage.setItem(SHOWN_KEY, JSON.stringify([...shown].slice(-200)));
}

function wireMarkSeen() {
  for (const form of document.querySelectorAll("form[data-mark-seen]")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const ids = form.elements.ids.value;
      try {
        await postForm(form.action, { ids });
      } catch {
        form.submit();
        return;
      }
      const rows = ids === "all" ? document.querySelectorAll("tr.unseen") : document.querySelectorAll(`tr[data-event="${ids}"]`);
      for (const row of rows) {
        row.classList.remove("unseen");
        const cell = row.lastElementChild;
        if (cell) cell.innerHTML = '<span class="empty">seen</span>';
      }
      const badge = document.querySelector("[data-unseen-count]");
      const left = document.querySelectorAll("tr.unseen").length;
      if (badge && ids === "all") badge.remove();
      else if (badge) badge.textContent = `${left} unseen`;
      if (ids === "all") form.remove();
      setUnseenCount(ids === "all" ? 0 : Math.max(0, unseenCount() - rows.length));
    });
  }
}

// Condition rows of a multi-condition rule: each row shows the inputs of its
// kind; empty rows beyond the first two stay hidden until "Add condition".
function wireConditionRows() {
  const box = document.querySelector("[data-conditions]");
  if (!box) return;
  const rows = [...box.querySelectorAll("[data-condition-row]")];
  const kindOf = (row) => row.querySelector("[data-condition-kind]");
  const showFields = (row) => {
    const kind = kindOf(row).value;
    for (const input of row.querySelectorAll("[data-kinds]")) {
      const field = input.closest(".field");
      if (field) field.hidden = !kind || !input.dataset.kinds.split(" ").includes(kind);
    }
  };
  const addButton = box.querySelector("[data-condition-add]");
  const refresh = () => {
    addButton.hidden = rows.every((row) => !row.hidden);
  };
  rows.forEach((row, index) => {
    row.hidden = index >= 2 && !kindOf(row).value;
    kindOf(row).addEventListener("change", () => showFields(row));
    row.querySelector("[data-condition-remove]").addEventListener("click", () => {
      for (const input of row.querySelectorAll("input, select")) input.value = "";
      showFields(row);
      row.hidden = true;
      refresh();
    });
    showFields(row);
  });
  addButton.addEventListener("click", () => {
    const next = rows.find((row) => row.hidden);
    if (next) next.hidden = false;
    refresh();
  });
  refresh();
}

function wireRuleForm() {
  const kind = document.querySelector("select[data-kind-select]");
  if (!kind) return;
  const update = () => {
    for (const input of document.querySelectorAll("[data-kinds]")) {
      if (input.closest("[data-condition-row]")) continue;
      const field = input.closest(".field") || (input.matches("fieldset") ? input : null);
      if (field) field.hidden = !input.dataset.kinds.split(" ").includes(kind.value);
    }
    const direction = document.querySelector("select[name=direction]");
    if (direction) {
      const below = direction.querySelector("option[value=below]");
      if (below) below.disabled = kind.value === "volume_spike";
      if (kind.value === "volume_spike") direction.value = "above";
    }
  };
  kind.addEventListener("change", update);
  update();
}

export function startAlerts() {
  wireMarkSeen();
  wireRuleForm();
  wireConditionRows();
  showUnseen({ toasts: !location.pathname.startsWith(document.body.dataset.alertsUrl) });
}
