// The PocketBase client the page shares, and small helpers every part uses.
//
// The page keeps nothing but what the SDK keeps (its auth token, in localStorage): no key is
// ever read back from the server (the hooks hide them), and the key fields are cleared once
// saved.
import PocketBase from "/vendor/pocketbase.es.mjs";

export const pb = new PocketBase(window.location.origin);
pb.autoCancellation(false);

export const byId = (id) => document.getElementById(id);

// An element with attributes (`on*` become listeners) and children (text is escaped by the DOM).
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) {
      continue;
    }
    if (name.startsWith("on")) {
      node.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      node.className = value;
    } else if (value === true) {
      node.setAttribute(name, "");
    } else {
      node.setAttribute(name, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child !== undefined && child !== null && child !== false) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return node;
}

// What the server said when it refused, in words a person reads: its message, then the
// message of each field it named.
export function errorText(err) {
  if (!err || typeof err !== "object") {
    return String(err);
  }
  if (err.status === 0) {
    return "The server did not answer: check your connection and try again.";
  }
  const response = err.response || {};
  const parts = [];
  if (response.message) {
    parts.push(response.message);
  }
  for (const [field, detail] of Object.entries(response.data || {})) {
    if (detail && typeof detail === "object" && detail.message && detail.message !== response.message) {
      parts.push(`${field.replace(/_/g, " ")}: ${detail.message}`);
    }
  }
  return parts.join(" ") || err.message || "Something went wrong.";
}

export function when(text) {
  const moment = text ? new Date(String(text).replace(" ", "T")) : null;
  if (!moment || Number.isNaN(moment.getTime())) {
    return "";
  }
  return moment.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

// Runs `work` with `button` disabled, so a double click sends nothing twice.
export async function busy(button, work) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

export function notice(text) {
  const box = byId("notice");
  box.textContent = text || "";
  box.hidden = !text;
}
