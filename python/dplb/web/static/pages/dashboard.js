// The dashboard: the node's state, packets and new connections per second (from counter
// differences between two refreshes), sessions, drops, the load of each core, each port's
// traffic (bits and packets per second) and errors, and each service up or down at a
// glance (this node's health checks).

import * as api from "../api.js";
import { Rates, Sparkline, clear, fmtCount, fmtDuration, fmtRate, h, setText, syncRows } from "../dom.js";

function tile(name, label, unit, sparkline) {
  const value = h("span", { class: "value", dataset: { stat: name } }, "–");
  const sub = h("span", { class: "sub" }, unit);
  return {
    el: h("div", { class: "tile" }, h("span", { class: "label" }, label), value, sub, sparkline?.svg),
    value,
    sub,
  };
}

function configBadge(cfg) {
  if (cfg.last_result === "refused") {
    return h("span", { class: "badge bad" }, `version ${cfg.last_version} refused; v${cfg.applied_version ?? "–"} runs`);
  }
  if (cfg.desired_version && cfg.applied_version !== cfg.desired_version) {
    return h("span", { class: "badge warn" }, `version ${cfg.desired_version} pending; v${cfg.applied_version ?? "–"} runs`);
  }
  return h("span", { class: "badge ok" }, `config version ${cfg.applied_version ?? "–"} runs`);
}

export default function dashboard() {
  const rates = new Rates();
  const coreRates = new Rates();
  const dropRates = new Rates();
  const portRates = new Rates();
  const ppsLine = new Sparkline("Packets per second, last minute");
  const cpsLine = new Sparkline("New connections per second, last minute");
  const pps = tile("packets", "Packets / s", "received", ppsLine);
  const cps = tile("connections", "New connections / s", "sessions created", cpsLine);
  const sessions = tile("sessions", "Active sessions", "");
  const drops = tile("drops", "Drops / s", "");
  const fill = h("div", { class: "fill" });
  sessions.el.append(h("div", { class: "meter", "aria-hidden": "true" }, fill));

  const title = h("h1", {}, "Node");
  const facts = h("p", { class: "facts" });
  const badge = h("div", { class: "badge-slot" });
  const problems = h("ul", { class: "problems" });
  const cores = h("div", { class: "cores", "aria-label": "Load per core" });
  const coreHint = h("p", { class: "muted small" });
  const ports = h("tbody");
  const dropRows = h("tbody");
  const serviceHealth = h("ul", { class: "service-health", "aria-label": "Services up or down" });
  const healthSummary = h("p", { class: "muted small" });

  const el = h(
    "section",
    { class: "dashboard" },
    h("div", { class: "page-head" }, h("div", {}, title, facts), badge),
    problems,
    h("div", { class: "tiles" }, pps.el, cps.el, sessions.el, drops.el),
    h("section", { class: "panel" }, h("h2", {}, "Services"), healthSummary, serviceHealth),
    h(
      "div",
      { class: "columns" },
      h("section", { class: "panel" }, h("h2", {}, "Load per core"), coreHint, cores),
      h(
        "section",
        { class: "panel" },
        h("h2", {}, "Drops by reason"),
        h(
          "table",
          { class: "compact" },
          h("thead", {}, h("tr", {}, h("th", {}, "Reason"), h("th", { class: "num" }, "Total"), h("th", { class: "num" }, "Per second"))),
          dropRows,
        ),
      ),
    ),
    h(
      "section",
      { class: "panel" },
      h("h2", {}, "Ports"),
      h(
        "table",
        {},
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Name", "Device", "MAC", "Addresses", "Link", "Steering"].map((t) => h("th", {}, t)),
            ["Rx bit/s", "Tx bit/s", "Rx pkt/s", "Tx pkt/s", "Errors / s"].map((t) => h("th", { class: "num" }, t)),
          ),
        ),
        ports,
      ),
    ),
  );

  function showNode(node) {
    setText(title, `Node ${node.name}`);
    const dp = node.dataplane;
    setText(
      facts,
      `cluster ${node.cluster} · dplb ${node.software_version} · ${dp.kind} dataplane · ` +
        `${dp.workers} worker${dp.workers === 1 ? "" : "s"} · steering ${dp.steering} · up ${fmtDuration(dp.uptime_seconds)}`,
    );
    clear(badge, configBadge(node.config));
    clear(problems, node.config.errors.map((e) => h("li", { class: "bad" }, `${e.path}: ${e.reason}`)));
    syncRows(
      ports,
      dp.ports,
      (p) => p.name,
      (p) =>
        h(
          "tr",
          { dataset: { port: p.name } },
          [...Array(6)].map(() => h("td")),
          ["rx_bits", "tx_bits", "rx_pps", "tx_pps", "errors"].map((f) => h("td", { class: "num", dataset: { field: f } })),
        ),
      (row, p) => {
        const link = p.link_up === null || p.link_up === undefined ? "–" : p.link_up ? "up" : "down";
        [p.name, p.device, p.mac, p.addresses.join(", ") || "–", link, p.steering].forEach((v, i) => setText(row.children[i], v));
        // Traffic and errors per second, from the port's counters between two refreshes.
        const errors = ["rx_errors", "tx_errors", "rx_missed", "rx_nombuf"].reduce((a, k) => a + (p[k] ?? 0), 0);
        const r = portRates.sample({
          [`${p.name} rb`]: (p.rx_bytes ?? 0) * 8,
          [`${p.name} tb`]: (p.tx_bytes ?? 0) * 8,
          [`${p.name} rp`]: p.rx_packets ?? 0,
          [`${p.name} tp`]: p.tx_packets ?? 0,
          [`${p.name} e`]: errors,
        });
        const cell = (f) => row.querySelector(`[data-field="${f}"]`);
        setText(cell("rx_bits"), fmtRate(r[`${p.name} rb`]));
        setText(cell("tx_bits"), fmtRate(r[`${p.name} tb`]));
        setText(cell("rx_pps"), fmtRate(r[`${p.name} rp`]));
        setText(cell("tx_pps"), fmtRate(r[`${p.name} tp`]));
        setText(cell("errors"), fmtRate(r[`${p.name} e`]));
        cell("errors").classList.toggle("bad", (r[`${p.name} e`] ?? 0) > 0);
      },
    );
  }

  function showStats(stats) {
    const r = rates.sample({
      packets: stats.counters.rx_packets ?? 0,
      connections: stats.counters.sessions_created ?? 0,
      drops: Object.values(stats.drops).reduce((a, b) => a + b, 0),
    });
    setText(pps.value, fmtRate(r.packets));
    setText(cps.value, fmtRate(r.connections));
    setText(drops.value, fmtRate(r.drops));
    ppsLine.push(r.packets);
    cpsLine.push(r.connections);
    setText(sessions.value, fmtCount(stats.sessions));
    setText(sessions.sub, `of ${fmtCount(stats.session_capacity)}`);
    fill.style.width = `${Math.min(100, (100 * stats.sessions) / Math.max(1, stats.session_capacity))}%`;
    const total = Object.values(stats.drops).reduce((a, b) => a + b, 0);
    setText(drops.sub, `${fmtCount(total)} in all`);

    const dr = dropRates.sample(stats.drops);
    const nonzero = Object.entries(stats.drops).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
    syncRows(
      dropRows,
      nonzero.length ? nonzero : [["none", 0]],
      ([reason]) => reason,
      () => h("tr", {}, h("td"), h("td", { class: "num" }), h("td", { class: "num" })),
      (row, [reason, n]) => {
        setText(row.children[0], reason === "none" && n === 0 ? "no drops" : reason.replaceAll("_", " "));
        setText(row.children[1], reason === "none" && n === 0 ? "" : fmtCount(n));
        setText(row.children[2], reason === "none" && n === 0 ? "" : fmtRate(dr[reason]));
      },
    );
  }

  // Busy polls against idle ones where the node counts them (DPDK workers), else
  // packets per second, scaled to the busiest core (the harness has no polling loop).
  function showCores(list) {
    const polled = list.every((c) => typeof c.busy_polls === "number" && typeof c.idle_polls === "number");
    const sample = {};
    for (const c of list) {
      sample[`p${c.worker}`] = c.rx_packets ?? 0;
      if (polled) {
        sample[`b${c.worker}`] = c.busy_polls;
        sample[`i${c.worker}`] = c.idle_polls;
      }
    }
    const r = coreRates.sample(sample);
    const maxPps = Math.max(1, ...list.map((c) => r[`p${c.worker}`] ?? 0));
    setText(coreHint, polled ? "Share of polls that found packets." : "Packets per second, against the busiest core.");
    syncRows(
      cores,
      list,
      (c) => String(c.worker),
      (c) => {
        const bar = h("div", { class: "fill" });
        return h(
          "div",
          { class: "core", dataset: { core: c.worker } },
          h("span", { class: "name" }, `core ${c.worker}`),
          h("div", { class: "meter" }, bar),
          h("span", { class: "load", dataset: { field: "load" } }),
          h("span", { class: "sessions muted small" }),
        );
      },
      (row, c) => {
        const p = r[`p${c.worker}`];
        let share;
        let text;
        if (polled) {
          const busy = r[`b${c.worker}`];
          const idle = r[`i${c.worker}`];
          share = busy === null || busy + idle === 0 ? 0 : busy / (busy + idle);
          text = busy === null ? "–" : `${Math.round(share * 100)}% busy · ${fmtRate(p)} pkt/s`;
        } else {
          share = (p ?? 0) / maxPps;
          text = `${fmtRate(p)} pkt/s`;
        }
        row.querySelector(".fill").style.width = `${(share * 100).toFixed(1)}%`;
        row.querySelector(".meter").classList.toggle("hot", polled && share > 0.8);
        setText(row.querySelector(".load"), text);
        setText(row.querySelector(".sessions"), `${fmtCount(c.sessions)} sessions`);
      },
    );
  }

  // Each service as a pill: up while one of its reals is up (what the node would announce).
  function showHealth(checks) {
    const down = checks.services.filter((s) => !s.can_serve).length;
    setText(
      healthSummary,
      checks.checker.enabled
        ? `${checks.services.length - down} up, ${down} down · ${checks.checker.reals_checked} reals checked`
        : "Health checks are off on this node (health.enabled: false).",
    );
    syncRows(
      serviceHealth,
      checks.services,
      (s) => s.id,
      (s) => h("li", { dataset: { service: s.id } }, h("a", { href: `#/services/${encodeURIComponent(s.vip)}/${s.port}/${s.protocol}` }, h("span", { class: "pill" }))),
      (li, s) => {
        const pill = li.querySelector(".pill");
        pill.className = `pill ${s.can_serve ? (s.reals_down ? "warn" : "ok") : "bad"}`;
        pill.title = `${s.reals_up} of ${s.reals_up + s.reals_down} reals up · ${s.check} check`;
        li.dataset.up = String(s.can_serve);
        setText(pill, `${s.id} ${s.can_serve ? "up" : "down"}${s.reals_down ? ` (${s.reals_down} down)` : ""}`);
      },
    );
  }

  async function refresh() {
    const [node, stats, coreList, checks] = await Promise.all([
      api.get("/node"),
      api.get("/stats"),
      api.get("/stats/cores"),
      api.get("/health-checks"),
    ]);
    showNode(node);
    showStats(stats);
    showCores(coreList);
    showHealth(checks);
  }

  return { el, refresh };
}
