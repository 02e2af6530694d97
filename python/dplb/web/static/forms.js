// Field errors: the API names the field of each error (`body.reals[1].port`,
// `services[3].nic` for a cross-check of the whole config, `query.client`); the form's
// inputs carry the same path without its prefix in `data-path`, and the reason is shown
// next to the input it concerns. What matches no input is shown at the top of the form.

import { h } from "./dom.js";

// `body.reals[1].port` -> `reals[1].port`; `services[3].nic` -> `nic`.
export function fieldPath(apiPath) {
  return apiPath.replace(/^(body|query|path)\./, "").replace(/^services\[\d+\]\.?/, "");
}

function parentPath(path) {
  const m = path.match(/^(.*)(\.[^.[\]]+|\[\d+\])$/);
  return m ? m[1] : null;
}

// The element of `form` the path belongs to: the input itself, else the closest
// enclosing group (a real's row for `reals[1]`).
function target(form, path) {
  for (let p = path; p; p = parentPath(p)) {
    const el = form.querySelector(`[data-path="${CSS.escape(p)}"]`);
    if (el) return { el, path: p };
  }
  return null;
}

export function clearErrors(form) {
  for (const el of form.querySelectorAll(".field-error, .form-errors")) el.remove();
  for (const el of form.querySelectorAll("[aria-invalid]")) {
    el.removeAttribute("aria-invalid");
    el.removeAttribute("aria-describedby");
  }
}

let errorIds = 0;

// Shows each error next to its field; returns how many matched no field.
export function showErrors(form, errors) {
  clearErrors(form);
  const general = [];
  for (const error of errors) {
    const found = error.path ? target(form, fieldPath(error.path)) : null;
    if (!found) {
      general.push(error);
      continue;
    }
    const id = `field-error-${++errorIds}`;
    const message = h("p", { class: "field-error", id, dataset: { errorFor: found.path } }, error.reason);
    const field = found.el.closest(".field") ?? found.el;
    if (found.el.matches("input, select, textarea")) {
      found.el.setAttribute("aria-invalid", "true");
      found.el.setAttribute("aria-describedby", id);
    }
    field.append(message);
    const details = field.closest("details");
    if (details) details.open = true;
  }
  if (general.length) {
    form.prepend(
      h(
        "div",
        { class: "form-errors", role: "alert" },
        general.map((e) => h("p", {}, e.path && !e.path.startsWith("(") ? `${e.path}: ${e.reason}` : e.reason)),
      ),
    );
  }
  const first = form.querySelector("[aria-invalid], .form-errors");
  first?.scrollIntoView({ block: "center" });
  if (first?.matches("input, select, textarea")) first.focus();
  return general.length;
}

// A labelled input wrapped as a field; `path` is its data-path (the API's field path).
export function field(label, path, input, hint) {
  input.dataset.path = path;
  input.id ||= `f-${path.replace(/[^A-Za-z0-9]+/g, "-")}`;
  input.name ||= path;
  return h(
    "div",
    { class: "field" },
    h("label", { for: input.id }, label),
    input,
    hint ? h("small", { class: "hint" }, hint) : null,
  );
}

// A number as the API wants it: an integer or decimal as a number, anything else as
// typed (the API then says what is wrong with it), blank as undefined (the default).
export function numberValue(text) {
  const t = String(text).trim();
  if (t === "") return undefined;
  return /^-?\d+(\.\d+)?$/.test(t) ? Number(t) : t;
}

export function textValue(text) {
  const t = String(text).trim();
  return t === "" ? undefined : t;
}
