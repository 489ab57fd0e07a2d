// The DAG: a layered layout (longest-path layers, then barycentre sweeps to untangle edges) and
// an SVG view that keeps only the nodes in sight in the DOM, all edges in one path, and draws
// status changes once per animation frame.
const SVG = "http://www.w3.org/2000/svg";
const W = 150, H = 40, DX = 200, DY = 56, MARGIN = 120, MOST = 400;
export const GLYPH = { pending: "○", running: "▶", succeeded: "✓", failed: "✗", skipped: "↷", cancelled: "⊘", queued: "…", interrupted: "↯", completed_with_errors: "⚠" };

// Timings for bench/ (python -m bench --only dashboard), kept only when it sets window.feTiming.
export const note = (name, start) => globalThis.feTiming?.push([name, performance.now() - start]);

export function layout(nodes, connections) {
  const index = new Map(nodes.map((node, i) => [node.id, i]));
  const n = nodes.length;
  const preds = Array.from({ length: n }, () => []);
  const succs = Array.from({ length: n }, () => []);
  for (const c of connections) {
    const from = index.get(c.from_node), to = index.get(c.to_node);
    if (from === undefined || to === undefined) continue;
    preds[to].push(from);
    succs[from].push(to);
  }
  // Longest path from a root, in topological order (Kahn).
  const layer = new Array(n).fill(0);
  const waiting = preds.map((p) => p.length);
  const order = [];
  for (let i = 0; i < n; i++) if (!waiting[i]) order.push(i);
  for (let k = 0; k < order.length; k++) {
    const i = order[k];
    for (const j of succs[i]) {
      layer[j] = Math.max(layer[j], layer[i] + 1);
      if (--waiting[j] === 0) order.push(j);
    }
  }
  const layers = [];
  for (let i = 0; i < n; i++) (layers[layer[i]] ||= []).push(i);
  const pos = new Float64Array(n);
  const place = (row) => row.forEach((i, k) => (pos[i] = k));
  layers.forEach(place);
  // Barycentre sweeps: down using predecessors, up using successors.
  const sweep = (rows, neighbours) => {
    for (const row of rows) {
      const key = new Map();
      for (const i of row) {
        const near = neighbours[i];
        key.set(i, near.length ? near.reduce((sum, j) => sum + pos[j], 0) / near.length : pos[i]);
      }
      row.sort((a, b) => key.get(a) - key.get(b));
      place(row);
    }
  };
  for (let s = 0; s < 2; s++) {
    sweep(layers.slice(1), preds);
    sweep(layers.slice(0, -1).reverse(), succs);
  }
  const tallest = Math.max(1, ...layers.map((row) => row.length));
  const points = nodes.map((node, i) => ({
    id: node.id,
    type: node.node_type,
    x: layer[i] * DX,
    y: (pos[i] + (tallest - layers[layer[i]].length) / 2) * DY,
  }));
  return { points, preds, succs, width: layers.length * DX, height: tallest * DY };
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
    const edges = [];
    const pts = graph.points;
    graph.succs.forEach((list, i) => {
      for (const j of list) {
        const a = pts[i], b = pts[j];
        const mx = (a.x + W + b.x) / 2;
        edges.push(`M${a.x + W} ${a.y + H / 2}C${mx} ${a.y + H / 2} ${mx} ${b.y + H / 2} ${b.x} ${b.y + H / 2}`);
      }
    });
    // The edges get an SVG of their own under the nodes': a node changing state then repaints
    // the nodes only, not thousands of curves (without a GPU every repaint is rasterised).
    this.edgeRoot = el("g", {});
    this.edgeRoot.append(el("path", { class: "edges", d: edges.join("") }));
    const under = el("svg", { class: "graph edges-layer", "aria-hidden": "true" });
    under.append(this.edgeRoot);
    this.layer = this.root;
    this.svg.append(this.root);
    host.replaceChildren(under, this.svg);
    host.tabIndex = 0;
    host.setAttribute("aria-label", "Graph: arrow keys pan, + and - zoom, 0 fits");
    this.fit();
    this.bind();
  }

  fit() {
    const box = this.host.getBoundingClientRect();
    const w = box.width || 800, h = box.height || 400;
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
    const box = this.host.getBoundingClientRect();
    this.tx = box.width / 2 - (p.x + W / 2) * this.scale;
    this.ty = box.height / 2 - (p.y + H / 2) * this.scale;
    this.selected = id;
    this.schedule();
  }

  setStatus(id, status) {
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
    const s = this.scale;
    const transform = `translate(${this.tx} ${this.ty}) scale(${s})`;
    if (this.root.getAttribute("transform") !== transform) {
      this.root.setAttribute("transform", transform);
      this.edgeRoot.setAttribute("transform", transform);
    }
    this.svg.classList.toggle("far", s < 0.4);
    const box = this.host.getBoundingClientRect();
    const left = (-this.tx - MARGIN) / s, top = (-this.ty - MARGIN) / s;
    const right = (box.width - this.tx + MARGIN) / s, bottom = (box.height - this.ty + MARGIN) / s;
    const keep = new Set();
    let crowded = false;
    for (const p of this.graph.points) {
      if (p.x + W < left || p.x > right || p.y + H < top || p.y > bottom) continue;
      // Zoomed far out on a big graph: draw no more than MOST nodes, and say so.
      if (keep.size >= MOST) {
        crowded = true;
        break;
      }
      keep.add(p.id);
      let g = this.shown.get(p.id);
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
    for (const [id, g] of this.shown) {
      if (!keep.has(id)) {
        g.remove();
        this.shown.delete(id);
      }
    }
    this.host.dataset.crowded = crowded;
    note("draw", started);
  }
}
