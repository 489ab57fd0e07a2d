// The Execution view: the graph of the version that ran with live node states, summary counts,
// a windowed node table ("problems first"), the node panel, the timeline and the event log.
// Running executions are followed on one socket (execution_id=X&replay=true), events applied by
// seq; everything redrawn at most once per animation frame.
import { ApiError, LiveSocket, backoff, get, post } from "./api.js";
import { GLYPH, GraphView, layoutInSlices, note } from "./graph.js";
import { action, badge, h, isFinished, link, notice, took, when } from "./views.js";

const ROW = 30, ROWS = 24, LOG_LINES = 1000, LOG_STEP = 50, BIG = 1000;
const RANK = { failed: 0, cancelled: 1, running: 2, queued: 3, pending: 4, skipped: 5, succeeded: 6 };
const OUTCOMES = "WorkflowStarted,NodeStarted,NodeCompleted,NodeFailed,NodeSkipped,WorkflowCompleted";

const show = (value) => {
  const text = JSON.stringify(value, null, 1);
  return h("pre", {}, text === undefined ? "—" : text.length > 4000 ? `${text.slice(0, 4000)}…` : text);
};

function describe(event) {
  const inner = event.event || {};
  const detail = event.error || inner.message || inner.line || event.reason || event.status || "";
  return `${event.seq} ${event.timestamp?.slice(11, 23) || ""} ${event.type}${inner.event_type ? `/${inner.event_type}` : ""} ${event.node_id || ""} ${detail}`;
}

export async function executionView(main, id, setLive) {
  const began = performance.now();
  let execution = await get(`/api/executions/${id}`);
  let workflow = null;
  let gone = "";
  try {
    workflow = await get(`/api/workflows/${encodeURIComponent(execution.workflow_id)}?version=${execution.workflow_version}`);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) throw error;
    gone = `Version ${execution.workflow_version} of ${execution.workflow_id} is no longer kept: the graph is drawn without its connections.`;
  }
  const order = workflow ? workflow.nodes : execution.nodes.map((n) => ({ id: n.node_id, node_type: n.node_type }));
  const connections = workflow ? workflow.connections : [];
  const nodes = new Map(order.map((n, i) => [n.id, { id: n.id, type: n.node_type, index: i, status: "pending", events: [] }]));
  const big = nodes.size > BIG;
  const events = [];
  let graph = null; // once laid out

  // --- the page ---
  const messages = h("div", { class: "messages" });
  const report = (text) => messages.replaceChildren(notice(text, "error"));
  const statusBox = h("span", { id: "exec-status" });
  const facts = h("p", { class: "meta" });
  const summary = h("ul", { class: "summary", id: "summary", "aria-label": "Node counts" });
  const actions = h("div", { class: "actions" });
  const graphHost = h("div", { class: "graph-host", role: "region", id: "graph" });
  const filter = h("input", { type: "search", placeholder: "Filter by node id or type", "aria-label": "Filter nodes" });
  const problems = h("input", { type: "checkbox", checked: true });
  const scroller = h("div", { class: "window", id: "nodes", tabindex: 0, role: "region", "aria-label": "Nodes" });
  const tbody = h("tbody", {});
  const table = h("table", { class: "list nodes" },
    h("thead", {}, h("tr", {}, ["Status", "Node", "Type", "Attempts", "Duration", "Timeline"].map((t) => h("th", { scope: "col" }, t)))), tbody);
  scroller.append(table);
  const panel = h("section", { class: "panel", id: "panel", "aria-label": "Node details", tabindex: 0 });
  const log = h("pre", { class: "log", id: "log", "aria-label": "Event log", tabindex: 0 });
  const download = h("button", { type: "button" }, "Download all events");
  main.replaceChildren(
    h("h1", {}, "Execution ", h("code", {}, id.slice(0, 13)), " ", statusBox),
    facts, messages, actions, gone ? notice(gone) : "", summary,
    h("div", { class: "split" }, graphHost, panel),
    h("h2", {}, "Nodes"), h("div", { class: "bar" }, filter, h("label", {}, problems, " Problems first")), scroller,
    h("h2", {}, "Event log"), h("div", { class: "bar" }, download), log);
  panel.append(h("p", {}, "Select a node in the graph or the table."));

  // --- state ---
  function fromRecords(record) {
    for (const r of record.nodes || []) {
      const node = nodes.get(r.node_id);
      // A long run's record folds only the events it kept: never undo what was seen live.
      if (!node || (["pending", "running"].includes(r.status) && !["pending", "running"].includes(node.status))) continue;
      Object.assign(node, { status: r.status, attempts: r.attempts, started: r.started_at, durationMs: r.duration_ms, outputs: r.outputs, error: r.error, cached: r.cached });
      graph?.setStatus(node.id, node.status);
    }
  }
  function applyEvent(event) {
    events.push(event);
    const node = event.node_id ? nodes.get(event.node_id) : null;
    if (node) node.events.push(event);
    switch (event.type) {
      case "NodeStarted":
        Object.assign(node, { status: "running", started: event.timestamp, error: null });
        break;
      case "NodeCompleted":
        Object.assign(node, { status: "succeeded", outputs: event.outputs, attempts: event.attempts, durationMs: event.duration_ms, cached: event.cached, ended: event.timestamp });
        break;
      case "NodeFailed":
        Object.assign(node, { status: event.cancelled ? "cancelled" : "failed", error: event.error, attempts: event.attempts, durationMs: event.duration_ms, ended: event.timestamp });
        break;
      case "NodeSkipped":
        Object.assign(node, { status: "skipped", error: event.reason });
        break;
      case "WorkflowCompleted":
        execution = { ...execution, status: event.status, duration_ms: event.duration_ms, finished_at: event.timestamp };
        settle();
        break;
    }
    if (node && event.type !== "NodeEvent") graph?.setStatus(node.id, node.status);
  }
  // The record is the truth once it is finished (a long run's recorded events skip the middle).
  // The server may be going away as the run ends (a shutdown interrupts it): keep trying, then
  // stop listening.
  async function settle(attempt = 0) {
    try {
      const record = await get(`/api/executions/${id}`);
      execution = record;
      fromRecords(record);
      schedule();
      if (socket) socket.close();
      setLive("finished");
    } catch (error) {
      if (error instanceof ApiError) return report(error.message);
      setTimeout(() => settle(attempt + 1), backoff(attempt));
    }
  }

  // --- drawing, once per frame ---
  // Nothing is drawn in the frame that lays out the new page: the counts and the table come in
  // the next one, a task of their own.
  let pending = true, sorted = null, selected = null;
  requestAnimationFrame(() => {
    pending = false;
    schedule(false);
  });
  function schedule(resort = true) {
    if (resort) sorted = null;
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      draw();
    });
  }
  // While events stream, the graph follows every frame; the counts and the table, which cost
  // more on big runs, at most ten times a second (at once for the user's own scroll or filter).
  let streamed = false, tableAt = 0, tableLater = null, summaryFor = null;
  function draw() {
    const began = performance.now();
    if (statusBox.dataset.status !== execution.status) {
      statusBox.dataset.status = execution.status;
      statusBox.replaceChildren(badge(execution.status));
    }
    drawActions();
    const wait = 100 - (began - tableAt);
    if (streamed && wait > 0 && !isFinished(execution.status)) {
      tableLater ||= setTimeout(() => ((tableLater = null), schedule(false)), wait);
    } else {
      streamed = false;
      tableAt = began;
      const counts = {};
      for (const node of nodes.values()) counts[node.status] = (counts[node.status] || 0) + 1;
      const shown = Object.keys(RANK).filter((s) => counts[s]);
      const key = shown.map((s) => `${s}:${counts[s]}`).join();
      if (key !== summaryFor) {
        summaryFor = key;
        summary.replaceChildren(h("li", { "data-status": "total" }, `${nodes.size} nodes`),
          ...shown.map((s) => h("li", { "data-status": s }, badge(s), ` ${counts[s]}`)));
      }
      drawTable();
    }
    drawLog();
    if (selected) drawPanel();
    note("frame", began);
  }
  let actionsFor = null;
  function drawActions() {
    const key = `${execution.status}`;
    if (actionsFor === key) return;
    actionsFor = key;
    const started = (result) => (location.hash = `#/executions/${result.execution_id}`);
    const list = [];
    if (execution.status === "running") list.push(action("Cancel", "execute", () => post(`/api/executions/${id}/cancel`), report));
    else {
      list.push(action("Re-run", "execute", async () => started(await post(`/api/executions/${id}/retry?wait=false`, {})), report));
      if (execution.status !== "succeeded") {
        list.push(action("Re-run from failure", "execute", async () => started(await post(`/api/executions/${id}/retry?wait=false`, { from_failure: true })), report));
      }
    }
    const trigger = execution.trigger || {};
    facts.replaceChildren(...[
      "Workflow ", link(`#/workflows/${encodeURIComponent(execution.workflow_id)}`, execution.workflow_id), ` version ${execution.workflow_version}`,
      ` · trigger ${trigger.type || "—"} · started ${when(execution.started_at)} · ${took(execution.duration_ms)}`,
      execution.retry_of ? [" · re-run of ", link(`#/executions/${execution.retry_of}`, execution.retry_of.slice(0, 13))] : "",
      trigger.source_execution_id ? [" · started by ", link(`#/executions/${trigger.source_execution_id}`, trigger.source_execution_id.slice(0, 13))] : "",
      execution.error ? h("span", { class: "error-text" }, ` · ${execution.error}`) : ""].flat());
    actions.replaceChildren(...list);
  }
  function rows() {
    if (sorted) return sorted;
    const text = filter.value.trim().toLowerCase();
    let list = [...nodes.values()];
    if (text) list = list.filter((n) => n.id.toLowerCase().includes(text) || n.type.toLowerCase().includes(text));
    // Problems first, then in the workflow's order: one pass into a bucket per rank (the nodes
    // are already in that order), not a sort of thousands of nodes for every batch of events.
    if (problems.checked) {
      const buckets = Array.from({ length: 8 }, () => []);
      for (const node of list) buckets[RANK[node.status] ?? 7].push(node);
      list = buckets.flat();
    }
    return (sorted = list);
  }
  // Only the rows in sight are in the DOM; spacer rows keep the scrollbar honest. A node's row
  // stays the same element while the node stays in the window (a click on it is never lost to a
  // redraw) and is updated in place, field by field: a live run then changes a few texts and bar
  // sizes per frame, where new rows would each cost style, layout and paint. The rows of nodes
  // that left the window serve the nodes that entered it, in place, unless focused or pressed.
  const drawn = new Map(); // node id -> row
  const topSpacer = h("tr", { class: "spacer", "aria-hidden": "true" }, h("td", { colspan: 6 }));
  const bottomSpacer = h("tr", { class: "spacer", "aria-hidden": "true" }, h("td", { colspan: 6 }));
  let pressed = null;
  tbody.addEventListener("pointerdown", (event) => (pressed = event.target.closest("tr")));
  window.addEventListener("pointerup", () => (pressed = null));
  tbody.addEventListener("click", (event) => {
    const button = event.target.closest("button.link");
    if (button) select(button.closest("tr").dataset.node);
  });
  function newRow() {
    const cells = Array.from({ length: 5 }, () => h("td", {}));
    const button = h("button", { type: "button", class: "link" });
    cells[1].append(button);
    const bar = h("span", {});
    const tr = h("tr", {}, cells, h("td", { class: "timeline" }, bar));
    return { tr, cells, button, bar, shows: {} };
  }
  function fill(row, node, left, width) {
    const shows = row.shows;
    const change = (field, value) => shows[field] !== value && ((shows[field] = value), true);
    if (change("id", node.id)) {
      row.tr.dataset.node = node.id;
      row.button.textContent = node.id;
      row.cells[2].textContent = node.type;
    }
    if (change("status", node.status)) {
      row.tr.dataset.status = node.status;
      row.bar.className = `bar-fill s-${node.status}`;
    }
    if (change("badge", `${node.status}/${node.cached}`)) row.cells[0].replaceChildren(badge(node.status), node.cached ? " (cached)" : "");
    if (change("selected", node.id === selected)) row.tr.className = node.id === selected ? "selected" : "";
    if (change("attempts", node.attempts ?? "—")) row.cells[3].textContent = shows.attempts;
    if (change("took", took(node.durationMs))) row.cells[4].textContent = shows.took;
    // Sizes go through CSSOM: inline style attributes are refused by the page's CSP.
    if (change("left", node.started ? `${left}%` : "")) row.bar.style.marginLeft = shows.left;
    if (change("width", node.started ? `${width}%` : "")) row.bar.style.width = shows.width;
  }
  function drawTable() {
    const list = rows();
    const first = Math.max(0, Math.floor(scrolled / ROW) - 5);
    const shown = list.slice(first, first + ROWS);
    const start = Date.parse(execution.started_at), end = execution.finished_at ? Date.parse(execution.finished_at) : Date.now();
    const span = Math.max(1, end - start);
    topSpacer.firstChild.style.height = `${first * ROW}px`;
    bottomSpacer.firstChild.style.height = `${(list.length - first - shown.length) * ROW}px`;
    const inWindow = new Set(shown.map((node) => node.id));
    const spare = [];
    for (const [nodeId, row] of drawn) {
      if (inWindow.has(nodeId)) continue;
      drawn.delete(nodeId);
      if (row.tr !== pressed && !row.tr.contains(document.activeElement)) spare.push(row);
    }
    const wanted = [topSpacer];
    for (const node of shown) {
      let row = drawn.get(node.id);
      if (!row) {
        // The spare row already at this place, if any: then nothing moves in the DOM.
        const here = tbody.children[wanted.length];
        const at = spare.findIndex((candidate) => candidate.tr === here);
        row = at >= 0 ? spare.splice(at, 1)[0] : spare.pop() || newRow();
        drawn.set(node.id, row);
      }
      let left = 0, width = 0;
      if (node.started) {
        const length = node.durationMs ?? (node.status === "running" ? Date.now() - Date.parse(node.started) : 0);
        left = Math.round((100 * (Date.parse(node.started) - start)) / span);
        width = Math.max(1, Math.round((100 * length) / span));
      }
      fill(row, node, left, width);
      wanted.push(row.tr);
    }
    wanted.push(bottomSpacer);
    // Put the rows in order, moving only those out of place; then drop the rest.
    wanted.forEach((tr, i) => tbody.children[i] !== tr && tbody.insertBefore(tr, tbody.children[i] || null));
    while (tbody.children.length > wanted.length) tbody.lastChild.remove();
  }
  let logged = 0, lines = 0;
  // The log shows the newest LOG_LINES: at most LOG_STEP new lines a frame go in, in blocks of
  // one text node each (a thousand elements would cost a frame) laid out alone, so a burst of
  // events is spread over frames. Lines that would go before being shown are skipped.
  function drawLog() {
    if (logged === events.length) return;
    if (events.length - logged > LOG_LINES) {
      log.replaceChildren();
      lines = 0;
      logged = events.length - LOG_LINES;
    }
    const fresh = events.slice(logged, logged + LOG_STEP).map(describe);
    logged += fresh.length;
    lines += fresh.length;
    const last = log.lastChild;
    if (last && last.count + fresh.length <= LOG_STEP) {
      last.firstChild.appendData(`\n${fresh.join("\n")}`);
      last.count += fresh.length;
    } else {
      const block = h("span", { class: "lines" }, fresh.join("\n"));
      block.count = fresh.length;
      log.append(block);
    }
    while (lines > LOG_LINES) {
      const oldest = log.firstChild;
      const extra = Math.min(lines - LOG_LINES, oldest.count);
      if (extra === oldest.count) oldest.remove();
      else oldest.textContent = oldest.textContent.split("\n").slice(extra).join("\n");
      oldest.count -= extra;
      lines -= extra;
    }
    if (logged < events.length) schedule(false);
  }
  // A node's inputs are not recorded: they are derived from what its predecessors output.
  function inputsOf(node) {
    const incoming = connections.filter((c) => c.to_node === node.id);
    if (!incoming.length) return [h("p", {}, "From the execution's inputs:"), show(execution.inputs)];
    return incoming.map((c) => {
      const from = nodes.get(c.from_node);
      const value = from?.outputs?.[c.from_port];
      return h("div", {}, h("p", {}, `${c.to_port} ← ${c.from_node}.${c.from_port} (derived from its output)`), show(value));
    });
  }
  let panelFor = null;
  async function select(nodeId) {
    selected = nodeId;
    graph?.center(nodeId);
    const node = nodes.get(nodeId);
    // A big run is followed without NodeEvents: fetch this node's events when it is opened.
    if (big && !node.fetched) {
      node.fetched = true;
      try {
        const all = await get(`/api/executions/${id}/events?node_id=${encodeURIComponent(nodeId)}&limit=500`);
        node.events = all.filter((e) => e.node_id === nodeId);
      } catch (error) {
        report(error.message);
      }
    }
    panelFor = null;
    schedule(false);
    panel.focus();
  }
  function drawPanel() {
    const node = nodes.get(selected);
    const key = `${selected}/${node.status}/${node.events.length}`;
    if (panelFor === key) return;
    panelFor = key;
    const retries = node.events.filter((e) => e.event?.event_type === "Warning").length;
    panel.replaceChildren(...[
      h("h2", {}, `Node ${node.id}`),
      h("dl", {},
        h("dt", {}, "Status"), h("dd", { id: "node-status" }, badge(node.status), node.cached ? " (cached: reused from the original run)" : ""),
        h("dt", {}, "Type"), h("dd", {}, node.type),
        h("dt", {}, "Attempts"), h("dd", {}, String(node.attempts ?? "—"), retries ? ` (${retries} retries)` : ""),
        h("dt", {}, "Started"), h("dd", {}, when(node.started)),
        h("dt", {}, "Duration"), h("dd", {}, took(node.durationMs))),
      node.error ? [h("h3", {}, "Error"), h("pre", { class: "error-text", id: "node-error" }, node.error)] : "",
      h("h3", {}, "Inputs"), ...inputsOf(node),
      h("h3", {}, "Outputs"), show(node.outputs),
      h("h3", {}, "Events"),
      h("ol", { class: "log" }, node.events.slice(-200).map((e) => h("li", {}, describe(e))))].flat());
  }

  filter.addEventListener("input", () => schedule());
  problems.addEventListener("change", () => schedule());
  // Read here, where the layout is clean, not in a frame that has just changed the page (which
  // would lay it out twice).
  let scrolled = 0;
  scroller.addEventListener("scroll", () => {
    scrolled = scroller.scrollTop;
    schedule(false);
  }, { passive: true });
  download.addEventListener("click", async () => {
    let all = events;
    try {
      all = await get(`/api/executions/${id}/events`);
    } catch (error) {
      report(error.message);
    }
    const url = URL.createObjectURL(new Blob([JSON.stringify(all, null, 1)], { type: "application/json" }));
    const anchor = h("a", { href: url, download: `execution-${id}-events.json` });
    anchor.click();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  });

  // A big graph takes longer to lay out than a frame lasts: it is laid out in slices, the rest
  // of the page working meanwhile, and drawn with the states seen so far once it is ready.
  graphHost.replaceChildren(h("p", { class: "placeholder", role: "status" }, `Laying out ${nodes.size} nodes…`));
  layoutInSlices(order, connections, () => !graphHost.isConnected).then((shape) => {
    if (!shape) return;
    graph = new GraphView(graphHost, shape, (nodeId) => select(nodeId));
    for (const node of nodes.values()) graph.setStatus(node.id, node.status);
    if (selected) graph.center(selected);
    graph.onFirstDraw = () => note("graph", began);
  }, (error) => report(error.message));

  let socket = null;
  if (isFinished(execution.status)) {
    setLive("finished");
    fromRecords(execution);
    try {
      const recorded = await get(`/api/executions/${id}/events${big ? `?types=${OUTCOMES}` : ""}`);
      events.push(...recorded);
      for (const event of recorded) if (event.node_id && nodes.has(event.node_id)) nodes.get(event.node_id).events.push(event);
    } catch (error) {
      report(error.message);
    }
  } else {
    // Replay then live by seq: LiveSocket drops whatever is at or below the last seq applied.
    const params = { execution_id: id, replay: "true" };
    if (big) params.types = OUTCOMES;
    socket = new LiveSocket(params, (batch) => {
      const began = performance.now();
      for (const event of batch) applyEvent(event);
      streamed = true;
      schedule();
      note("events", began);
    }, setLive);
  }
  schedule();
  return () => socket && socket.close();
}

export { GLYPH };
