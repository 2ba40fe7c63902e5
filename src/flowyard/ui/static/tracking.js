/* Flowyard tracking and registry pages: runs tables, metric curves, parallel coordinates,
   lineage graphs and endpoint monitoring, drawn as inline SVG from the JSON API. */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const api = (...args) => window.flowyard.api(...args);
  const SVG = "http://www.w3.org/2000/svg";
  const COLORS = ["#4f6bed", "#e8743b", "#19a979", "#ed4a7b", "#945ecf", "#13a4b4", "#525df4", "#bf399e"];
  const ns = (document.querySelector("[data-namespace]") || {}).dataset?.namespace || "";
  const base = `/api/v1/namespaces/${encodeURIComponent(ns)}`;
  const link = (path) => `${path}${path.includes("?") ? "&" : "?"}ns=${encodeURIComponent(ns)}`;

  function el(tag, attrs = {}, children = [], svg = false) {
    const node = svg ? document.createElementNS(SVG, tag) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "text") node.textContent = v; else if (v !== undefined && v !== null) node.setAttribute(k, v);
    }
    for (const c of children) node.append(c);
    return node;
  }
  const s = (tag, attrs, children) => el(tag, attrs, children, true);
  const fmt = (v) => (v === null || v === undefined ? "—" : typeof v === "number" ? Number(v.toPrecision(4)).toString() : String(v));
  function showError(id, e) {
    const box = document.getElementById(id);
    if (box) { box.textContent = e.message || String(e); box.hidden = false; }
  }

  /* -- charts ---------------------------------------------------------------------------- */

  function lineChart(title, series, yLabel = "") {
    const W = 420, H = 220, L = 48, R = 10, T = 24, B = 28;
    const pts = series.flatMap((x) => x.points.filter((p) => p.value !== null && p.value !== undefined));
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "line-chart", role: "img", "aria-label": title });
    svg.append(s("text", { x: L, y: 15, class: "chart-title", text: title }));
    if (!pts.length) { svg.append(s("text", { x: W / 2, y: H / 2, class: "muted", "text-anchor": "middle", text: "no data" })); return svg; }
    const xs = pts.map((p) => p.x), ys = pts.map((p) => p.value);
    let [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    if (x0 === x1) x1 = x0 + 1;
    if (y0 === y1) { y0 -= 0.5; y1 += 0.5; }
    const X = (x) => L + (x - x0) / (x1 - x0) * (W - L - R), Y = (y) => H - B - (y - y0) / (y1 - y0) * (H - T - B);
    svg.append(s("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }));
    svg.append(s("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }));
    svg.append(s("text", { x: L - 4, y: Y(y1) + 4, "text-anchor": "end", class: "tick", text: fmt(y1) }));
    svg.append(s("text", { x: L - 4, y: Y(y0), "text-anchor": "end", class: "tick", text: fmt(y0) }));
    svg.append(s("text", { x: L, y: H - 8, class: "tick", text: fmt(x0) }));
    svg.append(s("text", { x: W - R, y: H - 8, "text-anchor": "end", class: "tick", text: `${fmt(x1)} ${yLabel}` }));
    series.forEach((line, i) => {
      const good = line.points.filter((p) => p.value !== null && p.value !== undefined);
      const d = good.map((p) => `${X(p.x).toFixed(1)},${Y(p.value).toFixed(1)}`).join(" ");
      const color = COLORS[i % COLORS.length];
      if (good.length === 1) svg.append(s("circle", { cx: X(good[0].x), cy: Y(good[0].value), r: 3, fill: color }));
      else svg.append(s("polyline", { points: d, fill: "none", stroke: color, "stroke-width": 1.6 }, [s("title", { text: line.name })]));
    });
    return el("figure", { class: "chart-box" }, [svg, legend(series.map((x) => x.name))]);
  }

  function legend(names) {
    return el("figcaption", { class: "legend" }, names.map((n, i) => {
      const swatch = el("i");
      swatch.style.background = COLORS[i % COLORS.length];  // a CSSOM property, which the CSP allows
      return el("span", {}, [swatch, document.createTextNode(n)]);
    }));
  }

  /* Parallel coordinates: one axis per dimension, one line per run (categories are spread out). */
  function parallel(runs, dims) {
    const W = Math.max(420, dims.length * 130), H = 260, T = 30, B = 30, P = 50;
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "parallel", role: "img", "aria-label": "Parallel coordinates" });
    if (!dims.length || !runs.length) { svg.append(s("text", { x: 20, y: 40, class: "muted", text: "nothing to draw" })); return svg; }
    const scales = dims.map((d) => {
      const values = runs.map((r) => d.get(r)).filter((v) => v !== null && v !== undefined && v !== "");
      const numeric = values.every((v) => !Number.isNaN(Number(v)));
      if (numeric) {
        const nums = values.map(Number); let lo = Math.min(...nums), hi = Math.max(...nums);
        if (lo === hi) { lo -= 1; hi += 1; }
        return { pos: (v) => (Number(v) - lo) / (hi - lo), lo: fmt(lo), hi: fmt(hi) };
      }
      const cats = [...new Set(values.map(String))].sort();
      return { pos: (v) => (cats.indexOf(String(v)) + 0.5) / cats.length, lo: cats[0] || "", hi: cats[cats.length - 1] || "" };
    });
    const X = (i) => P + i * (W - 2 * P) / Math.max(1, dims.length - 1), Y = (f) => H - B - f * (H - T - B);
    dims.forEach((d, i) => {
      svg.append(s("line", { x1: X(i), y1: T, x2: X(i), y2: H - B, class: "axis" }));
      svg.append(s("text", { x: X(i), y: 14, "text-anchor": "middle", class: "chart-title", text: d.name }));
      svg.append(s("text", { x: X(i), y: T - 4, "text-anchor": "middle", class: "tick", text: scales[i].hi }));
      svg.append(s("text", { x: X(i), y: H - B + 14, "text-anchor": "middle", class: "tick", text: scales[i].lo }));
    });
    runs.forEach((r, k) => {
      const pts = dims.map((d, i) => { const v = d.get(r); return v === null || v === undefined || v === "" ? null : `${X(i).toFixed(1)},${Y(scales[i].pos(v)).toFixed(1)}`; });
      if (pts.includes(null)) return;
      svg.append(s("polyline", { points: pts.join(" "), fill: "none", stroke: COLORS[k % COLORS.length], "stroke-width": 1.4, opacity: 0.8 },
        [s("title", { text: r.name })]));
    });
    return svg;
  }

  function dimensions(runs, paramKeys, metricKeys) {
    return [...paramKeys.map((k) => ({ name: `params.${k}`, get: (r) => r.params[k] })),
            ...metricKeys.map((k) => ({ name: `metrics.${k}`, get: (r) => (typeof r.metrics[k] === "object" && r.metrics[k] !== null ? r.metrics[k].value : r.metrics[k]) }))];
  }

  /* Lineage: nodes in columns by their longest path from a source, edges as curves. */
  const KIND_LABEL = { run: "run", execution: "task", artifact: "artifact", modelversion: "model version", inferenceservice: "endpoint" };
  function lineageGraph(graph, onClick) {
    const level = {}, incoming = {};
    graph.nodes.forEach((n) => { level[n.id] = 0; incoming[n.id] = []; });
    const flow = graph.edges.filter((e) => e.kind !== "task");
    flow.forEach((e) => { if (incoming[e.target]) incoming[e.target].push(e.source); });
    for (let pass = 0; pass < graph.nodes.length; pass++) {
      let changed = false;
      flow.forEach((e) => { if (level[e.source] !== undefined && level[e.target] <= level[e.source]) { level[e.target] = level[e.source] + 1; changed = true; } });
      if (!changed) break;
    }
    graph.edges.filter((e) => e.kind === "task").forEach((e) => { level[e.source] = Math.max(0, (level[e.target] || 0)); });
    const columns = {};
    graph.nodes.forEach((n) => { (columns[level[n.id]] = columns[level[n.id]] || []).push(n); });
    const NW = 170, NH = 40, GX = 60, GY = 16;
    const depth = Math.max(...Object.values(columns).map((c) => c.length), 1);
    const W = (Math.max(...Object.keys(columns).map(Number), 0) + 1) * (NW + GX), H = depth * (NH + GY) + 10;
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "lineage-svg", role: "img", "aria-label": "Lineage graph", width: W });
    const at = {};
    Object.entries(columns).forEach(([lv, nodes]) => nodes.forEach((n, i) => { at[n.id] = { x: Number(lv) * (NW + GX) + 5, y: i * (NH + GY) + 5 }; }));
    graph.edges.forEach((e) => {
      const a = at[e.source], b = at[e.target];
      if (!a || !b) return;
      const [x1, y1, x2, y2] = [a.x + NW, a.y + NH / 2, b.x, b.y + NH / 2];
      svg.append(s("path", { d: `M${x1},${y1} C${x1 + GX / 2},${y1} ${x2 - GX / 2},${y2} ${x2},${y2}`, class: `edge ${e.kind}` }, [s("title", { text: e.kind })]));
    });
    graph.nodes.forEach((n) => {
      const p = at[n.id];
      const g = s("g", { class: `node ${n.kind}`, transform: `translate(${p.x},${p.y})`, tabindex: 0, "data-id": n.id }, [
        s("rect", { width: NW, height: NH, rx: 6 }),
        s("text", { x: 8, y: 15, class: "node-kind", text: KIND_LABEL[n.kind] || n.kind }),
        s("text", { x: 8, y: 31, class: "node-name", text: (n.displayName || n.name || "").slice(0, 24) }),
        s("title", { text: `${n.id}${n.type ? " (" + n.type + ")" : ""}` })]);
      if (onClick) {
        g.addEventListener("click", () => onClick(n));
        g.addEventListener("keydown", (ev) => { if (ev.key === "Enter") onClick(n); });
      }
      svg.append(g);
    });
    return svg;
  }

  async function drawLineage(box, node, direction = "both", errorId = null) {
    box.replaceChildren(el("p", { class: "muted", text: "Loading…" }));
    try {
      const graph = await api("GET", `${base}/lineagegraph?node=${encodeURIComponent(node)}&direction=${direction}`);
      box.replaceChildren(lineageGraph(graph, (n) => { window.location = link(`/lineage?node=${encodeURIComponent(n.id.startsWith("run:") ? "run:" + n.name : n.id)}`); }));
    } catch (e) {
      box.replaceChildren(el("p", { class: "muted", text: e.status === 404 ? "No lineage recorded yet." : e.message }));
      if (errorId && e.status !== 404) showError(errorId, e);
    }
  }

  /* -- pages ----------------------------------------------------------------------------- */

  async function experimentsPage(root) {
    const body = root.querySelector("tbody");
    try {
      const { experiments } = await api("GET", `${base}/tracking/experiments`);
      body.replaceChildren(...(experiments.length ? experiments.map((x) => el("tr", {}, [
        el("td", {}, [el("a", { href: link(`/tracking/experiments/${encodeURIComponent(x.id || "-")}`), text: x.displayName })]),
        el("td", { text: String(x.runs) }), el("td", { class: "muted", text: x.description || "" })]))
        : [el("tr", {}, [el("td", { colspan: 3, class: "muted", text: "No experiments yet." })])]));
    } catch (e) { body.replaceChildren(el("tr", {}, [el("td", { colspan: 3, text: e.message })])); }
  }

  function runsPage(root) {
    const state = { filter: "", order: "", tokens: [null], page: 0, selected: new Set() };
    const table = document.getElementById("runs-table");
    const [prev, next, compare] = ["runs-prev", "runs-next", "runs-compare"].map((id) => document.getElementById(id));
    const url = () => {
      const q = new URLSearchParams({ page_size: "50", filter: state.filter });
      if (state.order) q.append("order_by", state.order);
      if (state.tokens[state.page]) q.set("page_token", state.tokens[state.page]);
      return `${base}/tracking/experiments/${encodeURIComponent(root.dataset.experiment)}/runs?${q}`;
    };
    const sortBy = (key) => {
      state.order = state.order === `${key} DESC` ? `${key} ASC` : `${key} DESC`;
      document.getElementById("order-by").value = state.order;
      state.tokens = [null]; state.page = 0; load();
    };
    async function load() {
      document.getElementById("runs-error").hidden = true;
      let page;
      try { page = await api("GET", url()); } catch (e) { showError("runs-error", e); return; }
      const head = [el("th", { scope: "col", text: "" }), el("th", { scope: "col", text: "Run" }), el("th", { scope: "col", text: "State" }),
        ...page.paramKeys.map((k) => el("th", { scope: "col", class: "sortable", "data-key": `params.${k}`, text: `${k}` })),
        ...page.metricKeys.map((k) => el("th", { scope: "col", class: "sortable metric", "data-key": `metrics.${k}`, text: `${k}` }))];
      head.forEach((th) => th.dataset.key && th.addEventListener("click", () => sortBy(th.dataset.key)));
      table.tHead.replaceChildren(el("tr", {}, head));
      table.tBodies[0].replaceChildren(...page.runs.map((r) => {
        const box = el("input", { type: "checkbox", "aria-label": `select ${r.name}`, value: r.uid });
        box.checked = state.selected.has(r.uid);
        box.addEventListener("change", () => { box.checked ? state.selected.add(r.uid) : state.selected.delete(r.uid); compare.disabled = state.selected.size < 2; });
        const name = r.source === "Run" ? el("a", { href: link(`/runs/${encodeURIComponent(r.name)}`), text: r.name })
          : el("span", { text: r.name, title: r.source });
        return el("tr", { "data-run": r.name }, [el("td", {}, [box]), el("td", {}, [name]), el("td", {}, [el("span", { class: "badge subtle", text: r.state })]),
          ...page.paramKeys.map((k) => el("td", { text: r.params[k] ?? "—" })),
          ...page.metricKeys.map((k) => el("td", { class: "num", text: fmt(r.metrics[k]) }))]);
      }));
      document.getElementById("runs-count").textContent = `${page.total} run${page.total === 1 ? "" : "s"}`;
      state.tokens[state.page + 1] = page.nextPageToken;
      prev.disabled = state.page === 0; next.disabled = !page.nextPageToken;
      document.getElementById("runs-parallel").replaceChildren(parallel(page.runs, dimensions(page.runs, page.paramKeys, page.metricKeys)));
    }
    document.getElementById("run-filter").addEventListener("submit", (ev) => {
      ev.preventDefault();
      state.filter = document.getElementById("filter-text").value.trim();
      state.order = document.getElementById("order-by").value.trim();
      state.tokens = [null]; state.page = 0; load();
    });
    prev.addEventListener("click", () => { state.page -= 1; load(); });
    next.addEventListener("click", () => { state.page += 1; load(); });
    compare.addEventListener("click", () => { window.location = link(`/tracking/compare?runs=${[...state.selected].join(",")}`); });
    load();
  }

  async function comparePage(root) {
    let data;
    try { data = await api("GET", `${base}/tracking/compare?runs=${encodeURIComponent(root.dataset.runs)}`); }
    catch (e) { showError("compare-error", e); return; }
    const runs = data.runs;
    const table = document.getElementById("compare-params");
    table.replaceChildren(el("thead", {}, [el("tr", {}, [el("th", { scope: "col", text: "Parameter" }), ...runs.map((r) => el("th", { scope: "col", text: r.name }))])]),
      el("tbody", {}, data.paramKeys.map((k) => el("tr", { class: data.differentParams.includes(k) ? "differs" : "" },
        [el("th", { scope: "row", text: k }), ...runs.map((r) => el("td", {}, [el("code", { text: r.params[k] ?? "—" })]))]))));
    const curves = document.getElementById("compare-curves");
    curves.replaceChildren(...data.metricKeys.map((k) => lineChart(k, runs.map((r) => ({
      name: r.name, points: (r.history[k] || []).map((p) => ({ x: p.step, value: p.value })) })), "step")));
    document.getElementById("compare-parallel").replaceChildren(parallel(runs, dimensions(runs, data.differentParams, data.metricKeys)));
  }

  function modelPage(root) {
    const model = root.dataset.model;
    const done = (text) => { const ok = document.getElementById("model-ok"); ok.textContent = text; ok.hidden = false; };
    const aliasForm = document.getElementById("alias-form");
    if (aliasForm) {
      aliasForm.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const alias = document.getElementById("alias-name").value.trim(), version = Number(document.getElementById("alias-version").value);
        try {
          await api("PUT", `${base}/registeredmodels/${encodeURIComponent(model)}/aliases/${encodeURIComponent(alias)}`, { version });
          window.location.reload();
        } catch (e) { showError("model-error", e); }
      });
      root.querySelectorAll("[data-alias-version]").forEach((b) => b.addEventListener("click", () => {
        document.getElementById("alias-version").value = b.dataset.aliasVersion;
        document.getElementById("alias-name").focus();
      }));
      document.getElementById("deploy-form").addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const name = document.getElementById("deploy-name").value.trim(), uri = document.getElementById("deploy-ref").value.trim();
        try {
          const resolved = await api("GET", `${base}/registeredmodels/${encodeURIComponent(model)}/resolve?ref=${encodeURIComponent(uri.split("/").pop())}`);
          await api("POST", `${base}/inferenceservices`, {
            apiVersion: "serving.kserve.io/v1beta1", kind: "InferenceService",
            metadata: { name, annotations: { "serving.flowyard.io/follow-alias": "true" } },
            spec: { predictor: { model: { modelFormat: { name: resolved.format || "custom" }, storageUri: uri } } } });
          done(`Endpoint ${name} created: it serves ${uri} (version ${resolved.version}) and follows the alias.`);
          monitoring();
        } catch (e) { showError("model-error", e); }
      });
    }
    const lineageBox = document.getElementById("model-lineage");
    drawLineage(lineageBox, lineageBox.dataset.node, "both", "model-error");
    root.querySelectorAll("[data-lineage]").forEach((b) => b.addEventListener("click", () => drawLineage(lineageBox, b.dataset.lineage)));

    async function monitoring() {
      const box = document.getElementById("model-monitoring");
      let services = [];
      try { services = (await api("GET", `${base}/inferenceservices`)).items || []; } catch (e) { /* serving absent */ }
      const mine = services.filter((x) => JSON.stringify(x.spec || {}).includes(`models:/${model}/`));
      if (!mine.length) { box.replaceChildren(el("p", { class: "muted", text: "No endpoint serves this model yet." })); return; }
      const parts = [];
      for (const svc of mine) {
        const name = svc.metadata.name;
        let m;
        try { m = await api("GET", `${base}/inferenceservices/${encodeURIComponent(name)}/monitoring`); } catch (e) { continue; }
        const pts = (key) => [{ name, points: m.points.map((p) => ({ x: (p.time - m.points[0].time) / 60, value: p[key] })) }];
        parts.push(el("h3", { text: `${name}: ${fmt(m.total.requests)} requests, ${fmt(m.total.errors)} errors, mean latency ${m.total.meanLatency === null ? "—" : fmt(m.total.meanLatency * 1000) + " ms"}` }),
          el("div", { class: "charts" }, [lineChart("requests / s", pts("requestsPerSecond"), "min"), lineChart("error rate", pts("errorRate"), "min"),
            lineChart("mean latency (s)", pts("meanLatency"), "min")]));
      }
      box.replaceChildren(...parts);
    }
    monitoring();
  }

  function lineagePage(root) {
    const form = document.getElementById("lineage-form"), box = document.getElementById("lineage-graph");
    const show = () => {
      const node = document.getElementById("lineage-node").value.trim();
      if (node) drawLineage(box, node, document.getElementById("lineage-direction").value, "lineage-error");
    };
    form.addEventListener("submit", (ev) => { ev.preventDefault(); show(); });
    show();
  }

  const pages = [["tracking-experiments", experimentsPage], ["tracking-runs", runsPage], ["tracking-compare", comparePage],
    ["model-page", modelPage], ["lineage-explorer", lineagePage]];
  for (const [id, start] of pages) {
    const root = document.getElementById(id);
    if (root) start(root);
  }
});
