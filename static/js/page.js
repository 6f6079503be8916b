// What every page's scripts share: the CSRF token, JSON requests, toasts and
// the unseen-alerts count in the navigation (templates/base.html).

// The cookie first: it is the current token (a log-in in another tab rotates
// it, and the page's form fields keep the old one); the form field when the
// cookie cannot be read.
export function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  if (m) return decodeURIComponent(m[1]);
  return document.querySelector("input[name=csrfmiddlewaretoken]")?.value || "";
}

// The JSON reply, or an Error with the server's `error` message.
async function reply(response) {
  const payload = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(payload?.error || `Server answered ${response.status}.`);
  return payload;
}

export async function getJson(url) {
  return reply(await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" }));
}

function post(url, body, headers = {}) {
  return fetch(url, {
    method: "POST",
    headers: { "X-CSRFToken": csrfToken(), Accept: "application/json", ...headers },
    body,
    credentials: "same-origin",
  }).then(reply);
}

// POST `data` form-encoded (arrays as repeated keys); resolves to the JSON reply.
export function postForm(url, data) {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(data)) {
    if (Array.isArray(v)) v.forEach((x) => body.append(k, x));
    else body.append(k, v);
  }
  return post(url, body);
}

export function postJson(url, data) {
  return post(url, JSON.stringify(data), { "Content-Type": "application/json" });
}

export function toast(text, { kind = "info", href = null, timeout = 6000 } = {}) {
  const toasts = document.getElementById("toasts");
  if (!toasts) return null;
  const el = document.createElement("div");
  el.className = `toast toast-${kind}`;
  const span = document.createElement("span");
  span.textContent = text;
  el.append(span);
  if (href) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = "View";
    el.append(" ", a);
  }
  const close = document.createElement("button");
  close.type = "button";
  close.className = "icon";
  close.setAttribute("aria-label", "Dismiss");
  close.textContent = "✕";
  close.onclick = () => el.remove();
  el.append(close);
  toasts.append(el);
  while (toasts.children.length > 5) toasts.firstElementChild.remove();
  if (timeout) setTimeout(() => el.remove(), timeout);
  return el;
}

// The unseen-alerts count in the navigation.
export function unseenCount() {
  return Number(document.getElementById("alerts-unseen")?.dataset.count || 0);
}

export function setUnseenCount(count) {
  const badge = document.getElementById("alerts-unseen");
  if (!badge) return;
  badge.dataset.count = String(count);
  badge.textContent = String(count);
  badge.setAttribute("aria-label", `${count} unseen alerts`);
  badge.hidden = count === 0;
}
