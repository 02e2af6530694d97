// The web admin's shell: sign-in, the navigation, the router (hash routes, so the node
// serves one static page) and the poller that refreshes the page on show every second
// (or at the page's own `interval`, for pages whose queries cost the node more).

import * as api from "./api.js";
import { clear, h, setText } from "./dom.js";
import dashboard from "./pages/dashboard.js";
import { serviceDetail, serviceForm, serviceList } from "./pages/services.js";
import sessions from "./pages/sessions.js";
import config from "./pages/config.js";
import cluster from "./pages/cluster.js";
import bgp from "./pages/bgp.js";

const REFRESH_MS = 1000;

// What every page gets: who is signed in, and where to go next.
const session = {
  caller: null, // {name, role}
  get canWrite() {
    return this.caller?.role === "admin";
  },
  go(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  },
};

// [pattern, page factory, nav entry it belongs to]
const routes = [
  [/^#?\/?$/, () => dashboard(session), "dashboard"],
  [/^#\/services$/, () => serviceList(session), "services"],
  [/^#\/services\/new$/, () => serviceForm(session, null), "services"],
  [/^#\/services\/([^/]+)\/(\d+)\/(tcp|udp)$/, (m) => serviceDetail(session, key(m)), "services"],
  [/^#\/services\/([^/]+)\/(\d+)\/(tcp|udp)\/edit$/, (m) => serviceForm(session, key(m)), "services"],
  [/^#\/sessions(\?.*)?$/, (m) => sessions(session, new URLSearchParams(m[1] || "")), "sessions"],
  [/^#\/config$/, () => config(session), "config"],
  [/^#\/cluster$/, () => cluster(session), "cluster"],
  [/^#\/bgp$/, () => bgp(session), "bgp"],
];

function key(m) {
  return { vip: decodeURIComponent(m[1]), port: Number(m[2]), protocol: m[3] };
}

const view = () => document.getElementById("view");
let current = null; // {refresh, dispose}
let timer = null;
let generation = 0;

function route() {
  stopPolling();
  current?.dispose?.();
  current = null;
  if (!session.caller) return;
  const hash = location.hash;
  let found = null;
  for (const [pattern, make, nav] of routes) {
    const m = hash.match(pattern);
    if (m) {
      found = { make: () => make(m), nav };
      break;
    }
  }
  for (const link of document.querySelectorAll("nav.main a")) {
    if (link.dataset.nav === found?.nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!found) {
    clear(view(), h("section", { class: "empty" }, h("h1", {}, "Not found"), h("p", {}, "No such page. "), h("a", { href: "#/" }, "Back to the dashboard")));
    return;
  }
  current = found.make();
  clear(view(), current.el);
  window.scrollTo(0, 0);
  startPolling();
}

// Refreshes the page, then waits a second, then again: never two refreshes at once.
function startPolling() {
  const mine = ++generation;
  const tick = async () => {
    if (mine !== generation || !current?.refresh) return;
    try {
      await current.refresh();
      if (mine === generation) live(true);
    } catch (err) {
      if (mine === generation && err.status !== 401) live(false, err.message, err.status ?? 0);
    }
    if (mine === generation) timer = setTimeout(tick, current?.interval ?? REFRESH_MS);
  };
  tick();
}

function stopPolling() {
  generation += 1;
  clearTimeout(timer);
}

let goneSince = null;

// A node that stops answering (unreachable, or 5xx) is shown as gone: the page's numbers
// are hidden until it answers again, never left on screen as if they were current.
function live(ok, message = "", status = 0) {
  const el = document.getElementById("live");
  el.classList.toggle("stale", !ok);
  setText(el.querySelector(".label"), ok ? `live · ${new Date().toLocaleTimeString()}` : "no answer");
  el.title = ok ? "Refreshed every second" : message;
  const gone = !ok && (status === 0 || status >= 500);
  if (gone && goneSince === null) goneSince = new Date();
  if (!gone) goneSince = null;
  const banner = document.getElementById("gone");
  banner.hidden = !gone;
  view().hidden = gone;
  if (gone) {
    setText(
      banner.querySelector(".what"),
      `The node does not answer since ${goneSince.toLocaleTimeString()} (${message}). Its numbers are hidden until it answers again; retrying every second.`,
    );
  }
}

// -- signing in and out -----------------------------------------------------------------

function showSignedIn() {
  document.body.classList.add("signed-in");
  document.getElementById("signin").hidden = true;
  document.getElementById("app").hidden = false;
  const who = document.getElementById("who");
  clear(who, h("span", { class: "name" }, session.caller.name), " ", h("span", { class: `role ${session.caller.role}` }, session.caller.role));
  route();
}

function showSignIn(message = "") {
  stopPolling();
  current?.dispose?.();
  current = null;
  session.caller = null;
  document.body.classList.remove("signed-in");
  document.getElementById("app").hidden = true;
  document.getElementById("signin").hidden = false;
  const error = document.getElementById("signin-error");
  error.hidden = !message;
  error.textContent = message;
  document.getElementById("token").focus();
}

async function signIn(event) {
  event.preventDefault();
  const input = document.getElementById("token");
  const button = event.target.querySelector("button");
  const value = input.value.trim();
  if (!value) return showSignIn("Enter a token of this node's api.tokens.");
  button.disabled = true;
  try {
    session.caller = await api.whoami(value);
    api.token.set(value);
    input.value = "";
    showSignedIn();
  } catch (err) {
    showSignIn(err.status === 401 ? "This token is not valid on this node." : err.message);
  } finally {
    button.disabled = false;
  }
}

function signOut() {
  api.token.clear();
  showSignIn();
}

async function start() {
  document.getElementById("signin-form").addEventListener("submit", signIn);
  document.getElementById("signout").addEventListener("click", signOut);
  window.addEventListener("hashchange", route);
  api.setUnauthorizedHandler(() => {
    api.token.clear();
    showSignIn("The node no longer accepts this token: sign in again.");
  });
  const saved = api.token.get();
  if (!saved) return showSignIn();
  try {
    session.caller = await api.whoami(saved);
    showSignedIn();
  } catch (err) {
    if (err.status === 401) api.token.clear();
    showSignIn(err.status === 401 ? "" : err.message);
  }
}

start();
