// The cluster: every node with the config version it runs against the desired one
// (drift at a glance), nodes that are gone, configs a node refused with their field
// errors, and the store's health as this node sees it. Refreshed every two seconds.

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
  );

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
  }

  return { el, refresh, interval: 2000 };
}
