// Small DOM helpers shared by the pages. Text always goes in as text (textContent), never
// as markup: names and error messages from the node cannot inject anything.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "value") {
      el.value = value;
    } else if (key === "checked" || key === "disabled" || key === "readOnly") {
      el[key] = Boolean(value);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// Sets an element's text only when it changed (keeps selections and avoids repaints).
export function setText(el, text) {
  const value = String(text);
  if (el.textContent !== value) el.textContent = value;
}

// Keeps `tbody`'s rows in step with `items`: one row per key, created once with
// `create(item)` and brought up to date with `update(row, item)`, in the items' order.
// Rows are never rebuilt on a refresh, so a button being clicked stays where it is.
export function syncRows(tbody, items, key, create, update) {
  const existing = new Map();
  for (const row of tbody.children) if (row.dataset.key !== undefined) existing.set(row.dataset.key, row);
  let cursor = tbody.firstElementChild;
  for (const item of items) {
    const k = key(item);
    let row = existing.get(k);
    if (row) existing.delete(k);
    else {
      row = create(item);
      row.dataset.key = k;
    }
    update(row, item);
    if (row !== cursor) tbody.insertBefore(row, cursor);
    else cursor = cursor.nextElementSibling;
  }
  for (const row of existing.values()) row.remove();
  for (const row of [...tbody.children]) if (row.dataset.key === undefined) row.remove();
}

// -- numbers ----------------------------------------------------------------------------

const compact = new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 1 });
const whole = new Intl.NumberFormat("en");

export function fmtCount(n) {
  return Math.abs(n) < 10000 ? whole.format(Math.round(n)) : compact.format(n);
}

export function fmtRate(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  if (n > 0 && n < 10) return n.toFixed(1);
  return fmtCount(n);
}

export function fmtBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

export function fmtDuration(seconds) {
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400);
  const hh = Math.floor((s % 86400) / 3600);
  const mm = Math.floor((s % 3600) / 60);
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${mm}m`;
  if (mm) return `${mm}m ${s % 60}s`;
  return `${s}s`;
}

export function fmtTime(iso) {
  if (!iso) return "–";
  const t = new Date(iso);
  return t.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

// Rates from counters: each sample's difference to the one before, per second. A
// counter that went down (a node restarted) gives no rate for that sample.
export class Rates {
  constructor() {
    this.last = new Map();
  }

  // `values`: {name: counter}; returns {name: per second, or null at the first sample}.
  sample(values, now = performance.now()) {
    const out = {};
    for (const [name, value] of Object.entries(values)) {
      const prev = this.last.get(name);
      const dt = prev ? (now - prev.t) / 1000 : 0;
      out[name] = prev && dt > 0 && value >= prev.v ? (value - prev.v) / dt : null;
      this.last.set(name, { v: value, t: now });
    }
    return out;
  }
}

// -- charts -------------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";

// A line of the last `size` values, scaled to its own maximum.
export class Sparkline {
  constructor(label, size = 60) {
    this.size = size;
    this.values = [];
    this.svg = document.createElementNS(SVG, "svg");
    this.svg.setAttribute("viewBox", `0 0 ${size - 1} 40`);
    this.svg.setAttribute("preserveAspectRatio", "none");
    this.svg.setAttribute("class", "sparkline");
    this.svg.setAttribute("role", "img");
    this.svg.setAttribute("aria-label", label);
    this.area = document.createElementNS(SVG, "polygon");
    this.area.setAttribute("class", "area");
    this.line = document.createElementNS(SVG, "polyline");
    this.line.setAttribute("class", "line");
    this.svg.append(this.area, this.line);
  }

  push(value) {
    this.values.push(value ?? 0);
    if (this.values.length > this.size) this.values.shift();
    const max = Math.max(1, ...this.values);
    const offset = this.size - this.values.length;
    const points = this.values.map((v, i) => `${offset + i},${(40 - (v / max) * 36).toFixed(1)}`);
    this.line.setAttribute("points", points.join(" "));
    this.area.setAttribute("points", `${offset},40 ${points.join(" ")} ${this.size - 1},40`);
  }
}

// -- feedback -----------------------------------------------------------------------------

export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  const item = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  box.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 10000 : 5000);
}

// A modal question; resolves true when the operator confirms.
export function confirmDialog(title, message, action = "Confirm", danger = true) {
  return new Promise((resolve) => {
    const dialog = h(
      "dialog",
      { class: "confirm", "aria-label": title },
      h("h2", {}, title),
      h("p", {}, message),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", class: "secondary", onclick: () => dialog.close("cancel") }, "Cancel"),
        h(
          "button",
          { type: "button", class: danger ? "danger" : "primary", onclick: () => dialog.close("ok") },
          action,
        ),
      ),
    );
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

// What a write did, for a toast: "version 4 applied".
export function describeChange(result) {
  if (result.status === "unchanged") return `nothing changed (version ${result.version})`;
  if (result.status === "pending") return `written as version ${result.version}, not applied yet`;
  return `version ${result.version} applied`;
}
