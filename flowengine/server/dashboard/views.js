// Shared DOM helpers and the list views: Executions (home), Workflows, Workflow, Triggers.
import { ApiError, LiveSocket, allows, del, get, post, whoAmI } from "./api.js";
import { GraphView, GLYPH, layoutInSlices } from "./graph.js";

// Elements are built with text nodes only (never innerHTML): data can never become markup.
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined && child !== false) node.append(child);
  return node;
}

export const badge = (status) => h("span", { class: `badge s-${status}` }, `${GLYPH[status] || "•"} ${status}`);
export const when = (stamp) => (stamp ? new Date(stamp).toLocaleString() : "—");
export function took(ms) {
  if (ms === null || ms === undefined) return "—";
  return ms < 1000 ? `${ms} ms` : ms < 60000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}
export const link = (href, text) => h("a", { href }, text);
const FINISHED = new Set(["succeeded", "failed", "completed_with_errors", "cancelled", "interrupted"]);
export const isFinished = (status) => FINISHED.has(status);

// Say why an action cannot be used, in the button's own text (not only a greyed-out button).
export function deny(button, scope) {
  button.disabled = true;
  button.classList.add("denied");
  button.title = `These credentials lack the '${scope}' scope`;
  button.textContent = `${button.dataset.label} (needs '${scope}')`;
}

// A button that runs an API action: disabled up front when the session's scopes rule it out,
// disabled with the scope named when the server answers 403, errors shown in `status`.
export function action(label, scope, run, report) {
  const button = h("button", { type: "button", class: "action", "data-label": label }, label);
  if (!allows(scope)) deny(button, scope);
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await run();
      button.disabled = false;
    } catch (error) {
      if (error instanceof ApiError && error.status === 403) deny(button, error.scope || scope);
      else {
        button.disabled = false;
        report(error.message);
      }
    }
  });
  return button;
}

export function notice(text, kind = "info") {
  return h("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

const TRIGGERS = ["manual", "webhook", "cron", "event", "retry"];
const STATUSES = ["queued", "running", "succeeded", "failed", "completed_with_errors", "cancelled", "interrupted"];

// Executions: the newest page, live rows, filters, pause-live, older pages.
export async function executionsView(main, query, setLive) {
  const filters = Object.fromEntries(query);
  const form = h("form", { class: "filters", "aria-label": "Filter executions" },
    h("label", {}, "Workflow ", h("input", { name: "workflow_id", value: filters.workflow_id || "", size: 14 })),
    h("label", {}, "Status ", h("select", { name: "status" }, h("option", { value: "" }, "any"),
      STATUSES.map((s) => h("option", { value: s, selected: filters.status === s }, s)))),
    h("label", {}, "Trigger ", h("select", { name: "trigger" }, h("option", { value: "" }, "any"),
      TRIGGERS.map((s) => h("option", { value: s, selected: filters.trigger === s }, s)))),
    h("label", {}, "Since ", h("input", { name: "since", type: "datetime-local", value: filters.since_local || "" })),
    h("label", {}, "Until ", h("input", { name: "until", type: "datetime-local", value: filters.until_local || "" })),
    h("label", {}, "Error contains ", h("input", { name: "error", value: filters.error || "", size: 12 })),
    h("button", { type: "submit" }, "Apply"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [key, value] of new FormData(form)) {
      if (!value) continue;
      if (key === "since" || key === "until") {
        next.set(key, new Date(value).toISOString());
        next.set(`${key}_local`, value);
      } else next.set(key, value);
    }
    location.hash = `#/executions?${next}`;
  });
  const messages = h("div", { class: "messages" });
  const report = (text) => messages.replaceChildren(notice(text, "error"));
  const pause = h("button", { type: "button", "aria-pressed": "false", class: "toggle" }, "Pause live");
  const waiting = h("span", { class: "waiting", "aria-live": "polite" });
  const total = h("span", { class: "total" });
  const body = h("tbody", {});
  const older = h("button", { type: "button", hidden: true }, "Older");
  main.replaceChildren(
    h("h1", {}, "Executions"), form,
    h("div", { class: "bar" }, pause, waiting, total), messages,
    h("table", { class: "list", id: "executions" },
      h("thead", {}, h("tr", {}, ["Status", "Execution", "Workflow", "Trigger", "Started", "Duration", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
      body),
    older);

  const rows = new Map();
  function row(execution) {
    const actions = h("td", { class: "cell-actions" });
    const tr = h("tr", { "data-id": execution.id, "data-status": execution.status },
      h("td", {}, badge(execution.status)),
      h("td", {}, link(`#/executions/${execution.id}`, execution.id.slice(0, 13))),
      h("td", {}, link(`#/workflows/${encodeURIComponent(execution.workflow_id)}`, execution.workflow_id)),
      h("td", {}, execution.trigger?.type || "—"),
      h("td", {}, when(execution.started_at)),
      h("td", {}, took(execution.duration_ms)),
      actions);
    if (execution.status === "running") {
      actions.append(action("Cancel", "execute", () => post(`/api/executions/${execution.id}/cancel`), report));
    } else {
      actions.append(
        action("Re-run", "execute", async () => {
          const started = await post(`/api/executions/${execution.id}/retry?wait=false`);
          location.hash = `#/executions/${started.execution_id}`;
        }, report),
        action("Delete", "admin", async () => {
          await del(`/api/executions/${execution.id}`);
          tr.remove();
          rows.delete(execution.id);
        }, report));
    }
    rows.set(execution.id, { tr, execution });
    return tr;
  }

  const params = new URLSearchParams();
  for (const key of ["workflow_id", "status", "trigger", "since", "until", "error"]) if (filters[key]) params.set(key, filters[key]);
  let page;
  try {
    page = await get(`/api/executions?${params}`);
  } catch (error) {
    // An older server refuses the newer filters: show what it can, and say which were dropped.
    if (!(error instanceof ApiError) || error.status !== 400) throw error;
    for (const key of ["trigger", "since", "until", "error"]) params.delete(key);
    report(`${error.message}: showing the list without the time, trigger and error filters`);
    page = await get(`/api/executions?${params}`);
  }
  for (const execution of page.executions) body.append(row(execution));
  if (typeof page.total === "number") total.textContent = `${page.total} in all`;
  let next = page.next;
  older.hidden = next === null || next === undefined;
  older.addEventListener("click", async () => {
    const more = await get(`/api/executions?${params}&before=${next}`);
    for (const execution of more.executions) if (!rows.has(execution.id)) body.append(row(execution));
    next = more.next;
    older.hidden = next === null || next === undefined;
  });

  // Live rows: a new execution is prepended, a finished one redrawn. While paused, events wait.
  const matches = (event) => !filters.trigger || event.trigger?.type === filters.trigger;
  const held = [];
  function apply(events) {
    for (const event of events) {
      if (event.type === "WorkflowStarted") {
        if (rows.has(event.execution_id) || (filters.status && filters.status !== "running") || !matches(event)) continue;
        body.prepend(row({ id: event.execution_id, workflow_id: event.workflow_id, status: "running", trigger: event.trigger, started_at: event.timestamp, duration_ms: null }));
      } else if (event.type === "WorkflowCompleted") {
        const known = rows.get(event.execution_id);
        if (!known) continue;
        const updated = { ...known.execution, status: event.status, duration_ms: event.duration_ms };
        known.tr.replaceWith(row(updated));
      }
    }
  }
  pause.addEventListener("click", () => {
    const paused = pause.getAttribute("aria-pressed") !== "true";
    pause.setAttribute("aria-pressed", String(paused));
    pause.textContent = paused ? "Resume live" : "Pause live";
    if (!paused) {
      apply(held.splice(0));
      waiting.textContent = "";
    }
  });
  const socketParams = { types: "WorkflowStarted,WorkflowCompleted" };
  if (filters.workflow_id) socketParams.workflow_id = filters.workflow_id;
  const socket = new LiveSocket(socketParams, (events) => {
    if (pause.getAttribute("aria-pressed") === "true") {
      held.push(...events);
      waiting.textContent = `${held.length} update(s) waiting`;
    } else apply(events);
  }, setLive);
  // Runs that started or ended while the socket was down sent no event this page saw: after a
  // reconnect the first page is read again and merged in.
  socket.onReconnect = async () => {
    let fresh;
    try {
      fresh = await get(`/api/executions?${params}`);
    } catch {
      return;
    }
    for (const execution of [...fresh.executions].reverse()) {
      const known = rows.get(execution.id);
      if (!known) body.prepend(row(execution));
      else if (known.execution.status !== execution.status) known.tr.replaceWith(row(execution));
    }
    if (typeof fresh.total === "number") total.textContent = `${fresh.total} in all`;
  };
  return () => socket.close();
}

export async function workflowsView(main) {
  const workflows = await get("/api/workflows");
  main.replaceChildren(h("h1", {}, "Workflows"),
    workflows.length ? h("table", { class: "list" },
      h("thead", {}, h("tr", {}, ["Workflow", "Name", "Version", "Nodes", "Connections"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, workflows.map((w) => h("tr", {},
        h("td", {}, link(`#/workflows/${encodeURIComponent(w.id)}`, w.id)), h("td", {}, w.name || ""),
        h("td", {}, String(w.version)), h("td", {}, String(w.nodes)), h("td", {}, String(w.connections))))))
      : notice("No workflows yet: register one with POST /api/workflows."));
}

// The value a form field holds: text for String ports, JSON where it parses for the others.
function fieldValue(text, type) {
  if (type === "String") return text;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export async function workflowView(main, id) {
  const [workflow, versions, types, recent] = await Promise.all([
    get(`/api/workflows/${encodeURIComponent(id)}`),
    get(`/api/workflows/${encodeURIComponent(id)}/versions`),
    get("/api/nodes"),
    get(`/api/executions?workflow_id=${encodeURIComponent(id)}&limit=10`),
  ]);
  const byType = new Map(types.map((t) => [t.type, t]));
  const fed = new Set(workflow.connections.map((c) => c.to_node));
  const fields = [];
  for (const node of workflow.nodes.filter((n) => !fed.has(n.id))) {
    for (const port of byType.get(node.node_type)?.inputs || []) {
      if (node.config && port.name in node.config) continue;
      fields.push(h("label", {}, `${port.name} (${node.id}, ${port.type}${port.required ? ", required" : ""}) `,
        h("input", { name: port.name, "data-type": port.type, required: port.required })));
    }
  }
  const extra = h("textarea", { name: "__json", rows: 2, cols: 40, placeholder: '{"name": "value"}' });
  const messages = h("div", { class: "messages" });
  const report = (text) => messages.replaceChildren(notice(text, "error"));
  const form = h("form", { class: "run", "aria-label": "Run this workflow" }, fields,
    h("label", {}, "More inputs (JSON object) ", extra));
  const run = action("Run", "execute", async () => {
    if (!form.reportValidity()) return;
    const inputs = {};
    for (const input of form.querySelectorAll("input")) if (input.value !== "") inputs[input.name] = fieldValue(input.value, input.dataset.type);
    if (extra.value.trim()) {
      try {
        Object.assign(inputs, JSON.parse(extra.value));
      } catch (error) {
        return report(`More inputs: ${error.message}`);
      }
    }
    const started = await post(`/api/workflows/${encodeURIComponent(id)}/execute?wait=false`, { inputs });
    location.hash = `#/executions/${started.execution_id}`;
  }, report);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run.click();
  });
  form.append(run);
  const graphHost = h("div", { class: "graph-host", role: "region" });
  main.replaceChildren(
    h("h1", {}, `Workflow ${workflow.name || workflow.id}`),
    h("p", { class: "meta" }, `${workflow.id} · version ${workflow.version} · ${workflow.nodes.length} nodes`),
    workflow.description ? h("p", {}, workflow.description) : "",
    h("h2", {}, "Run"), form, messages,
    h("h2", {}, "Graph"), graphHost,
    h("h2", {}, "Recent executions"),
    recent.executions.length ? h("ul", { class: "recent" }, recent.executions.map((e) => h("li", {}, badge(e.status), " ",
      link(`#/executions/${e.id}`, e.id.slice(0, 13)), ` ${when(e.started_at)}`)))
      : notice("No executions yet."),
    h("p", {}, link(`#/executions?workflow_id=${encodeURIComponent(id)}`, "All executions of this workflow")),
    h("h2", {}, "Versions"),
    h("ul", {}, versions.map((v) => h("li", {}, `version ${v.version}, ${when(v.created_at)}${v.current ? " (current)" : ""}`))));
  // Laid out in slices, as on an execution's page; dropped if the page is left meanwhile.
  graphHost.append(h("p", { class: "placeholder", role: "status" }, `Laying out ${workflow.nodes.length} nodes…`));
  layoutInSlices(workflow.nodes, workflow.connections, () => !graphHost.isConnected)
    .then((shape) => shape && new GraphView(graphHost, shape), (error) => report(error.message));
}

export async function triggersView(main) {
  const triggers = await get("/api/triggers");
  const copy = (url) => h("button", { type: "button", onclick: async (event) => {
    const full = new URL(url, location.href).href;
    try {
      await navigator.clipboard.writeText(full);
      event.target.textContent = "Copied";
    } catch {
      event.target.textContent = full; // no clipboard (plain http): show it to select by hand
    }
  } }, "Copy URL");
  main.replaceChildren(h("h1", {}, "Triggers"),
    triggers.length ? h("table", { class: "list" },
      h("thead", {}, h("tr", {}, ["Workflow", "Trigger", "Type", "Enabled", "Next fire", "Webhook URL"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, triggers.map((t) => h("tr", {},
        h("td", {}, link(`#/workflows/${encodeURIComponent(t.workflow_id)}`, t.workflow_id)), h("td", {}, t.trigger_id),
        h("td", {}, t.type), h("td", {}, t.enabled ? "yes" : "no"), h("td", {}, t.next_fire ? when(t.next_fire) : "—"),
        h("td", {}, t.url ? [h("code", {}, t.url), " ", copy(t.url)] : "—")))))
      : notice("No triggers."));
}

export { whoAmI };
