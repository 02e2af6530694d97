// Sessions: search by client (address or prefix), VIP, real, protocol, state or worker;
// the page of results is refreshed every second while it is shown. An admin can reset a
// session (its later packets find none, so a TCP peer sees its connection fail).

import * as api from "../api.js";
import { confirmDialog, fmtBytes, fmtCount, h, setText, syncRows, toast } from "../dom.js";
import { clearErrors, field, showErrors } from "../forms.js";

const PAGE = 50;
const FILTERS = [
  ["client", "Client", "198.51.100.0/24", "Address or prefix"],
  ["vip", "VIP", "10.0.100.10"],
  ["vip_port", "VIP port", "80"],
  ["real", "Real", "10.0.2.11"],
  ["real_port", "Real port", "8080"],
  ["state", "State", "established"],
  ["worker", "Worker", "0"],
];
const STATES = ["syn_sent", "syn_recv", "established", "fin_wait", "time_wait", "close"];

// The cursors of the pages before the one shown, for "Previous" (the API pages forward
// only): kept across the re-renders of one search, dropped when the search changes.
const trail = { search: "", cursors: [] };

function sessionKey(s) {
  return `${s.protocol} ${api.endpointId(s.client, s.client_port)} ${api.endpointId(s.vip, s.vip_port)}`;
}

export default function sessions(session, params) {
  let cursor = params.get("cursor") || "";
  const inputs = {};
  for (const [name, , placeholder] of FILTERS) {
    inputs[name] = h("input", { type: "text", spellcheck: "false", value: params.get(name) ?? "", placeholder });
  }
  inputs.state.setAttribute("list", "session-states");
  const protocol = h(
    "select",
    {},
    ["", "tcp", "udp"].map((p) => h("option", { value: p, selected: p === (params.get("protocol") ?? "") }, p || "any")),
  );

  const form = h(
    "form",
    { class: "filters", novalidate: true, role: "search", "aria-label": "Search sessions" },
    h("datalist", { id: "session-states" }, STATES.map((s) => h("option", { value: s }))),
    h(
      "div",
      { class: "grid" },
      FILTERS.map(([name, label, , hint]) => field(label, name, inputs[name], hint)),
      field("Protocol", "protocol", protocol),
    ),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit", class: "primary" }, "Search"),
      h("button", { type: "button", class: "secondary", onclick: reset }, "Clear"),
    ),
  );
  const summary = h("p", { class: "summary", role: "status" });
  const prev = h("button", { type: "button", class: "secondary small", onclick: previousPage }, "Previous");
  const next = h("button", { type: "button", class: "secondary small", onclick: nextPage }, "Next");
  let nextCursor = null;
  const rows = h("tbody");
  const headers = ["Protocol", "Client", "VIP", "Real", "Local address", "State", "Worker", "Expires in", "Bytes in / out"];

  const el = h(
    "section",
    { class: "sessions" },
    h("div", { class: "page-head" }, h("h1", {}, "Sessions")),
    form,
    h("div", { class: "panel-head" }, summary, h("div", { class: "pager" }, prev, next)),
    h(
      "table",
      { class: "sessions" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          headers.map((t, i) => h("th", { class: i >= 6 ? "num" : undefined }, t)),
          session.canWrite ? h("th", {}, h("span", { class: "visually-hidden" }, "Actions")) : null,
        ),
      ),
      rows,
    ),
  );

  // The search that runs: what the address says, not what is being typed.
  const applied = {};
  for (const [name] of [...FILTERS, ["protocol"]]) if (params.get(name)) applied[name] = params.get(name);
  const searchKey = JSON.stringify(applied);
  if (trail.search !== searchKey || !cursor) {
    trail.search = searchKey;
    trail.cursors = [];
  }

  function query() {
    const q = {};
    for (const [name] of FILTERS) if (inputs[name].value.trim()) q[name] = inputs[name].value.trim();
    if (protocol.value) q.protocol = protocol.value;
    return q;
  }

  // The search goes in the address, so a search can be bookmarked or sent to a colleague.
  function go() {
    const q = new URLSearchParams(query());
    if (cursor) q.set("cursor", cursor);
    const hash = `#/sessions${q.size ? `?${q}` : ""}`;
    session.go(hash);
  }

  function nextPage() {
    if (!nextCursor) return;
    trail.cursors.push(cursor);
    cursor = nextCursor;
    go();
  }

  function previousPage() {
    cursor = trail.cursors.pop() ?? "";
    go();
  }

  function reset() {
    for (const input of Object.values(inputs)) input.value = "";
    protocol.value = "";
    cursor = "";
    go();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    cursor = "";
    go();
  });

  async function resetSession(s) {
    const name = sessionKey(s);
    const ok = await confirmDialog(`Reset session ${name}?`, "Its later packets find no session: a TCP peer sees the connection fail.", "Reset session");
    if (!ok) return;
    const path = `/sessions/${s.protocol}/${encodeURIComponent(s.client)}/${s.client_port}/${encodeURIComponent(s.vip)}/${s.vip_port}`;
    try {
      await api.del(path);
      toast(`Reset session ${name}`, "ok");
      await refresh();
    } catch (err) {
      toast(`Resetting ${name} failed: ${err.message}`, "error");
    }
  }

  async function refresh() {
    let result;
    try {
      result = await api.get("/sessions", { ...applied, ...(cursor ? { cursor } : {}), limit: PAGE });
    } catch (err) {
      if (err.status !== 422) throw err;
      showErrors(form, err.errors);
      setText(summary, "");
      syncRows(rows, [], () => "", () => null, () => {});
      return;
    }
    if (form.querySelector(".field-error, .form-errors")) clearErrors(form);
    // Page numbers as far as this tab knows them (a bookmarked cursor starts a count).
    const first = trail.cursors.length * PAGE + 1;
    const last = first + result.items.length - 1;
    nextCursor = result.next_cursor;
    const more = nextCursor ? ", more on the next page" : "";
    if (result.items.length) setText(summary, `Sessions ${fmtCount(first)}–${fmtCount(last)}${more}`);
    else setText(summary, cursor ? "No more sessions." : "No sessions match.");
    prev.disabled = !cursor;
    next.disabled = !nextCursor;
    syncRows(
      rows,
      result.items,
      sessionKey,
      (s) => {
        const row = h("tr", {}, headers.map((_, i) => h("td", { class: i >= 6 ? "num" : undefined })));
        if (session.canWrite) {
          row.append(h("td", {}, h("button", { type: "button", class: "danger small", onclick: () => resetSession(s) }, "Reset")));
        }
        return row;
      },
      (row, s) => {
        const values = [
          s.protocol,
          api.endpointId(s.client, s.client_port),
          api.endpointId(s.vip, s.vip_port),
          api.endpointId(s.real, s.real_port),
          api.endpointId(s.local, s.local_port),
          s.state,
          s.worker,
          `${Math.round(s.expires_in)} s`,
          `${fmtBytes(s.bytes_in)} / ${fmtBytes(s.bytes_out)}`,
        ];
        values.forEach((v, i) => setText(row.children[i], v));
      },
    );
  }

  // A search walks every worker's session table: every 5 s, not every second.
  return { el, refresh, interval: 5000 };
}
