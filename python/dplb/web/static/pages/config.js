// Config history: what runs and what became of the last version, every version (who
// wrote it, when, why), the difference between any two, rollback (which writes an old
// version again as the newest), and the audit log. Refreshed every second.

import * as api from "../api.js";
import { clear, confirmDialog, describeChange, fmtTime, h, setText, syncRows, toast } from "../dom.js";

function opText(change) {
  const show = (v) => (v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v));
  if (change.op === "added") return `added ${show(change.new)}`;
  if (change.op === "removed") return `removed ${show(change.old)}`;
  return `${show(change.old)} → ${show(change.new)}`;
}

export default function config(session) {
  const status = h("div", { class: "status" });
  const versions = h("tbody");
  const audit = h("tbody");
  const fromSelect = h("select", { id: "diff-from", "aria-label": "From version" });
  const toSelect = h("select", { id: "diff-to", "aria-label": "To version" });
  const diffOut = h("div", { class: "diff", "aria-live": "polite" });
  let latest = null;
  let known = "";

  const diffForm = h(
    "form",
    { class: "diff-form", novalidate: true, "aria-label": "Compare versions" },
    h("label", { for: "diff-from" }, "From"),
    fromSelect,
    h("label", { for: "diff-to" }, "to"),
    toSelect,
    h("button", { type: "submit", class: "primary small" }, "Show difference"),
  );
  diffForm.addEventListener("submit", (event) => {
    event.preventDefault();
    showDiff(Number(fromSelect.value), Number(toSelect.value));
  });

  const el = h(
    "section",
    { class: "config" },
    h("div", { class: "page-head" }, h("h1", {}, "Config history")),
    status,
    h(
      "section",
      { class: "panel" },
      h("h2", {}, "Versions"),
      h(
        "table",
        { class: "versions" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", { class: "num" }, "Version"),
            h("th", {}, "Written"),
            h("th", {}, "By"),
            h("th", {}, "Change"),
            h("th", {}, h("span", { class: "visually-hidden" }, "Actions")),
          ),
        ),
        versions,
      ),
    ),
    h("section", { class: "panel" }, h("h2", {}, "Difference"), diffForm, diffOut),
    h(
      "section",
      { class: "panel" },
      h("h2", {}, "Audit log"),
      h(
        "table",
        { class: "audit" },
        h(
          "thead",
          {},
          h("tr", {}, ["Time", "Who", "Request", "Outcome", "Version", "What"].map((t) => h("th", {}, t))),
        ),
        audit,
      ),
    ),
  );

  async function showDiff(from, to) {
    clear(diffOut, h("p", { class: "muted" }, "Loading…"));
    try {
      const d = await api.get("/config/diff", { from_version: from, to_version: to });
      const lines = d.text.split("\n").filter((l, i, all) => l !== "" || i < all.length - 1);
      clear(
        diffOut,
        h("h3", {}, `Version ${d.from_version} → version ${d.to_version}`),
        d.changes.length
          ? h(
              "ul",
              { class: "changes" },
              d.changes.map((c) => h("li", { class: c.op }, h("code", {}, c.path), " ", opText(c))),
            )
          : h("p", { class: "muted" }, "No difference."),
        d.text
          ? h(
              "pre",
              { class: "unified" },
              lines.map((l) => {
                const kind = l.startsWith("+++") || l.startsWith("---") ? "file" : l.startsWith("+") ? "add" : l.startsWith("-") ? "del" : l.startsWith("@@") ? "hunk" : "";
                return h("span", { class: kind }, `${l}\n`);
              }),
            )
          : null,
      );
    } catch (err) {
      clear(diffOut, h("p", { class: "form-errors", role: "alert" }, err.message));
    }
  }

  async function rollback(version) {
    const ok = await confirmDialog(
      `Roll back to version ${version}?`,
      `Version ${version} is written again as the newest version and applied; the history keeps every version.`,
      "Roll back",
    );
    if (!ok) return;
    try {
      const result = await api.post("/config/rollback", { version });
      toast(`Rolled back to version ${version}: ${describeChange(result)}`, result.status === "pending" ? "warn" : "ok");
      await refresh();
    } catch (err) {
      toast(`Rollback to version ${version} failed: ${err.message}`, "error");
    }
  }

  function showStatus(st) {
    const refused = st.last_result === "refused";
    clear(
      status,
      h(
        "div",
        { class: "tiles" },
        h("div", { class: "tile" }, h("span", { class: "label" }, "Running"), h("span", { class: "value", dataset: { stat: "applied" } }, `v${st.applied_version ?? "–"}`), h("span", { class: "sub" }, fmtTime(st.applied_at))),
        h("div", { class: "tile" }, h("span", { class: "label" }, "Desired"), h("span", { class: "value" }, `v${st.desired_version ?? "–"}`), h("span", { class: "sub" }, st.desired_version && st.desired_version !== st.applied_version ? "not applied" : "in the store")),
        h("div", { class: `tile ${refused ? "bad" : ""}` }, h("span", { class: "label" }, "Last look"), h("span", { class: "value" }, st.last_result ?? "–"), h("span", { class: "sub" }, st.last_version ? `version ${st.last_version} · ${fmtTime(st.last_at)}` : "")),
      ),
      st.errors.length ? h("ul", { class: "problems" }, st.errors.map((e) => h("li", { class: "bad" }, `${e.path}: ${e.reason}`))) : null,
    );
  }

  function fillSelects(list) {
    const ids = list.map((v) => v.version).join(",");
    if (ids === known) return;
    const keepFrom = fromSelect.value;
    const keepTo = toSelect.value;
    const options = (selected) => list.map((v) => h("option", { value: v.version, selected: String(v.version) === selected }, `v${v.version}`));
    clear(fromSelect, options(keepFrom || String(list[1]?.version ?? list[0]?.version ?? "")));
    clear(toSelect, options(keepTo || String(list[0]?.version ?? "")));
    known = ids;
  }

  async function refresh() {
    const [st, list, entries] = await Promise.all([api.get("/config/status"), api.get("/config/versions", { limit: 100 }), api.get("/audit", { limit: 20 })]);
    latest = list[0]?.version ?? null;
    showStatus(st);
    fillSelects(list);
    syncRows(
      versions,
      list,
      (v) => String(v.version),
      (v) => {
        const row = h("tr", { dataset: { version: v.version } }, h("td", { class: "num" }, `v${v.version}`), h("td"), h("td"), h("td"), h("td", { class: "row-actions" }));
        const diff = h("button", { type: "button", class: "secondary small", onclick: () => showDiff(v.version, latest) }, "Diff to newest");
        row.lastElementChild.append(diff);
        if (session.canWrite) {
          row.lastElementChild.append(h("button", { type: "button", class: "danger small", dataset: { action: "rollback" }, onclick: () => rollback(v.version) }, "Roll back"));
        }
        return row;
      },
      (row, v) => {
        setText(row.children[1], fmtTime(v.time));
        setText(row.children[2], v.author);
        setText(row.children[3], v.message || "–");
        const isLatest = v.version === latest;
        row.classList.toggle("latest", isLatest);
        for (const b of row.querySelectorAll("button")) b.hidden = isLatest;
        row.classList.toggle("running", v.version === st.applied_version);
      },
    );
    syncRows(
      audit,
      entries,
      (e) => `${e.time} ${e.who} ${e.method} ${e.path}`,
      () => h("tr", {}, [...Array(6)].map(() => h("td"))),
      (row, e) => {
        const what = e.message || (e.errors.length ? e.errors.map((x) => `${x.path}: ${x.reason}`).join("; ") : "");
        [fmtTime(e.time), `${e.who} (${e.role})`, `${e.method} ${e.path}`, e.outcome, e.version ? `v${e.version}` : "–", what].forEach((v, i) => setText(row.children[i], v));
        row.className = e.outcome === "applied" || e.outcome === "unchanged" || e.outcome === "reset" ? "" : "warn";
      },
    );
  }

  return { el, refresh, interval: 2000 };
}
