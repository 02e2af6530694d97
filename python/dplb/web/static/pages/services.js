// Services: the list (configured services with their running counters), one service's
// page (its reals: state, health, weight, connections, refreshed live), and the form
// that adds or edits a service, with each error from the node next to its field.

import * as api from "../api.js";
import {
  Rates,
  clear,
  confirmDialog,
  describeChange,
  fmtBytes,
  fmtCount,
  fmtDuration,
  fmtRate,
  h,
  setText,
  syncRows,
  toast,
} from "../dom.js";
import { clearErrors, field, numberValue, showErrors, textValue } from "../forms.js";

const SCHEDULERS = {
  rr: "rr · round robin",
  wrr: "wrr · weighted round robin",
  wlc: "wlc · least connections",
  maglev: "maglev · consistent hash",
};
const CLIENT_ADDRESS = {
  none: "none",
  toa: "toa · TCP option 254",
  "proxy-v1": "proxy-v1 · PROXY protocol v1",
  "proxy-v2": "proxy-v2 · PROXY protocol v2",
};

function serviceHash(svc) {
  return `#/services/${encodeURIComponent(svc.vip)}/${svc.port}/${svc.protocol}`;
}

function serviceId(svc) {
  return `${api.endpointId(svc.vip, svc.port)}/${svc.protocol}`;
}

function select(options, value) {
  return h(
    "select",
    {},
    Object.entries(options).map(([v, label]) => h("option", { value: v, selected: v === value }, label)),
  );
}

function cells(n) {
  return [...Array(n)].map(() => h("td"));
}

// -- the list -----------------------------------------------------------------------------

export function serviceList(session) {
  const rates = new Rates();
  const rows = h("tbody");
  const count = h("span", { class: "muted" });
  const empty = h("p", { class: "empty", hidden: true }, "No services yet.");
  const el = h(
    "section",
    {},
    h(
      "div",
      { class: "page-head" },
      h("div", {}, h("h1", {}, "Services"), count),
      session.canWrite ? h("a", { class: "button primary", href: "#/services/new" }, "Add service") : null,
    ),
    h(
      "table",
      { class: "services" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", {}, "Service"),
          h("th", {}, "Scheduler"),
          h("th", {}, "Client address"),
          h("th", {}, "Reals"),
          h("th", { class: "num" }, "Active"),
          h("th", { class: "num" }, "New / s"),
          h("th", { class: "num" }, "Packets / s"),
          h("th", { class: "num" }, "Connections"),
        ),
      ),
      rows,
    ),
    empty,
  );

  async function refresh() {
    const [services, stats, checks] = await Promise.all([
      api.get("/services"),
      api.get("/stats/services"),
      api.get("/health-checks"),
    ]);
    const byId = new Map(stats.map((s) => [s.id, s]));
    const down = new Set(
      checks.services.flatMap((s) => s.reals.filter((x) => x.health?.status === "down").map((x) => `${s.id} ${x.id}`)),
    );
    const sample = {};
    for (const s of stats) {
      sample[`${s.id} c`] = s.connections;
      sample[`${s.id} p`] = s.packets_in + s.packets_out;
    }
    const r = rates.sample(sample);
    setText(count, `${services.length} configured`);
    empty.hidden = services.length > 0;
    syncRows(
      rows,
      services,
      (svc) => svc.id,
      (svc) => {
        const row = h("tr", { dataset: { service: svc.id } }, cells(8));
        row.children[0].append(h("a", { href: serviceHash(svc) }, svc.id));
        for (const i of [4, 5, 6, 7]) row.children[i].className = "num";
        return row;
      },
      (row, svc) => {
        const st = byId.get(svc.id);
        const serving = svc.reals.filter(
          (x) => x.enabled && x.weight > 0 && !down.has(`${svc.id} ${api.endpointId(x.address, x.port)}`),
        ).length;
        setText(row.children[1], svc.scheduler);
        setText(row.children[2], svc.client_address);
        setText(row.children[3], `${serving} serving of ${svc.reals.length}`);
        setText(row.children[4], st ? fmtCount(st.active) : "not applied");
        setText(row.children[5], st ? fmtRate(r[`${svc.id} c`]) : "");
        setText(row.children[6], st ? fmtRate(r[`${svc.id} p`]) : "");
        setText(row.children[7], st ? fmtCount(st.connections) : "");
      },
    );
  }

  return { el, refresh };
}

// -- one service ----------------------------------------------------------------------------

function realState(real, stat) {
  if (!real.enabled) return ["quiesced", "warn", "Disabled: no new sessions; established ones finish"];
  if (real.weight === 0) return ["weight 0", "warn", "Weight 0: no new sessions; established ones finish"];
  if (!stat) return ["not applied", "warn", "In the desired config, not yet running"];
  return ["serving", "ok", "Gets new sessions"];
}

// Health as this node's checks found it (GET .../reals carries each real's `health`).
function realHealth(health) {
  if (!health || health.status === "unknown") return ["unknown", "muted", "This node runs no health checks", ""];
  if (health.status === "unchecked") return ["not checked", "muted", "Not checked (type none, or the real opted out): counted up", ""];
  const since = health.seconds_since_change == null ? "" : `for ${fmtDuration(health.seconds_since_change)}`;
  const last = health.last_result ?? "–";
  const why = health.status === "down" && health.down_reason ? ` (${health.down_reason} check)` : "";
  return [health.status, health.status === "up" ? "ok" : "bad", `Last check: ${last}${why}`, `${last} · ${since}`];
}

// The effective check type: a UDP service checks nothing unless it says so.
function checkType(service) {
  return service.health_check?.type ?? (service.protocol === "tcp" ? "tcp" : "none");
}

export function serviceDetail(session, key) {
  const rates = new Rates();
  const sid = serviceId(key);
  const facts = h("p", { class: "facts" });
  const rows = h("tbody");
  const active = h("span", { class: "value", dataset: { stat: "active" } }, "–");
  const cps = h("span", { class: "value", dataset: { stat: "connections" } }, "–");
  const ppsIn = h("span", { class: "value", dataset: { stat: "packets" } }, "–");
  const bytes = h("span", { class: "value small-value", dataset: { stat: "bytes" } }, "–");
  const missing = h("p", { class: "form-errors", hidden: true, role: "alert" });
  let service = null;
  let gone = false;

  const actions = session.canWrite
    ? h(
        "div",
        { class: "actions" },
        h("a", { class: "button secondary", href: `${serviceHash(key)}/edit` }, "Edit"),
        h("button", { type: "button", class: "danger", onclick: removeService }, "Delete"),
      )
    : null;

  const el = h(
    "section",
    { class: "service" },
    h("p", { class: "crumbs" }, h("a", { href: "#/services" }, "Services"), " / ", sid),
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, sid), facts), actions),
    missing,
    h(
      "div",
      { class: "tiles" },
      h("div", { class: "tile" }, h("span", { class: "label" }, "Active sessions"), active),
      h("div", { class: "tile" }, h("span", { class: "label" }, "New connections / s"), cps),
      h("div", { class: "tile" }, h("span", { class: "label" }, "Packets / s"), ppsIn),
      h("div", { class: "tile" }, h("span", { class: "label" }, "Bytes in / out"), bytes),
    ),
    h(
      "section",
      { class: "panel" },
      h(
        "div",
        { class: "panel-head" },
        h("h2", {}, "Reals"),
        h(
          "a",
          { href: `#/sessions?vip=${encodeURIComponent(key.vip)}&vip_port=${key.port}&protocol=${key.protocol}` },
          "Sessions of this service",
        ),
      ),
      h(
        "table",
        { class: "reals" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", {}, "Real"),
            h("th", {}, "State"),
            h("th", {}, "Health"),
            h("th", { class: "num" }, "Weight"),
            h("th", { class: "num" }, "Active"),
            h("th", { class: "num" }, "Connections"),
            h("th", { class: "num" }, "New / s"),
            h("th", { class: "num" }, "Bytes in / out"),
            session.canWrite ? h("th", {}, h("span", { class: "visually-hidden" }, "Actions")) : null,
          ),
        ),
        rows,
      ),
      session.canWrite ? addRealForm() : null,
    ),
  );

  function addRealForm() {
    const address = h("input", { type: "text", spellcheck: "false", placeholder: "10.0.2.11" });
    const port = h("input", { type: "text", inputmode: "numeric", placeholder: "8080" });
    const weight = h("input", { type: "text", inputmode: "numeric", placeholder: "100" });
    const form = h(
      "form",
      { class: "inline-form", novalidate: true, "aria-label": "Add a real" },
      h("h3", {}, "Add a real"),
      h(
        "div",
        { class: "row" },
        field("Address", "address", address),
        field("Port", "port", port),
        field("Weight", "weight", weight),
        h("button", { type: "submit", class: "primary" }, "Add real"),
      ),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form);
      const body = { address: textValue(address.value), port: numberValue(port.value) };
      const w = numberValue(weight.value);
      if (w !== undefined) body.weight = w;
      try {
        const result = await api.post(`${api.servicePath(key)}/reals`, body);
        toast(`Added real ${result.real?.id ?? ""}: ${describeChange(result)}`, result.status === "pending" ? "warn" : "ok");
        form.reset();
        await refresh();
      } catch (err) {
        if (err.errors) showErrors(form, err.errors);
        else throw err;
      }
    });
    return form;
  }

  async function realAction(real, verb, call) {
    try {
      const result = await call();
      toast(`${verb} ${api.endpointId(real.address, real.port)}: ${describeChange(result)}`, result.status === "pending" ? "warn" : "ok");
      await refresh();
    } catch (err) {
      toast(`${verb} ${api.endpointId(real.address, real.port)} failed: ${err.message}`, "error");
    }
  }

  async function removeReal(real) {
    const id = api.endpointId(real.address, real.port);
    const ok = await confirmDialog(`Remove real ${id}?`, "It gets no new sessions; its established sessions finish.", "Remove real");
    if (ok) await realAction(real, "Removed", () => api.del(api.realPath(key, real)));
  }

  async function removeService() {
    const ok = await confirmDialog(
      `Delete service ${sid}?`,
      "It takes no new connections; established sessions finish (drain).",
      "Delete service",
    );
    if (!ok) return;
    try {
      const result = await api.del(api.servicePath(key));
      toast(`Deleted service ${sid}: ${describeChange(result)}`, result.status === "pending" ? "warn" : "ok");
      session.go("#/services");
    } catch (err) {
      toast(`Deleting ${sid} failed: ${err.message}`, "error");
    }
  }

  function createRow(real) {
    const row = h("tr", { dataset: { real: api.endpointId(real.address, real.port) } }, cells(8));
    row.children[0].textContent = api.endpointId(real.address, real.port);
    const names = ["real", "state", "health", "weight", "active", "connections", "rate", "bytes"];
    names.forEach((name, i) => {
      row.children[i].dataset.field = name;
      if (i >= 3) row.children[i].className = "num";
    });
    if (session.canWrite) {
      const toggle = h("button", { type: "button", class: "secondary small", dataset: { action: "toggle" } });
      toggle.addEventListener("click", () => {
        const current = service.reals.find((x) => api.endpointId(x.address, x.port) === row.dataset.real);
        if (!current) return;
        if (current.enabled) realAction(current, "Quiesced", () => api.post(`${api.realPath(key, current)}/quiesce`));
        else realAction(current, "Enabled", () => api.post(`${api.realPath(key, current)}/enable`));
      });
      const remove = h("button", { type: "button", class: "danger small", onclick: () => removeReal(real) }, "Remove");
      row.append(h("td", { class: "row-actions" }, toggle, remove));
    }
    return row;
  }

  function updateRow(row, { real, stat, rate, health: seen }) {
    let [state, stateClass, stateTitle] = realState(real, stat);
    if (seen?.status === "down" && stateClass === "ok") {
      [state, stateClass, stateTitle] = ["down", "bad", "Failed its health checks: no new sessions"];
    }
    const [health, healthClass, healthTitle, detail] = realHealth(seen);
    const td = (name) => row.querySelector(`[data-field="${name}"]`);
    clear(td("state"), h("span", { class: `pill ${stateClass}`, title: stateTitle }, state));
    clear(
      td("health"),
      h("span", { class: `pill ${healthClass}`, title: healthTitle, dataset: { health: health } }, health),
      detail ? h("span", { class: "muted small health-detail" }, ` ${detail}`) : null,
    );
    setText(td("weight"), real.weight);
    setText(td("active"), stat ? fmtCount(stat.active) : "–");
    setText(td("connections"), stat ? fmtCount(stat.connections) : "–");
    setText(td("rate"), stat ? fmtRate(rate) : "–");
    setText(td("bytes"), stat ? `${fmtBytes(stat.bytes_in)} / ${fmtBytes(stat.bytes_out)}` : "–");
    const toggle = row.querySelector('[data-action="toggle"]');
    if (toggle) setText(toggle, real.enabled ? "Quiesce" : "Enable");
  }

  async function refresh() {
    if (gone) return;
    let stats;
    let reals;
    try {
      [service, stats, reals] = await Promise.all([
        api.get(api.servicePath(key)),
        api.get("/stats/reals"),
        api.get(`${api.servicePath(key)}/reals`),
      ]);
    } catch (err) {
      if (err.status !== 404) throw err;
      gone = true;
      missing.hidden = false;
      missing.textContent = `There is no service ${sid} (any more).`;
      return;
    }
    const hc = service.health_check;
    setText(
      facts,
      [
        `scheduler ${service.scheduler}`,
        `client address ${service.client_address}`,
        service.nic ? `on ${service.nic}` : null,
        checkType(service) === "none" ? "no health check" : `${checkType(service)} health check every ${hc.interval}s`,
      ]
        .filter(Boolean)
        .join(" · "),
    );
    const mine = stats.filter((s) => s.vip === service.vip && s.port === service.port && s.protocol === service.protocol);
    const byReal = new Map(mine.map((s) => [api.endpointId(s.address, s.real_port), s]));
    const healthOf = new Map(reals.map((x) => [api.endpointId(x.address, x.port), x.health]));
    const r = rates.sample(Object.fromEntries(mine.map((s) => [api.endpointId(s.address, s.real_port), s.connections])));
    const total = (name) => mine.reduce((a, s) => a + s[name], 0);
    const rs = rates.sample({ connections: total("connections"), packets: total("packets_in") + total("packets_out") }, performance.now());
    setText(active, fmtCount(total("active")));
    setText(cps, fmtRate(rs.connections));
    setText(ppsIn, fmtRate(rs.packets));
    setText(bytes, `${fmtBytes(total("bytes_in"))} / ${fmtBytes(total("bytes_out"))}`);
    syncRows(
      rows,
      service.reals.map((real) => {
        const id = api.endpointId(real.address, real.port);
        return { real, stat: byReal.get(id), rate: r[id], health: healthOf.get(id) };
      }),
      ({ real }) => api.endpointId(real.address, real.port),
      ({ real }) => createRow(real),
      updateRow,
    );
  }

  return { el, refresh };
}

// -- the form -------------------------------------------------------------------------------

const HEALTH_DEFAULTS = { type: "tcp", interval: 2, timeout: 1, rise: 2, fall: 3, path: "/" };
const CHECK_TYPES = { none: "none", tcp: "tcp", http: "http", https: "https", udp: "udp" };
const TIMEOUTS = ["tcp_syn", "tcp_established", "tcp_fin", "tcp_time_wait", "tcp_close", "udp"];

export function serviceForm(session, key) {
  const editing = key !== null;
  const title = editing ? `Edit ${serviceId(key)}` : "Add a service";
  const el = h("section", { class: "service-form" });
  if (!session.canWrite) {
    clear(el, h("h1", {}, title), h("p", { class: "form-errors" }, "Your token may only read: changes need an admin token."));
    return { el };
  }
  clear(el, h("h1", {}, title), h("p", { class: "muted" }, "Loading…"));
  load().catch((err) => clear(el, h("h1", {}, title), h("p", { class: "form-errors", role: "alert" }, err.message)));
  return { el };

  async function load() {
    const [node, service, stored] = await Promise.all([
      api.get("/node").catch(() => null),
      editing ? api.get(api.servicePath(key)) : Promise.resolve(null),
      editing ? storedEntry() : Promise.resolve(null),
    ]);
    const portNames = node ? node.dataplane.ports.map((p) => p.name) : [];
    let base = stored;
    if (service && !base) {
      base = structuredClone(service);
      delete base.id;
    }
    clear(el, h("h1", {}, title), build(service, base, portNames));
    el.querySelector("input:not([readonly]), select")?.focus();
  }

  // The service as the desired config writes it (without the defaults the API fills
  // in), found at the same index as in the list of services; null if that fails.
  async function storedEntry() {
    try {
      const [list, doc] = await Promise.all([api.get("/services"), api.get("/config")]);
      const i = list.findIndex((s) => s.id === serviceId(key));
      const entry = doc.config?.services?.[i];
      return i >= 0 && entry && entry.port === key.port ? structuredClone(entry) : null;
    } catch {
      return null;
    }
  }

  function build(service, stored, portNames) {
    const hc = service?.health_check ?? {};
    const to = service?.timeouts ?? {};

    const vip = h("input", { type: "text", spellcheck: "false", value: service?.vip ?? "", placeholder: "10.0.100.10", readOnly: editing });
    const port = h("input", { type: "text", inputmode: "numeric", value: service?.port ?? "", placeholder: "80", readOnly: editing });
    const protocol = select({ tcp: "tcp", udp: "udp" }, service?.protocol ?? "tcp");
    protocol.disabled = editing;
    const scheduler = select(SCHEDULERS, service?.scheduler ?? "wlc");
    const clientAddress = select(CLIENT_ADDRESS, service?.client_address ?? "none");
    const nicOptions = { "": "any port (the node picks)" };
    for (const name of portNames) nicOptions[name] = name;
    if (service?.nic && !(service.nic in nicOptions)) nicOptions[service.nic] = service.nic;
    const nic = select(nicOptions, service?.nic ?? "");

    const reals = h("div", { class: "real-rows" });
    const addReal = h("button", { type: "button", class: "secondary small", onclick: () => addRow() }, "Add real");

    const hcType = select(CHECK_TYPES, hc.type ?? (service?.protocol === "udp" ? "none" : HEALTH_DEFAULTS.type));
    const hcInputs = Object.fromEntries(
      ["interval", "timeout", "rise", "fall", "path"].map((name) => [
        name,
        h("input", {
          type: "text",
          inputmode: name === "path" ? undefined : "decimal",
          value: hc[name] ?? "",
          placeholder: String(HEALTH_DEFAULTS[name]),
        }),
      ]),
    );
    const toInputs = Object.fromEntries(
      TIMEOUTS.map((name) => [name, h("input", { type: "text", inputmode: "numeric", value: to[name] ?? "", placeholder: "node default" })]),
    );
    const maglevSize = h("input", { type: "text", inputmode: "numeric", value: service?.maglev_table_size ?? "", placeholder: "65537" });
    const fromClient = select(
      { refuse: "refuse · reset the client", trust: "trust · pass its addresses on" },
      service?.proxy_protocol_from_client ?? "refuse",
    );
    const connectionLog = h("input", { type: "checkbox", checked: service?.connection_log ?? false });

    const form = h(
      "form",
      { class: "service-form", novalidate: true, "aria-label": title },
      h(
        "fieldset",
        {},
        h("legend", {}, "Service"),
        h(
          "div",
          { class: "grid" },
          field("VIP", "vip", vip, "IPv4 or IPv6 address clients connect to"),
          field("Port", "port", port),
          field("Protocol", "protocol", protocol),
          field("Scheduler", "scheduler", scheduler),
          field("Client address", "client_address", clientAddress, "How the reals learn the client's address"),
          field("NIC", "nic", nic),
        ),
      ),
      h(
        "fieldset",
        { class: "reals-fieldset" },
        h("legend", {}, "Reals"),
        h(
          "div",
          { class: "real-row head", "aria-hidden": "true" },
          h("span", {}, "Address"),
          h("span", {}, "Port"),
          h("span", {}, "Weight"),
          h("span", {}, "Enabled"),
          h("span"),
        ),
        reals,
        h("div", { dataset: { path: "reals" }, class: "field" }, addReal),
      ),
      h(
        "details",
        { open: editing && hc.type !== HEALTH_DEFAULTS.type },
        h("summary", {}, "Health check"),
        h(
          "div",
          { class: "grid" },
          field("Type", "health_check.type", hcType),
          field("Interval (s)", "health_check.interval", hcInputs.interval),
          field("Timeout (s)", "health_check.timeout", hcInputs.timeout),
          field("Rise", "health_check.rise", hcInputs.rise, "Successes before up"),
          field("Fall", "health_check.fall", hcInputs.fall, "Failures before down"),
          field("HTTP path", "health_check.path", hcInputs.path),
        ),
      ),
      h(
        "details",
        {},
        h("summary", {}, "Timeouts"),
        h("p", { class: "muted small" }, "Seconds; blank keeps the node's timeout."),
        h("div", { class: "grid" }, TIMEOUTS.map((name) => field(name.replaceAll("_", " "), `timeouts.${name}`, toInputs[name]))),
      ),
      h(
        "details",
        {},
        h("summary", {}, "Advanced"),
        h(
          "div",
          { class: "grid" },
          field("Maglev table size", "maglev_table_size", maglevSize, "A prime number"),
          field("Client's own PROXY header", "proxy_protocol_from_client", fromClient),
          field("Connection log", "connection_log", connectionLog, "A log line per session opened and closed"),
        ),
      ),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "submit", class: "primary" }, editing ? "Save service" : "Create service"),
        h("a", { class: "button secondary", href: editing ? serviceHash(key) : "#/services" }, "Cancel"),
      ),
    );

    function renumber() {
      [...reals.children].forEach((row, i) => {
        row.dataset.path = `reals[${i}]`;
        for (const input of row.querySelectorAll("[data-name]")) {
          const name = input.dataset.name;
          input.dataset.path = `reals[${i}].${name}`;
          input.id = `f-reals-${i}-${name}`;
          input.setAttribute("aria-label", `Real ${i + 1} ${name}`);
        }
        row.querySelector(".remove").setAttribute("aria-label", `Remove real ${i + 1}`);
      });
    }

    function addRow(real = {}) {
      const input = (name, attrs) => h("input", { type: "text", dataset: { name }, ...attrs });
      const row = h(
        "div",
        { class: "real-row" },
        h("div", { class: "field" }, input("address", { spellcheck: "false", value: real.address ?? "", placeholder: "10.0.2.11" })),
        h("div", { class: "field" }, input("port", { inputmode: "numeric", value: real.port ?? "", placeholder: "8080" })),
        h("div", { class: "field" }, input("weight", { inputmode: "numeric", value: real.weight ?? "", placeholder: "100" })),
        h("div", { class: "field check" }, h("input", { type: "checkbox", dataset: { name: "enabled" }, checked: real.enabled ?? true })),
        h(
          "button",
          {
            type: "button",
            class: "remove secondary small",
            onclick: () => {
              row.remove();
              renumber();
            },
          },
          "Remove",
        ),
      );
      reals.append(row);
      renumber();
      return row;
    }

    for (const real of service?.reals ?? []) addRow(real);
    if (!editing) addRow();

    function realValue(row) {
      const value = (name) => row.querySelector(`[data-name="${name}"]`);
      const real = { address: textValue(value("address").value), port: numberValue(value("port").value) };
      const weight = numberValue(value("weight").value);
      if (weight !== undefined) real.weight = weight;
      if (!value("enabled").checked) real.enabled = false;
      return real;
    }

    // Each real the form started with, as stored: a real left as it was is written back
    // as it was stored.
    const origin = new WeakMap();
    [...reals.children].forEach((row, i) => {
      if (stored?.reals?.[i]) origin.set(row, { value: JSON.stringify(realValue(row)), stored: stored.reals[i] });
    });

    // What the form says, field by field; undefined where it is blank (the default).
    function values() {
      const reals_ = [...reals.children].map((row) => {
        const real = realValue(row);
        const from = origin.get(row);
        if (from && JSON.stringify(real) === from.value) return from.stored;
        // A real's own health-check settings have no field here: they stay.
        return from?.stored.health_check ? { ...real, health_check: from.stored.health_check } : real;
      });
      // The keys the form has no field for (expect_status, host, passive...) stay.
      const health = { ...(stored?.health_check ?? {}), type: hcType.value };
      for (const [name, input] of Object.entries(hcInputs)) {
        const v = name === "path" ? textValue(input.value) : numberValue(input.value);
        if (v !== undefined) health[name] = v;
        else delete health[name];
      }
      const timeouts = {};
      for (const [name, input] of Object.entries(toInputs)) {
        const v = numberValue(input.value);
        if (v !== undefined) timeouts[name] = v;
      }
      return {
        vip: textValue(vip.value),
        port: numberValue(port.value),
        protocol: protocol.value,
        scheduler: scheduler.value,
        client_address: clientAddress.value,
        nic: nic.value || undefined,
        maglev_table_size: numberValue(maglevSize.value),
        proxy_protocol_from_client: fromClient.value,
        connection_log: connectionLog.checked,
        reals: reals_,
        health_check: health,
        timeouts: Object.keys(timeouts).length ? timeouts : undefined,
      };
    }

    // Defaults a new service leaves out, so the stored config says only what was chosen.
    const QUIET = {
      client_address: "none",
      proxy_protocol_from_client: "refuse",
      connection_log: false,
      health_check: { type: HEALTH_DEFAULTS.type },
    };
    const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
    const initial = values();

    // The body to send: for a new service, what differs from the defaults; for an edit,
    // the service as stored with only the fields the operator changed replaced (fields
    // this form does not know stay as they are).
    function body() {
      const now = values();
      const out = editing ? structuredClone(stored) : {};
      for (const [name, value] of Object.entries(now)) {
        if (editing ? same(value, initial[name]) : name in QUIET && same(value, QUIET[name])) continue;
        if (value === undefined) delete out[name];
        else out[name] = value;
      }
      return out;
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form);
      const submit = form.querySelector('button[type="submit"]');
      submit.disabled = true;
      const data = body();
      try {
        const result = editing ? await api.put(api.servicePath(key), data) : await api.post("/services", data);
        const id = result.service?.id ?? serviceId(data);
        toast(`${editing ? "Saved" : "Created"} service ${id}: ${describeChange(result)}`, result.status === "pending" ? "warn" : "ok");
        session.go(serviceHash(result.service ?? key));
      } catch (err) {
        showErrors(form, err.errors ?? [{ path: "", reason: err.message }]);
      } finally {
        submit.disabled = false;
      }
    });
    return form;
  }
}
