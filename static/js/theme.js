// The header's theme toggle (saved, applied without a reload) and
// server-rendered times rewritten in the display zone; app.js starts both.
import { localizeTimes } from "./format.js";
import { postForm, toast } from "./page.js";

const ORDER = ["system", "light", "dark"];
const ICONS = { system: "◐", light: "☀", dark: "☾" };

export function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  const button = document.getElementById("theme-toggle");
  if (button) {
    button.dataset.theme = theme;
    button.value = ORDER[(ORDER.indexOf(theme) + 1) % ORDER.length];
    button.textContent = ICONS[theme];
    button.title = `Theme: ${theme}`;
    button.setAttribute("aria-label", `Theme: ${theme} (change)`);
  }
  // Canvas drawings (the chart) read the colours once: tell them.
  document.dispatchEvent(new CustomEvent("tapeline:theme", { detail: { theme } }));
}

export function startTheme() {
  const form = document.getElementById("theme-form");
  // Saves go one after another: two quick clicks sent at once could land in
  // either order and leave the first choice saved.
  let saving = Promise.resolve();
  form?.addEventListener("submit", (e) => {
    e.preventDefault();
    const theme = form.elements.theme.value;
    const previous = document.documentElement.dataset.theme;
    applyTheme(theme);
    saving = saving.then(async () => {
      try {
        await postForm(form.action, { theme });
      } catch (err) {
        if (document.documentElement.dataset.theme === theme) applyTheme(previous);
        toast(`Theme not saved: ${err.message}`, { kind: "warn" });
      }
    });
  });
  localizeTimes();
}
