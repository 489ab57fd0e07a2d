// The DAG: a layered layout (longest-path layers, then barycentre sweeps to untangle edges) and
// an SVG view that keeps only the nodes in sight in the DOM, all edges in one path, and draws
// status changes once per animation frame.
const SVG = "http://www.w3.org/2000/svg";
const W = 150, H = 40, DX = 200, DY = 56, MARGIN = 120, MOST = 400, NEW = 30;
export const GLYPH = { pending: "○", running: "▶", succeeded: "✓", failed: "✗", skipped: "↷", cancelled: "⊘", queued: "…", interrupted: "↯", completed_with_errors: "⚠" };

// Timings for bench/ (python -m bench --only dashboard), kept only when it sets window.feTiming.
export const note = (name, start) => globalThis.feTiming?.push([name, performance.now() - start]);

// The work is a generator that pauses between chunks of work (up to CHUNK steps), so that a big graph
// can be laid out in slices between which the page stays responsive (events applied, frames
// drawn). The loops themselves are in plain functions: V8 optimises a long loop while it runs
// (on-stack replacement) in a function, never in a generator, which would run the first layout
// at interpreter speed.
const CHUNK = 1000;

// Each connection into preds and succs (node indexes), for connections [from, to).
function link(connections, index, preds, succs, from, to) {
  for (let k = from; k < to; k++) {
    const c = connections[k];
    const a = index.get(c.from_node), b = index.get(c.to_node);
    if (a === undefined || b === undefined) continue;
    preds[b].push(a);
    succs[a].push(b);
  }
}

// Longest path from a root, in topological order (Kahn).
function longest(order, succs, layer, waiting) {
  for (let k = 0; k < order.length; k++) {
    const i = order[k];
    for (const j of succs[i]) {
      if (layer[i] + 1 > layer[j]) layer[j] = layer[i] + 1;
      if (--waiting[j] === 0) order.push(j);
    }
  }
}

// Barycentre ordering of one row: by the mean position of its neighbours in the row before.
function sweepRow(row, neighbours, pos, key) {
  for (const i of row) {
    const near = neighbours[i];
    let sum = 0;
    for (const j of near) sum += pos[j];
    key[i] = near.length ? sum / near.length : pos[i];
  }
  row.sort((a, b) => key[a] - key[b]);
  for (let k = 0; k < row.length; k++) pos[row[k]] = k;
}

// The edges' path of nodes [from, to), appended to `edges`.
function curves(points, succs, edges, from, to) {
  for (let i = from; i < to; i++) {
    const a = points[i];
    for (const j of succs[i]) {
      const b = points[j];
      const mx = (a.x + W + b.x) / 2;
      edges.push(`M${a.x + W} ${a.y + H / 2}C${mx} ${a.y + H / 2} ${mx} ${b.y + H / 2} ${b.x} ${b.y + H / 2}`);
    }
  }
}

function* layoutSteps(nodes, connections) {
  const index = new Map(nodes.map((node, i) => [node.id, i]));
  const n = nodes.length;
  const preds = Array.from({ length: n }, () => []);
  const succs = Array.from({ length: n }, () => []);
  for (let k = 0; k < connections.length; k += CHUNK) {
    link(connections, index, preds, succs, k, Math.min(connections.length, k + CHUNK));
    yield;
  }
  const layer = new Int32Array(n);
  const waiting = preds.map((p) => p.length);
  const order = [];
  for (let i = 0; i < n; i++) if (!waiting[i]) order.push(i);
  longest(order, succs, layer, waiting);
  yield;
  const layers = [];
  for (let i = 0; i < n; i++) (layers[layer[i]] ||= []).push(i);
  const pos = new Float64Array(n);
  for (const row of layers) for (let k = 0; k < row.length; k++) pos[row[k]] = k;
  // Barycentre sweeps: down using predecessors, up using successors.
  const key = new Float64Array(n);
  const down = layers.slice(1), up = layers.slice(0, -1).reverse();
  for (let s = 0; s < 2; s++) {
    for (const row of down) yield sweepRow(row, preds, pos, key);
    for (const row of up) yield sweepRow(row, succs, pos, key);
  }
  const tallest = Math.max(1, ...layers.map((row) => row.length));
  const points = nodes.map((node, i) => ({
    id: node.id,
    type: node.node_type,
    x: layer[i] * DX,
    y: (pos[i] + (tallest - layers[layer[i]].length) / 2) * DY,
  }));
  yield;
  // All edges as one path: computed here, with the rest, rather than in the view's first task.
  const edges = [];
  for (let i = 0; i < n; i += CHUNK) {
    curves(points, succs, edges, i, Math.min(n, i + CHUNK));
    yield;
  }
  // The columns (one per layer): a frame then visits only the columns in view.
  const columns = layers.map((row) => row.map((i) => points[i]));
  return { points, columns, edges: edges.join(""), preds, succs, width: layers.length * DX, height: tallest * DY };
}

// A task of its own for what comes next; unlike setTimeout(0), never clamped to 4 ms.
const nextTask = () => new Promise((resolve) => {
  const channel = new MessageChannel();
  channel.port1.onmessage = () => resolve();
  channel.port2.postMessage(null);
});

// The layout in slices of about `slice` ms, each a task of its own; null if `cancelled()` turns
// true in between (the page was left).
export async function layoutInSlices(nodes, connections, cancelled = () => false, slice = 8) {
  const steps = layoutSteps(nodes, connections);
  let busy = 0;
  for (;;) {
    const began = performance.now();
    let step;
    do step = steps.next(); while (!step.done && performance.now() - began < slice);
    busy += performance.now() - began;
    if (step.done) {
      globalThis.feTiming?.push(["layout", busy]);
      // The browser tests hold a finished layout here (a promise they resolve) to show that
      // what arrives meanwhile is kept.
      await globalThis.feLayoutGate;
      return cancelled() ? null : step.value;
    }
    await nextTask();
    if (cancelled()) return null;
  }
}

function el(name, attrs) {
  const node = document.createElementNS(SVG, name);
  for (const key in attrs) node.setAttribute(key, attrs[key]);
  return node;
}

export class GraphView {
  // Without onSelect it is a workflow's graph: node types instead of states, nothing to select.
  constructor(host, graph, onSelect = null) {
    this.host = host;
    this.graph = graph;
    this.onSelect = onSelect;
    this.status = new Map();
    this.shown = new Map(); // id -> <g> in the DOM
    this.dirty = false;
    this.svg = el("svg", { class: "graph", role: "img", "aria-label": `Graph of ${graph.points.length} nodes` });
    this.root = el("g", {});
    // The edges get an SVG of their own under the nodes': a node changing state then repaints
    // the nodes only, not thousands of curves (without a GPU every repaint is rasterised).
    this.edgeRoot = el("g", {});
    this.edgeRoot.append(el("path", { class: "edges", d: graph.edges }));
    const under = el("svg", { class: "graph edges-layer", "aria-hidden": "true" });
    under.append(this.edgeRoot);
    this.layer = this.root;
    this.svg.append(this.root);
    host.replaceChildren(under, this.svg);
    host.tabIndex = 0;
    host.setAttribute("aria-label", "Graph: arrow keys pan, + and - zoom, 0 fits");
    // The host's size comes from the browser after a layout, never read from the page in a
    // frame that has just changed it (which would lay the page out twice). The first one also
    // puts the nodes' first frame after the one that lays out the edges.
    this.size = null;
    this.scale = 1;
    this.tx = this.ty = 0;
    new ResizeObserver(([entry]) => {
      const { inlineSize: width, blockSize: height } = entry.borderBoxSize[0];
      const first = !this.size;
      this.size = { width, height };
      if (!first) return this.schedule();
      this.fit();
      if (this.selected) this.center(this.selected);
    }).observe(host);
    this.bind();
  }

  fit() {
    const w = this.size.width || 800, h = this.size.height || 400;
    const scale = Math.min(1, w / (this.graph.width + 40), h / (this.graph.height + 40));
    // Far too small to read: start at a readable zoom on the first layers, centred vertically.
    this.scale = scale < 0.25 ? 0.6 : scale;
    this.tx = 20;
    this.ty = Math.max(20, h / 2 - (this.graph.height / 2) * this.scale);
    if (this.graph.height * this.scale > h) this.ty = h / 2 - (this.graph.height / 2) * this.scale;
    this.schedule();
  }

  bind() {
    let drag = null;
    this.svg.addEventListener("pointerdown", (event) => {
      drag = { x: event.clientX - this.tx, y: event.clientY - this.ty, moved: false };
    });
    window.addEventListener("pointerup", () => (drag = null));
    this.svg.addEventListener("pointermove", (event) => {
      if (!drag || !event.buttons) return;
      this.tx = event.clientX - drag.x;
      this.ty = event.clientY - drag.y;
      this.schedule();
    });
    this.svg.addEventListener("wheel", (event) => {
      event.preventDefault();
      this.zoom(event.deltaY < 0 ? 1.2 : 1 / 1.2, event.offsetX, event.offsetY);
    }, { passive: false });
    this.svg.addEventListener("click", (event) => {
      const node = event.target.closest("g[data-id]");
      if (node && this.onSelect) this.onSelect(node.dataset.id);
    });
    this.host.addEventListener("keydown", (event) => {
      const step = 60;
      const moves = { ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
      if (moves[event.key]) {
        this.tx += moves[event.key][0];
        this.ty += moves[event.key][1];
      } else if (event.key === "+" || event.key === "=") this.zoom(1.2);
      else if (event.key === "-") this.zoom(1 / 1.2);
      else if (event.key === "0") return this.fit();
      else return;
      event.preventDefault();
      this.schedule();
    });
  }

  zoom(factor, cx = 0, cy = 0) {
    const next = Math.max(0.05, Math.min(3, this.scale * factor));
    this.tx = cx - ((cx - this.tx) * next) / this.scale;
    this.ty = cy - ((cy - this.ty) * next) / this.scale;
    this.scale = next;
    this.schedule();
  }

  center(id) {
    const p = this.graph.points.find((point) => point.id === id);
    if (!p) return;
    this.selected = id;
    if (!this.size) return; // centred once the size is known
    const box = this.size;
    this.tx = box.width / 2 - (p.x + W / 2) * this.scale;
    this.ty = box.height / 2 - (p.y + H / 2) * this.scale;
    this.schedule();
  }

  setStatus(id, status) {
    if (this.status.get(id) === status) return;
    this.status.set(id, status);
    if (this.shown.has(id)) this.schedule();
  }

  schedule() {
    if (this.dirty) return;
    this.dirty = true;
    requestAnimationFrame(() => {
      this.dirty = false;
      this.draw();
    });
  }

  // Only the nodes within the viewport (plus a margin) get elements; the rest are removed.
  draw() {
    const started = performance.now();
    if (!this.size) return;
    const s = this.scale;
    const transform = `translate(${this.tx} ${this.ty}) scale(${s})`;
    if (this.root.getAttribute("transform") !== transform) {
      this.root.setAttribute("transform", transform);
      this.edgeRoot.setAttribute("transform", transform);
    }
    this.svg.classList.toggle("far", s < 0.4);
    const box = this.size;
    const left = (-this.tx - MARGIN) / s, top = (-this.ty - MARGIN) / s;
    const right = (box.width - this.tx + MARGIN) / s, bottom = (box.height - this.ty + MARGIN) / s;
    const keep = new Set();
    let crowded = false, created = 0;
    // Columns are DX apart: only those in view are visited.
    const columns = this.graph.columns;
    const last = Math.min(columns.length - 1, Math.floor(right / DX));
    visit: for (let c = Math.max(0, Math.floor((left - W) / DX)); c <= last; c++) {
      for (const p of columns[c]) {
        if (p.y + H < top || p.y > bottom || p.x + W < left || p.x > right) continue;
        // Zoomed far out on a big graph: draw no more than MOST nodes, and say so.
        if (keep.size >= MOST) {
          crowded = true;
          break visit;
        }
        keep.add(p.id);
        let g = this.shown.get(p.id);
        // New nodes cost style and layout (their text most): a frame adds at most NEW of them,
        // the next frames the rest.
        if (!g && ++created > NEW) continue;
        if (!g) {
          g = el("g", { "data-id": p.id, transform: `translate(${p.x} ${p.y})`, class: "node" });
          const rect = el("rect", { width: W, height: H, rx: 6 });
          const glyph = el("text", { x: 8, y: 25, class: "glyph" });
          const label = el("text", { x: 26, y: 18, class: "label" });
          label.textContent = p.id.length > 18 ? `${p.id.slice(0, 17)}…` : p.id;
          const state = el("text", { x: 26, y: 33, class: "state" });
          const title = el("title", {});
          g.append(rect, glyph, label, state, title);
          this.layer.append(g);
          this.shown.set(p.id, g);
        }
        const status = this.onSelect ? this.status.get(p.id) || "pending" : "plain";
        if (g.dataset.status !== status) {
          g.dataset.status = status;
          g.setAttribute("class", `node s-${status}`);
          g.children[1].textContent = GLYPH[status] || "";
          g.children[3].textContent = this.onSelect ? status : p.type;
          g.children[4].textContent = this.onSelect ? `${p.id} (${p.type}): ${status}` : `${p.id} (${p.type})`;
        }
        g.classList.toggle("selected", p.id === this.selected);
      }
    }
    for (const [id, g] of this.shown) {
      if (!keep.has(id)) {
        g.remove();
        this.shown.delete(id);
      }
    }
    this.host.dataset.crowded = crowded;
    if (created > NEW) this.schedule();
    note("draw", started);
    this.onFirstDraw?.();
    this.onFirstDraw = null;
  }
}
