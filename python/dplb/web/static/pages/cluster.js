// The cluster: every node with the config version it runs against the desired one
// (drift at a glance), nodes that are gone, configs a node refused with their field
// errors, the store's health as this node sees it, and session sync with each peer (heard
// from, records, gaps, why a peer is refused). Refreshed every two seconds.

import * as api from "../api.js";
import { clear, fmtTime, h, setText, syncRows } from "../dom.js";

const STATES = {
  in_sync: ["ok", "in sync"],
  lagging: ["warn", "lagging"],
  refused: ["bad", "refused"],
  starting: ["warn", "starting"],
  gone: ["bad", "gone"],
};

export default function cluster() {
  const summary = h("div", { class: "status" });
  const nodes = h("tbody");
  const refusals = h("div", { class: "refusals" });
  const syncHead = h("p", { class: "sub", dataset: { stat: "sync" } });
  const peers = h("tbody");

  const el = h(
    "section",
    { class: "cluster" },
    h("div", { class: "page-head" }, h("h1", {}, "Cluster")),
    summary,
    h(
      "section",
      { class: "panel" },
      h("h2", {}, "Nodes"),
      h(
        "table",
        { class: "nodes" },
        h(
          "thead",
          {},
          h("tr", {}, ["Node", "State", "Runs", "Applied", "Last look", "API", "Version", "Workers", "Up since"].map((t) => h("th", {}, t))),
        ),
        nodes,
      ),
    ),
    refusals,
    h(
      "section",
      { class: "panel" },
      h("h2", {}, "Session sync"),
      syncHead,
      h(
        "table",
        { class: "sync-peers" },
        h("thead", {}, h("tr", {}, ["Peer", "Address", "Sync", "Member", "Records", "Gaps", "Lag p99", "Last heard", "Refused"].map((t) => h("th", {}, t)))),
        peers,
      ),
    ),
  );

  function showSync(s) {
    if (!s.enabled) {
      setText(syncHead, "Off on this node (node config: sync.enabled): a node that dies takes its connections with it.");
      clear(peers);
      return;
    }
    const full = s.full_sync ?? {};
    setText(
      syncHead,
      `${s.ready ? "Ready" : "Not ready: no VIP announced until full sync is done"} · node id ${s.node_id} on ${s.listen} · full sync ${full.state ?? "–"}: ${full.records ?? 0} records from ${full.peers_done ?? 0} of ${full.peers ?? 0} peers${full.error ? ` (${full.error})` : ""}`,
    );
    syncRows(
      peers,
      s.peers,
      (p) => p.node,
      (p) => h("tr", { dataset: { peer: p.node } }, [...Array(9)].map(() => h("td"))),
      (row, p) => {
        const cells = row.children;
        setText(cells[0], p.node);
        clear(cells[2], h("span", { class: `badge ${p.refused ? "warn" : p.up ? "ok" : "bad"}` }, p.refused ? "refused" : p.up ? "up" : "down"));
        setText(cells[1], p.address || "–");
        setText(cells[3], p.live ? "live" : "gone");
        setText(cells[4], p.records);
        setText(cells[5], p.gaps);
        setText(cells[6], p.lag_p99_seconds == null ? "–" : `${(p.lag_p99_seconds * 1000).toFixed(1)} ms`);
        setText(cells[7], p.last_seen_seconds == null ? "never" : `${p.last_seen_seconds.toFixed(1)} s ago`);
        setText(cells[8], p.refused ?? "–");
        row.className = p.refused || !p.up ? "warn" : "";
      },
    );
  }

  function showSummary(view) {
    const store = view.store;
    const live = view.nodes.filter((n) => n.live);
    const drifting = live.filter((n) => n.state !== "in_sync");
    clear(
      summary,
      h(
        "div",
        { class: "tiles" },
        h("div", { class: "tile" }, h("span", { class: "label" }, "Cluster"), h("span", { class: "value", dataset: { stat: "cluster" } }, view.cluster), h("span", { class: "sub" }, `${live.length} live node${live.length === 1 ? "" : "s"}`)),
        h("div", { class: "tile" }, h("span", { class: "label" }, "Desired"), h("span", { class: "value", dataset: { stat: "desired" } }, `v${view.desired_version ?? "–"}`), h("span", { class: "sub" }, view.in_sync ? "every live node runs it" : `${drifting.length} node${drifting.length === 1 ? "" : "s"} not on it`)),
        h(
          "div",
          { class: `tile ${store.up ? "" : "bad"}`, dataset: { stat: "store" } },
          h("span", { class: "label" }, `Store (${store.kind})`),
          h("span", { class: "value" }, store.up ? "up" : "unavailable"),
          h("span", { class: "sub" }, store.up ? store.endpoint ?? "" : `${store.error ?? ""}${store.last_contact ? ` · last answer ${fmtTime(store.last_contact)}` : ""}`),
        ),
      ),
    );
  }

  function showRefusals(view) {
    const refused = view.nodes.filter((n) => n.state === "refused");
    clear(
      refusals,
      refused.length
        ? h(
            "section",
            { class: "panel" },
            h("h2", {}, "Refused configs"),
            refused.map((n) =>
              h(
                "div",
                { class: "refusal", dataset: { node: n.node } },
                h("h3", {}, `${n.node} refused version ${n.last_version} and runs v${n.applied_version ?? "–"}`),
                h("ul", { class: "problems" }, n.errors.map((e) => h("li", { class: "bad" }, `${e.path}: ${e.reason}`))),
              ),
            ),
          )
        : null,
    );
  }

  async function refresh() {
    const view = await api.get("/cluster");
    showSummary(view);
    syncRows(
      nodes,
      view.nodes,
      (n) => n.node,
      (n) => h("tr", { dataset: { node: n.node } }, [...Array(9)].map(() => h("td"))),
      (row, n) => {
        const [kind, text] = STATES[n.state] ?? ["warn", n.state];
        const cells = row.children;
        setText(cells[0], n.node);
        clear(cells[1], h("span", { class: `badge ${kind}` }, text));
        setText(cells[2], n.applied_version ? `v${n.applied_version}` : "–");
        setText(cells[3], fmtTime(n.applied_at));
        setText(cells[4], n.last_version ? `v${n.last_version} ${n.last_result}` : "–");
        setText(cells[5], n.api ?? "–");
        setText(cells[6], n.software_version ?? "–");
        setText(cells[7], n.workers ?? "–");
        setText(cells[8], n.live ? fmtTime(n.started_at) : "not running");
        row.className = n.state === "in_sync" ? "" : "warn";
      },
    );
    showRefusals(view);
    showSync(await api.get("/sync"));
  }

  return { el, refresh, interval: 2000 };
}
