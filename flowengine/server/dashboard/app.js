// The shell: hash routes, the theme toggle, the live indicator, the rate-limit banner and who is
// signed in. Each view returns a function that closes its socket when the route changes.
import { hooks, signOut, token, whoAmI } from "./api.js";
import { note } from "./graph.js";
import { executionView } from "./run.js";
import { executionsView, h, notice, triggersView, workflowView, workflowsView } from "./views.js";

const main = document.getElementById("main");
const live = document.getElementById("live");
const banner = document.getElementById("banner");
const who = document.getElementById("who");
let leave = () => {};
let generation = 0;

const setLive = (state) => {
  live.textContent = state;
  live.dataset.state = state.split(" ")[0];
};

// 429: say when to try again, counting down, then clear.
let countdown;
hooks.rateLimited = (seconds, message) => {
  clearInterval(countdown);
  let left = Math.max(1, seconds);
  const say = () => (banner.textContent = `Too many requests: ${message}. You can retry in ${left} s.`);
  banner.hidden = false;
  say();
  countdown = setInterval(() => {
    left -= 1;
    if (left > 0) say();
    else {
      clearInterval(countdown);
      banner.hidden = true;
    }
  }, 1000);
};
hooks.signedIn = () => {
  hooks.forgetSession();
  showWho();
};

async function showWho() {
  try {
    const session = await whoAmI();
    if (!session) {
      who.replaceChildren(token() ? "signed in" : "");
    } else if (session.auth === "off") {
      who.replaceChildren("authentication off");
    } else {
      who.replaceChildren(`${session.subject || "signed in"} (${(session.scopes || []).join(", ")})`);
    }
    if (token()) {
      who.append(" ", h("button", { type: "button", onclick: () => { signOut(); location.reload(); } }, "Sign out"));
    }
  } catch {
    who.textContent = "";
  }
}

async function route() {
  const began = performance.now();
  const mine = ++generation;
  leave();
  leave = () => {};
  setLive("idle");
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const parts = path.split("/").map(decodeURIComponent);
  const params = new URLSearchParams(query);
  for (const a of document.querySelectorAll("nav a")) {
    if (a.getAttribute("href").slice(2) === (parts[0] || "executions")) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  main.setAttribute("aria-busy", "true");
  try {
    await whoAmI();
    let done;
    if (parts[0] === "executions" && parts[1]) done = await executionView(main, parts[1], setLive);
    else if (parts[0] === "workflows" && parts[1]) done = await workflowView(main, parts[1]);
    else if (parts[0] === "workflows") done = await workflowsView(main);
    else if (parts[0] === "triggers") done = await triggersView(main);
    else done = await executionsView(main, params, setLive);
    if (mine !== generation) done && done();
    else leave = done || (() => {});
    document.title = `${main.querySelector("h1")?.textContent || "flowengine"} · flowengine`;
    note("route", began);
  } catch (error) {
    if (mine === generation) main.replaceChildren(h("h1", {}, "Something went wrong"), notice(error.message, "error"));
  } finally {
    main.removeAttribute("aria-busy");
  }
}

// Theme: the system's by default; the toggle's choice is remembered.
const toggle = document.getElementById("theme");
function applyTheme(theme) {
  if (theme) document.documentElement.dataset.theme = theme;
  const dark = theme ? theme === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
  toggle.setAttribute("aria-pressed", String(dark));
  toggle.textContent = dark ? "Dark theme: on" : "Dark theme: off";
}
toggle.addEventListener("click", () => {
  const theme = toggle.getAttribute("aria-pressed") === "true" ? "light" : "dark";
  localStorage.setItem("flowengine.theme", theme);
  applyTheme(theme);
});
applyTheme(localStorage.getItem("flowengine.theme"));

// The skip link must not change the hash (which routes): it only moves the focus.
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});
window.addEventListener("hashchange", route);
route();
showWho();
