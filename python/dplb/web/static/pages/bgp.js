// BGP: the node's BIRD (up, down, not installed), its BGP sessions and what each gets,
// the routes dplb announces, the last reconfiguration, and the drain (admins: Drain and
// Undrain buttons).

import * as api from "../api.js";
import { clear, confirmDialog, fmtTime, h, setText, syncRows, toast } from "../dom.js";

function birdBadge(b) {
  if (!b.enabled) return h("span", { class: "badge" }, "BGP off");
  if (b.bird !== "up") return h("span", { class: "badge bad" }, `BIRD ${b.bird.replace("_", " ")}`);
  if (!b.in_sync) return h("span", { class: "badge warn" }, "BIRD up · routes not in sync");
  return h("span", { class: "badge ok" }, "BIRD up · routes in sync");
}

export default function bgp(session) {
  const badge = h("div", { class: "badge-slot" });
  const facts = h("p", { class: "facts" });
  const problems = h("ul", { class: "problems" });
  const drainText = h("p", { dataset: { field: "drain" } });
  const drainButton = h("button", { type: "button", class: "danger", dataset: { action: "drain" }, onclick: drain }, "Drain");
  const undrainButton = h("button", { type: "button", class: "secondary", dataset: { action: "undrain" }, onclick: undrain }, "Undrain");
  const sessions = h("tbody");
  const routes = h("tbody");
  const routesTitle = h("h2", {}, "Announced routes");

  const el = h(
    "section",
    { class: "bgp" },
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "BGP"), facts), badge),
    problems,
    h("section", { class: "panel" }, h("h2", {}, "Drain"), drainText, session.canWrite ? h("div", { class: "actions" }, drainButton, undrainButton) : null),
    h(
      "section",
      { class: "panel" },
      h("h2", {}, "Sessions"),
      h("table", {}, h("thead", {}, h("tr", {}, ["Session", "Neighbor", "AS", "State", "Info", "Routes exported"].map((t) => h("th", {}, t)))), sessions),
    ),
    h(
      "section",
      { class: "panel" },
      routesTitle,
      h("table", {}, h("thead", {}, h("tr", {}, ["Prefix", "Kind", "Communities"].map((t) => h("th", {}, t)))), routes),
    ),
  );

  async function drain() {
    const ok = await confirmDialog(
      "Drain this node?",
      "The routers stop sending it new connections; the established ones go on until they end.",
      "Drain",
    );
    if (!ok) return;
    try {
      show(await api.post("/bgp/drain"));
      toast("Draining");
    } catch (err) {
      toast(err.message, "error");
    }
  }

  async function undrain() {
    try {
      show(await api.post("/bgp/undrain"));
      toast("Announced again");
    } catch (err) {
      toast(err.message, "error");
    }
  }

  function show(b) {
    clear(badge, birdBadge(b));
    if (!b.enabled) {
      setText(facts, "bgp.enabled is false in this node's config: nothing is announced.");
      drainButton.disabled = undrainButton.disabled = true;
      return;
    }
    setText(
      facts,
      `AS ${b.asn ?? "–"} · router id ${b.router_id ?? "–"} · ${b.sessions_established} of ${b.sessions.length} sessions established · ` +
        `BFD ${b.bfd_up === null ? "not configured" : b.bfd_up ? "up" : "down"} · ${b.reconfigurations} reconfigurations`,
    );
    const issues = [];
    if (b.bird !== "up") issues.push(`BIRD ${b.bird.replace("_", " ")}: ${b.bird_message} (the node keeps forwarding; retrying)`);
    const r = b.last_reconfiguration;
    if (r && !r.ok) issues.push(`Last reconfiguration failed at ${fmtTime(r.at)}: ${r.message}`);
    clear(problems, issues.map((text) => h("li", { class: "bad" }, text)));
    const d = b.drain;
    const drainState = {
      none: b.bird === "up" ? "Not drained: the VIPs that can serve are announced." : "Not drained.",
      draining: `Draining (${d.mode.replace("_", " ")}) since ${fmtTime(d.since)}: ${d.established_sessions ?? "–"} established sessions left.`,
      drained: `Drained (${d.mode.replace("_", " ")}) since ${fmtTime(d.since)}: no established sessions left.`,
      timed_out: `Drained (${d.mode.replace("_", " ")}); ${d.established_sessions} sessions were still established after ${d.timeout_seconds} s.`,
    }[d.state];
    setText(drainText, drainState);
    drainButton.disabled = d.state !== "none";
    undrainButton.disabled = d.state === "none";
    syncRows(
      sessions,
      b.sessions,
      (s) => s.name,
      () => h("tr", {}, [...Array(6)].map(() => h("td"))),
      (row, s) => {
        [s.name, s.neighbor_address ?? "–", s.neighbor_as ?? "–", s.state, s.info || "–", s.routes_exported].forEach((v, i) => setText(row.children[i], String(v)));
        row.classList.toggle("bad", !s.established);
      },
    );
    // Not in sync: what dplb wants BIRD to announce, which BIRD has not taken yet.
    setText(routesTitle, b.in_sync ? "Announced routes" : "Routes to announce (BIRD has not taken them yet)");
    syncRows(
      routes,
      b.in_sync ? b.announced : b.desired,
      (x) => x.prefix,
      () => h("tr", {}, h("td"), h("td"), h("td")),
      (row, x) => {
        setText(row.children[0], x.prefix);
        setText(row.children[1], x.kind.replace("_", " "));
        setText(row.children[2], x.communities.join(" ") || "–");
      },
    );
  }

  async function refresh() {
    show(await api.get("/bgp"));
  }

  return { el, refresh };
}
