// Entry module of the preferences page: typing a zone name picks "a named
// time zone", and quiet hours default to this browser's zone.
import { browserZone } from "./format.js";

const form = document.getElementById("prefs-form");
const zoneName = form.elements.zone_name;
zoneName.addEventListener("input", () => {
  const named = [...form.elements.zone_mode].find((r) => r.value === "named");
  if (named && zoneName.value) named.checked = true;
});
const quietZone = form.querySelector("[data-fill-browser-zone]");
if (quietZone && !quietZone.value) quietZone.value = browserZone();
