// The tuning experiment page: objective-over-trials and parallel-coordinates plots as inline SVG,
// a trials table sortable by any column, and a reload every few seconds while the experiment runs.
(function () {
  "use strict";
  const NS = "http://www.w3.org/2000/svg";
  const holder = document.getElementById("tuning-data");
  if (!holder) return;
  const data = JSON.parse(holder.textContent);
  const trials = data.trials;
  const maximize = data.type === "maximize";

  function el(name, attrs, parent, text) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }
  function fmt(v) { return Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(2) : +v.toPrecision(4) + ""; }
  function extent(values) {
    let lo = Math.min(...values), hi = Math.max(...values);
    if (!isFinite(lo)) { lo = 0; hi = 1; }
    if (lo === hi) { lo -= 0.5; hi += 0.5; }
    return [lo, hi];
  }
  function svg(target, width, height) {
    const box = document.getElementById(target);
    const s = el("svg", { viewBox: `0 0 ${width} ${height}`, "data-trials": String(trials.length) }, box);
    return s;
  }

  function objectivePlot() {
    const W = 640, H = 240, L = 56, R = 12, T = 12, B = 28;
    const s = svg("objective-plot", W, H);
    const pts = trials.filter((t) => t.value !== null);
    if (!pts.length) { el("text", { x: L, y: H / 2, class: "tick" }, s, "No results yet"); return; }
    const [lo, hi] = extent(pts.map((t) => t.value));
    const n = Math.max(trials.length, 2);
    const x = (i) => L + (W - L - R) * (i / (n - 1));
    const y = (v) => T + (H - T - B) * (1 - (v - lo) / (hi - lo));
    el("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }, s);
    el("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }, s);
    el("text", { x: L - 6, y: y(hi) + 4, "text-anchor": "end", class: "tick" }, s, fmt(hi));
    el("text", { x: L - 6, y: y(lo) + 4, "text-anchor": "end", class: "tick" }, s, fmt(lo));
    el("text", { x: W - R, y: H - 8, "text-anchor": "end", class: "tick" }, s, `trial ${trials.length}`);
    el("text", { x: L, y: H - 8, class: "tick" }, s, "trial 1");
    let best = null, path = "";
    trials.forEach((t, i) => {
      if (t.value === null) return;
      if (best === null || (maximize ? t.value > best : t.value < best)) best = t.value;
      path += `${path ? "L" : "M"}${x(i).toFixed(1)},${y(best).toFixed(1)} `;
    });
    el("path", { d: path, class: "best-line" }, s);
    trials.forEach((t, i) => {
      if (t.value === null) return;
      const c = el("circle", { cx: x(i), cy: y(t.value), r: 4, class: "pt" + (t.name === data.best ? " best" : "") }, s);
      el("title", {}, c, `${t.name}: ${data.objective}=${t.value}`);
    });
  }

  function parallelPlot() {
    const axes = data.parameters.map((p) => ({ name: p.name, kind: p.type, list: p.list, log: p.log }));
    axes.push({ name: data.objective, kind: "metric" });
    const W = Math.max(640, axes.length * 140), H = 260, T = 26, B = 20, L = 50, R = 50;
    const s = svg("parallel-plot", W, H);
    const ax = (i) => L + (W - L - R) * (axes.length === 1 ? 0.5 : i / (axes.length - 1));
    const scales = axes.map((a) => {
      if (a.list) return (v) => (a.list.length === 1 ? 0.5 : a.list.indexOf(String(v)) / (a.list.length - 1));
      const values = trials.map((t) => (a.kind === "metric" ? t.value : Number(t.params[a.name]))).filter((v) => v !== null && isFinite(v));
      const f = a.log ? (v) => Math.log(v) : (v) => v;
      const [lo, hi] = extent(values.map(f));
      a.lo = lo; a.hi = hi;
      return (v) => (f(v) - lo) / (hi - lo);
    });
    axes.forEach((a, i) => {
      el("line", { x1: ax(i), y1: T, x2: ax(i), y2: H - B, class: "axis" }, s);
      el("text", { x: ax(i), y: T - 10, "text-anchor": "middle", class: "pc-axis-label" }, s, a.name);
      const top = a.list ? a.list[a.list.length - 1] : (a.log ? fmt(Math.exp(a.hi)) : fmt(a.hi));
      const bottom = a.list ? a.list[0] : (a.log ? fmt(Math.exp(a.lo)) : fmt(a.lo));
      el("text", { x: ax(i) + 4, y: T + 10, class: "tick" }, s, String(top));
      el("text", { x: ax(i) + 4, y: H - B - 2, class: "tick" }, s, String(bottom));
    });
    const y = (u) => T + (H - T - B) * (1 - u);
    const ordered = trials.filter((t) => t.name !== data.best).concat(trials.filter((t) => t.name === data.best));
    ordered.forEach((t) => {
      if (t.value === null) return;
      const d = axes.map((a, i) => {
        const raw = a.kind === "metric" ? t.value : (a.list ? t.params[a.name] : Number(t.params[a.name]));
        return `${i ? "L" : "M"}${ax(i).toFixed(1)},${y(scales[i](raw)).toFixed(1)}`;
      }).join(" ");
      const line = el("path", { d, class: "pc-line" + (t.name === data.best ? " best" : ""), "data-trial": t.name }, s);
      el("title", {}, line, t.name);
    });
  }

  function sortable() {
    const table = document.getElementById("trials-table");
    const body = table.tBodies[0];
    const rows = new Map([...body.rows].map((r) => [r.dataset.name, r]));
    const key = (t, k) => k === "seq" ? t.seq : k === "name" ? t.name : k === "phase" ? t.phase
      : k.startsWith("p:") ? Number(t.params[k.slice(2)]) || t.params[k.slice(2)] : t.metrics[k.slice(2)];
    table.querySelectorAll("button.sort").forEach((btn) => {
      btn.addEventListener("click", () => {
        const k = btn.dataset.key;
        const asc = btn.getAttribute("aria-sort") !== "ascending";
        table.querySelectorAll("button.sort").forEach((b) => b.removeAttribute("aria-sort"));
        btn.setAttribute("aria-sort", asc ? "ascending" : "descending");
        const sorted = [...trials].sort((a, b) => {
          const x = key(a, k), y = key(b, k);
          if (x === null || x === undefined) return 1;
          if (y === null || y === undefined) return -1;
          const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
          return asc ? c : -c;
        });
        sorted.forEach((t) => body.appendChild(rows.get(t.name)));
      });
    });
  }

  objectivePlot();
  parallelPlot();
  sortable();
  if (data.running) setTimeout(() => window.location.reload(), 3000);
})();
