// Alerts: unseen alerts as toasts on a visit, "mark seen" without a reload,
// and the rule form showing only the fields the chosen kind uses. app.js
// calls startAlerts() on every signed-in page.
import { displayPrefs } from "./format.js";
import { getJson, postForm, setUnseenCount, toast, unseenCount } from "./page.js";

const SHOWN_KEY = "tapeline.alerts.toasted";

// Alerts that fired while the browser was closed: toast each unseen one once
// per browser session (they stay unseen until marked on the alerts page).
async function showUnseen() {
  const { alertsUrl, alertsUnseenUrl } = document.body.dataset;
  let data;
  try {
    data = await getJson(alertsUnseenUrl);
  } catch {
    return;
  }
  // Pop-ups turned off: the unseen count in the header says enough.
  if (displayPrefs().toast === false) return;
  const shown = new Set(JSON.parse(sessionStorage.getItem(SHOWN_KEY) || "[]"));
  // Quiet-hours alerts stay in the history; they never pop up.
  const fresh = data.alerts.filter((a) => !shown.has(a.id) && !a.quiet).reverse();
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
  // The alerts pages list unseen alerts themselves.
  if (!location.pathname.startsWith(document.body.dataset.alertsUrl)) showUnseen();
}
