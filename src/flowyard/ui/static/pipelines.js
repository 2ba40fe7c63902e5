/* Flowyard dashboard: pipeline graphs (inline SVG) and the live run page with its artifact viewers.
   The forms of the pipelines, runs, experiments and recurring-runs pages are in pipelines_forms.js. */
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const ACTIVE = new Set(["PENDING", "RUNNING", "CANCELING", "PAUSED"]);
  const POLL_MS = 1000;
  const BOX = { w: 176, h: 50, gapX: 56, gapY: 20, pad: 16 };
  const MIN_SCALE = 0.75;
  const api = (...args) => window.flowyard.api(...args);

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (v === null || v === undefined || v === false) return;
      if (k === "class") node.className = v; else node.setAttribute(k, v === true ? "" : v);
    });
    children.flat().forEach((c) => { if (c !== null && c !== undefined) node.append(c); });
    return node;
  }

  function s(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    Object.entries(attrs || {}).forEach(([k, v]) => { if (v !== null && v !== undefined) node.setAttribute(k, v); });
    children.forEach((c) => node.append(c));
    return node;
  }

  const capital = (t) => (t ? t.charAt(0) + t.slice(1).toLowerCase() : "");
  /** The state a task shows: CACHED (as KFP reports it) for a success served from the cache. */
  const taskState = (t) => (t && t.cached && t.state === "SUCCEEDED" ? "CACHED" : t && t.state);
  const show = (v) => (v === null || v === undefined ? "—" : typeof v === "string" ? v : JSON.stringify(v));

  function badge(state) {
    const st = state || "PENDING";
    return h("span", { class: `badge phase run-state state-${st.toLowerCase()}`, "data-state": st }, capital(st));
  }

  function duration(start, end) {
    const a = Date.parse(start || "");
    const b = end ? Date.parse(end) : Date.now();
    if (Number.isNaN(a) || Number.isNaN(b)) return "—";
    const sec = Math.max(0, (b - a) / 1000);
    if (sec < 1) return "< 1 s";
    if (sec < 60) return `${sec.toFixed(1)} s`;
    if (sec < 3600) return `${Math.floor(sec / 60)} min ${Math.floor(sec % 60)} s`;
    return `${Math.floor(sec / 3600)} h ${Math.floor((sec % 3600) / 60)} min`;
  }

  function relative(root) {
    root.querySelectorAll("time[data-relative]").forEach((el) => {
      const t = Date.parse(el.getAttribute("datetime"));
      if (Number.isNaN(t)) return;
      el.title = new Date(t).toLocaleString();
      const sec = Math.max(0, (Date.now() - t) / 1000);
      el.textContent = sec < 60 ? "just now" : sec < 3600 ? `${Math.floor(sec / 60)} min ago`
        : sec < 86400 ? `${Math.floor(sec / 3600)} h ago` : `${Math.floor(sec / 86400)} days ago`;
    });
  }

  function kvTable(obj, cls) {
    const keys = Object.keys(obj || {}).sort();
    if (!keys.length) return h("p", { class: "muted" }, "None.");
    return h("table", { class: `table compact kv ${cls || ""}` }, h("tbody", {},
      keys.map((k) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, h("code", {}, show(obj[k])))))));
  }

  /* -- the graph ------------------------------------------------------------------------------ */

  /** Nodes and edges of one DAG of the IR: every task with the tasks it waits for. */
  function graphOf(spec, dag, prefix) {
    const tasks = (dag && dag.tasks) || {};
    const nodes = Object.entries(tasks).map(([key, t]) => {
      const comp = ((spec.components || {})[(t.componentRef || {}).name]) || {};
      const deps = new Set(t.dependentTasks || []);
      const inputs = (t.inputs || {});
      Object.values(inputs.parameters || {}).concat(Object.values(inputs.artifacts || {})).forEach((i) => {
        const producer = (i.taskOutputParameter || i.taskOutputArtifact || {}).producerTask;
        if (producer && tasks[producer]) deps.add(producer);
      });
      const kind = t.iteratorPolicy || t.parameterIterator || t.artifactIterator ? "loop" : comp.dag ? "dag" : "container";
      return { key, path: prefix ? `${prefix}/${key}` : key, label: (t.taskInfo || {}).name || key, comp: (t.componentRef || {}).name,
        deps: [...deps].filter((d) => tasks[d]), kind, sub: comp.dag ? Object.keys(comp.dag.tasks || {}).length : 0 };
    });
    const byKey = Object.fromEntries(nodes.map((n) => [n.key, n]));
    const level = {};
    const depth = (n, seen) => {
      if (level[n.key] !== undefined) return level[n.key];
      if (seen.has(n.key)) return 0; // a cycle cannot happen in compiled IR; be safe anyway
      seen.add(n.key);
      level[n.key] = n.deps.length ? 1 + Math.max(...n.deps.map((d) => depth(byKey[d], seen))) : 0;
      return level[n.key];
    };
    nodes.forEach((n) => depth(n, new Set()));
    const columns = [];
    nodes.slice().sort((a, b) => a.key.localeCompare(b.key, undefined, { numeric: true })).forEach((n) => {
      (columns[level[n.key]] = columns[level[n.key]] || []).push(n);
    });
    return { nodes, byKey, columns };
  }

  function shorten(text, max) { return text.length > max ? `${text.slice(0, max - 1)}…` : text; }

  /** Draw a DAG into `box`; returns {setState(path, state, note), select(path)}. */
  function drawGraph(box, spec, dag, prefix, onPick) {
    const g = graphOf(spec, dag, prefix);
    box.replaceChildren();
    if (!g.nodes.length) { box.append(h("p", { class: "muted" }, "This pipeline has no tasks.")); return null; }
    const tallest = Math.max(...g.columns.map((c) => (c || []).length));
    const width = BOX.pad * 2 + g.columns.length * BOX.w + (g.columns.length - 1) * BOX.gapX;
    const height = BOX.pad * 2 + tallest * BOX.h + (tallest - 1) * BOX.gapY;
    const pos = {};
    g.columns.forEach((col, i) => {
      const colHeight = col.length * BOX.h + (col.length - 1) * BOX.gapY;
      const top = BOX.pad + (height - 2 * BOX.pad - colHeight) / 2;
      col.forEach((n, j) => { pos[n.key] = { x: BOX.pad + i * (BOX.w + BOX.gapX), y: top + j * (BOX.h + BOX.gapY) }; });
    });
    // Scale down to fit the card (never up), but not below MIN_SCALE so labels stay legible: past that
    // the card scrolls. Sizes go through CSSOM, which the CSP allows (it blocks style attributes).
    const svg = s("svg", { class: "dag-svg", width: "100%", viewBox: `0 0 ${width} ${height}` });
    svg.style.maxWidth = `${width}px`;
    svg.style.minWidth = `${Math.ceil(width * MIN_SCALE)}px`;
    svg.append(s("defs", {}, s("marker", { id: "dag-arrow", viewBox: "0 0 10 10", refX: "9", refY: "5",
      markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" }, s("path", { d: "M0 0 L10 5 L0 10 Z", class: "dag-arrow" }))));
    const edges = s("g", { class: "dag-edges" });
    g.nodes.forEach((n) => n.deps.forEach((d) => {
      const a = pos[d]; const b = pos[n.key];
      const x1 = a.x + BOX.w; const y1 = a.y + BOX.h / 2; const x2 = b.x - 2; const y2 = b.y + BOX.h / 2;
      const mid = (x1 + x2) / 2;
      edges.append(s("path", { d: `M${x1} ${y1} C${mid} ${y1} ${mid} ${y2} ${x2} ${y2}`, class: "dag-edge",
        "data-from": d, "data-to": n.key, "marker-end": "url(#dag-arrow)" }));
    }));
    svg.append(edges);
    const els = {};
    g.nodes.forEach((n) => {
      const p = pos[n.key];
      const note = s("text", { x: p.x + 30, y: p.y + 36, class: "dag-note" });
      note.textContent = n.kind === "container" ? "pending" : `${n.kind === "loop" ? "loop" : "sub-pipeline"} · ${n.sub} tasks`;
      const label = s("text", { x: p.x + 30, y: p.y + 20, class: "dag-label" });
      label.textContent = shorten(n.label, 20);
      const node = s("g", { class: `dag-node st-none kind-${n.kind}`, "data-task": n.path, tabindex: onPick ? "0" : null,
        role: onPick ? "button" : "img", "aria-label": `Task ${n.label}` },
        s("title", {}, document.createTextNode(n.label)),
        s("rect", { x: p.x, y: p.y, width: BOX.w, height: BOX.h, rx: 9, class: "dag-box" }),
        s("circle", { cx: p.x + 16, cy: p.y + BOX.h / 2, r: 6, class: "dag-dot" }), label, note);
      if (n.kind !== "container") {
        node.append(s("rect", { x: p.x + 3, y: p.y + 3, width: BOX.w - 6, height: BOX.h - 6, rx: 7, class: "dag-inner" }));
      }
      if (onPick) {
        node.addEventListener("click", () => onPick(n.path, n));
        node.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); onPick(n.path, n); } });
      }
      svg.append(node);
      els[n.path] = { node, note, kind: n.kind, key: n.key };
    });
    box.append(svg);
    return {
      setState(path, state, text) {
        const e = els[path];
        if (!e) return;
        const cls = `dag-node st-${(state || "none").toLowerCase()} kind-${e.kind}${e.node.classList.contains("selected") ? " selected" : ""}`;
        if (e.node.getAttribute("class") !== cls) e.node.setAttribute("class", cls);
        e.node.dataset.state = state || "";
        if (text !== undefined && e.note.textContent !== text) e.note.textContent = text;
        edges.querySelectorAll(`[data-from="${CSS.escape(e.key)}"]`).forEach((p) => {
          p.classList.toggle("done", state === "SUCCEEDED" || state === "CACHED");
        });
      },
      select(path) {
        Object.entries(els).forEach(([k, e]) => e.node.classList.toggle("selected", k === path));
      },
      paths: Object.keys(els),
    };
  }

  /* -- pipeline page: the graph ------------------------------------------------------------------ */

  function pipelineGraph() {
    const data = document.getElementById("pipeline-spec");
    const box = document.getElementById("dag");
    if (!data || !box) return;
    const spec = JSON.parse(data.textContent);
    const trail = document.getElementById("dag-trail");
    const levels = [{ label: (spec.pipelineInfo || {}).name || "pipeline", dag: (spec.root || {}).dag }];
    /* a nested pipeline, condition, exit handler or loop body opens in place; the trail leads back */
    function draw() {
      drawGraph(box, spec, levels[levels.length - 1].dag, "", (path, node) => {
        const dag = ((spec.components || {})[node.comp] || {}).dag;
        if (node.kind === "container" || !dag) return;
        levels.push({ label: node.label, dag });
        draw();
      });
      box.querySelectorAll(".dag-node.kind-container").forEach((n) => {
        n.querySelector(".dag-note").textContent = "task";
        n.removeAttribute("tabindex");
        n.setAttribute("role", "img");
      });
      if (!trail) return;
      trail.hidden = levels.length < 2;
      trail.replaceChildren(...levels.map((level, i) => {
        if (i === levels.length - 1) return h("span", { "aria-current": "location" }, level.label);
        const b = h("button", { type: "button", class: "link-button" }, level.label);
        b.addEventListener("click", () => { levels.splice(i + 1); draw(); });
        return h("span", {}, b, h("span", { class: "muted", "aria-hidden": "true" }, " / "));
      }));
    }
    draw();
  }

  /* -- run page ---------------------------------------------------------------------------------- */

  function artifactLink(ns, entry, uri) {
    const path = String(uri || "").replace(/^file:\/\//, "");
    const marker = `/${ns}/runs/`;
    const at = path.indexOf(marker);
    let rel = at >= 0 ? path.slice(at + ns.length + 2) : null;
    if (rel === null && entry && entry.artifactPath) {
      const i = path.indexOf(`/${entry.artifactPath}/`);
      if (i >= 0) rel = path.slice(i + 1);
    }
    if (!rel || rel.split("/").includes("..")) return null;
    return `/api/v1/namespaces/${encodeURIComponent(ns)}/artifacts/${rel.split("/").map(encodeURIComponent).join("/")}`;
  }

  function confusionMatrix(cm) {
    const labels = (cm.annotationSpecs || []).map((a) => a.displayName || "");
    const rows = (cm.rows || []).map((r) => r.row || []);
    const max = Math.max(1, ...rows.flat().map(Number).filter((x) => !Number.isNaN(x)));
    return h("table", { class: "confusion", "aria-label": "Confusion matrix (rows: actual, columns: predicted)" },
      h("thead", {}, h("tr", {}, h("th", {}, "actual \\ predicted"), labels.map((l) => h("th", { scope: "col" }, l)))),
      h("tbody", {}, rows.map((r, i) => h("tr", {}, h("th", { scope: "row" }, labels[i] || String(i)),
        r.map((v) => {
          const td = h("td", {}, String(v));
          const share = Number(v) / max;
          td.style.setProperty("--share", String(Math.round(share * 100)));
          td.dataset.share = share > 0.55 ? "high" : "low";
          return td;
        })))));
  }

  function rocChart(points) {
    const pts = points.map((p) => [Number(p.falsePositiveRate), Number(p.recall)])
      .filter(([x, y]) => !Number.isNaN(x) && !Number.isNaN(y)).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const W = 240; const H = 200; const L = 34; const B = 26; const T = 8; const R = 8;
    const X = (x) => L + x * (W - L - R); const Y = (y) => H - B - y * (H - B - T);
    const svg = s("svg", { class: "roc", width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "ROC curve" });
    svg.append(s("rect", { x: L, y: T, width: W - L - R, height: H - B - T, class: "roc-frame" }));
    svg.append(s("path", { d: `M${X(0)} ${Y(0)} L${X(1)} ${Y(1)}`, class: "roc-diag" }));
    if (pts.length) svg.append(s("path", { d: pts.map(([x, y], i) => `${i ? "L" : "M"}${X(x).toFixed(1)} ${Y(y).toFixed(1)}`).join(" "), class: "roc-line" }));
    [[0, "0"], [0.5, "0.5"], [1, "1"]].forEach(([v, t]) => {
      const a = s("text", { x: X(v), y: H - 10, class: "roc-tick", "text-anchor": "middle" }); a.textContent = t; svg.append(a);
      const b = s("text", { x: L - 5, y: Y(v) + 4, class: "roc-tick", "text-anchor": "end" }); b.textContent = t; svg.append(b);
    });
    const xl = s("text", { x: (L + W) / 2, y: H - 1, class: "roc-tick", "text-anchor": "middle" }); xl.textContent = "false positive rate";
    svg.append(xl);
    return svg;
  }

  /** Inline Markdown (code, bold, italic, links) as DOM nodes: text is never parsed as HTML. */
  function inline(text) {
    const out = [];
    const re = /`([^`]+)`|\*\*([^*]+)\*\*|__([^_]+)__|\*([^*\s][^*]*)\*|_([^_\s][^_]*)_|\[([^\]]+)\]\(([^)\s]+)\)/g;
    let last = 0;
    let m;
    while ((m = re.exec(text))) {
      if (m.index > last) out.push(text.slice(last, m.index));
      if (m[1] !== undefined) out.push(h("code", {}, m[1]));
      else if (m[2] !== undefined || m[3] !== undefined) out.push(h("strong", {}, ...inline(m[2] || m[3])));
      else if (m[4] !== undefined || m[5] !== undefined) out.push(h("em", {}, ...inline(m[4] || m[5])));
      else if (/^(https?:|\/|#)/.test(m[7])) out.push(h("a", { href: m[7], rel: "noopener noreferrer", target: "_blank" }, m[6]));
      else out.push(m[6]);
      last = re.lastIndex;
    }
    if (last < text.length) out.push(text.slice(last));
    return out;
  }

  /** A Markdown artifact rendered safely: headings, paragraphs, lists, quotes, code blocks, tables, rules. */
  function markdown(text) {
    const root = h("div", { class: "markdown" });
    const lines = text.replace(/\r\n?/g, "\n").split("\n");
    let i = 0;
    const cells = (line) => line.trim().replace(/^\||\|$/g, "").split("|").map((c) => c.trim());
    while (i < lines.length) {
      const line = lines[i];
      if (!line.trim()) { i += 1; continue; }
      const fence = line.match(/^\s*(```|~~~)/);
      if (fence) {
        const body = [];
        for (i += 1; i < lines.length && !lines[i].trim().startsWith(fence[1]); i += 1) body.push(lines[i]);
        i += 1;
        root.append(h("pre", {}, h("code", {}, body.join("\n"))));
        continue;
      }
      const head = line.match(/^(#{1,6})\s+(.*?)\s*#*$/);
      if (head) { root.append(h(`h${Math.min(6, head[1].length + 2)}`, {}, ...inline(head[2]))); i += 1; continue; }
      if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) { root.append(h("hr", {})); i += 1; continue; }
      if (line.includes("|") && i + 1 < lines.length && /^\s*\|?\s*:?-{3,}/.test(lines[i + 1])) {
        const header = cells(line);
        const rows = [];
        for (i += 2; i < lines.length && lines[i].includes("|") && lines[i].trim(); i += 1) rows.push(cells(lines[i]));
        root.append(h("table", { class: "table compact" }, h("thead", {}, h("tr", {}, header.map((c) => h("th", {}, ...inline(c))))),
          h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, ...inline(c))))))));
        continue;
      }
      const item = /^\s*([-*+]|\d+[.)])\s+/;
      if (item.test(line)) {
        const ordered = /^\s*\d/.test(line);
        const list = h(ordered ? "ol" : "ul", {});
        for (; i < lines.length && item.test(lines[i]); i += 1) list.append(h("li", {}, ...inline(lines[i].replace(item, ""))));
        root.append(list);
        continue;
      }
      if (/^\s*>/.test(line)) {
        const quote = [];
        for (; i < lines.length && /^\s*>/.test(lines[i]); i += 1) quote.push(lines[i].replace(/^\s*>\s?/, ""));
        root.append(h("blockquote", {}, ...inline(quote.join(" "))));
        continue;
      }
      const para = [];
      for (; i < lines.length && lines[i].trim() && !/^(#{1,6}\s|\s*```|\s*>|\s*([-*+]|\d+[.)])\s)/.test(lines[i]); i += 1) para.push(lines[i].trim());
      if (!para.length) { para.push(line.trim()); i += 1; }
      root.append(h("p", {}, ...inline(para.join(" "))));
    }
    return root;
  }

  async function fetchText(url, into, kind) {
    try {
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const text = await response.text();
      if (kind === "html") {
        into.replaceChildren(h("iframe", { class: "artifact-html", sandbox: "", title: "HTML artifact", srcdoc: text }));
      } else if (kind === "markdown") {
        into.replaceChildren(markdown(text));
      } else {
        into.replaceChildren(h("pre", { class: "artifact-text" }, text));
      }
    } catch (e) {
      into.replaceChildren(h("p", { class: "muted" }, `Could not load the artifact (${e.message}).`));
    }
  }

  function artifactView(ns, entry, name, art) {
    const type = ((art.type || {}).schemaTitle || "system.Artifact");
    const md = art.metadata || {};
    const link = artifactLink(ns, entry, art.uri);
    const head = h("div", { class: "artifact-head" }, h("strong", {}, name), h("span", { class: "type-tag" }, type.replace(/^system\./, "")),
      link ? h("a", { class: "btn small", href: link, download: "" }, "Download") : null);
    const body = h("div", { class: "artifact-body" });
    const scalars = Object.fromEntries(Object.entries(md).filter(([k, v]) => k !== "display_name" && (typeof v !== "object" || v === null)));
    if (type === "system.Metrics") {
      body.append(kvTable(scalars, "metrics"));
    } else if (type === "system.ClassificationMetrics") {
      if (md.confusionMatrix) body.append(h("p", { class: "sub" }, "Confusion matrix"), confusionMatrix(md.confusionMatrix));
      if (Array.isArray(md.confidenceMetrics)) body.append(h("p", { class: "sub" }, "ROC curve"), rocChart(md.confidenceMetrics));
      if (!md.confusionMatrix && !md.confidenceMetrics) body.append(kvTable(scalars));
    } else if ((type === "system.HTML" || type === "system.Markdown") && link) {
      const slot = h("div", { class: "artifact-slot" }, h("p", { class: "muted" }, "Loading…"));
      body.append(slot);
      fetchText(link, slot, type === "system.HTML" ? "html" : "markdown");
    } else if (Object.keys(md).length) {
      body.append(kvTable(scalars));
    }
    const uri = h("p", { class: "artifact-uri" }, h("span", { class: "muted" }, "URI "), h("code", {}, art.uri || "—"));
    return h("div", { class: "artifact", "data-type": type }, head, uri, body);
  }

  function logPanel(ns, run, path, entry) {
    const pre = h("pre", { class: "log", id: "task-log", tabindex: "0" });
    const status = h("p", { class: "muted log-status", id: "task-log-status" });
    const button = h("button", { type: "button", class: "btn small", id: "task-log-open" }, "Show logs");
    const wrap = h("div", { class: "log-wrap" }, h("div", { class: "artifact-head" }, h("strong", {}, "Logs"), button), status);
    let controller = null;
    async function open() {
      button.disabled = true;
      wrap.append(pre);
      const follow = ACTIVE.has(entry.state || "PENDING");
      const url = `/api/v1/namespaces/${encodeURIComponent(ns)}/runs/${encodeURIComponent(run)}/tasks/${encodeURIComponent(path)}/log${follow ? "?follow=true" : ""}`;
      controller = new AbortController();
      status.textContent = follow ? "Following the log…" : "Loading…";
      try {
        const response = await fetch(url, { credentials: "same-origin", signal: controller.signal, headers: { Accept: "text/plain, application/json" } });
        if (!response.ok) {
          let body = null;
          try { body = await response.json(); } catch (e) { /* not JSON */ }
          if (response.status === 404 && (!body || body.detail === "Not Found")) {
            throw new Error("Task logs are not available: this server has no task-log API yet (HTTP 404).");
          }
          throw new Error((body && (body.message || body.detail)) || `The log could not be read (HTTP ${response.status}).`);
        }
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
          pre.append(decoder.decode(value, { stream: true }));
          if (atEnd) pre.scrollTop = pre.scrollHeight;
        }
        status.textContent = pre.textContent ? "End of the log." : "The log is empty.";
      } catch (e) {
        if (e.name === "AbortError") return;
        status.textContent = e.message;
        status.className = "alert warn log-status";
        if (!pre.textContent) pre.remove();
      }
    }
    button.addEventListener("click", open);
    return { el: wrap, stop: () => controller && controller.abort() };
  }

  function runPage() {
    const data = document.getElementById("run-data");
    const box = document.getElementById("dag");
    if (!data || !box) return;
    let run = JSON.parse(data.textContent);
    const ns = box.dataset.namespace;
    const name = box.dataset.run;
    const spec = (run.spec || {}).pipelineSpec || {};
    const panel = document.getElementById("task-panel");
    const body = document.getElementById("task-body");
    let selected = null;
    let log = null;
    let shownState = null;

    const tasks = () => ((run.status || {}).tasks || {});
    const children = (path) => Object.entries(tasks()).filter(([k]) => k.startsWith(`${path}/`) || k.startsWith(`${path}-iteration-`));

    function renderPanel(path, force) {
      const entry = tasks()[path] || { state: "" };
      if (!force && shownState === JSON.stringify(entry)) return;
      shownState = JSON.stringify(entry);
      if (log && force) { log.stop(); log = null; }
      const keepLog = log ? log.el : null;
      document.getElementById("task-title").textContent = entry.name || path.split("/").pop();
      const facts = h("dl", { class: "task-facts" },
        h("div", {}, h("dt", {}, "State"), h("dd", {}, entry.state ? badge(taskState(entry)) : h("span", { class: "muted" }, "not started"))),
        h("div", {}, h("dt", {}, "Type"), h("dd", {}, entry.type || "—")),
        h("div", {}, h("dt", {}, "Duration"), h("dd", {}, entry.startedAt ? duration(entry.startedAt, entry.finishedAt) : "—")),
        h("div", {}, h("dt", {}, "Path"), h("dd", {}, h("code", {}, path))));
      const parts = [facts];
      if (entry.message) parts.push(h("div", { class: `alert ${entry.state === "FAILED" ? "error" : "warn"}` }, entry.message));
      if (taskState(entry) === "CACHED") {
        const from = entry.cachedFrom || {};
        const source = from.run ? h("a", { href: `/runs/${encodeURIComponent(from.run)}?ns=${encodeURIComponent(ns)}` }, "an earlier run") : "an earlier run";
        parts.push(h("p", { class: "note cached-note" }, h("span", {}, "Not run: its outputs come from the cache of ", source,
          from.task ? ` (task ${from.task})` : "", ".")));
      }
      const inputs = entry.inputs || {};
      const outputs = entry.outputs || {};
      parts.push(h("h3", {}, "Inputs"), kvTable(inputs.parameters, "task-inputs"));
      const inArts = Object.entries(inputs.artifacts || {});
      if (inArts.length) {
        parts.push(h("ul", { class: "input-artifacts" }, inArts.flatMap(([aname, list]) => (list || []).map((a) => {
          const link = artifactLink(ns, null, a.uri);
          return h("li", {}, h("strong", {}, aname), " ", h("span", { class: "type-tag" }, ((a.type || {}).schemaTitle || "system.Artifact").replace(/^system\./, "")),
            " ", link ? h("a", { href: link, download: "" }, "download") : h("code", {}, a.uri || "—"));
        }))));
      }
      parts.push(h("h3", {}, "Outputs"), kvTable(outputs.parameters, "task-outputs"));
      const arts = Object.entries(outputs.artifacts || {});
      if (arts.length) {
        parts.push(h("h3", {}, "Artifacts"));
        arts.forEach(([aname, list]) => (list || []).forEach((a) => parts.push(artifactView(ns, entry, aname, a))));
      }
      const kids = children(path);
      if (entry.type === "dag" || entry.type === "iteration") {
        const open = h("button", { type: "button", class: "btn small", id: "open-subgraph" }, "Open its graph");
        open.addEventListener("click", () => showLevels(trailFor(path)));
        parts.push(h("div", { class: "subgraph-open" }, open));
      } else if (entry.type === "loop" && (entry.items || []).length) {
        const choice = h("select", { id: "iteration-pick", "aria-label": "Iteration" }, entry.items.map((item, i) =>
          h("option", { value: String(i) }, `iteration ${i}: ${shorten(show(item && item.uri ? item.uri.split("/").slice(-2).join("/") : item), 40)}`)));
        const open = h("button", { type: "button", class: "btn small", id: "open-subgraph" }, "Open its graph");
        open.addEventListener("click", () => showLevels(trailFor(`${path}-iteration-${choice.value}`)));
        parts.push(h("div", { class: "subgraph-open" }, choice, open));
      }
      if (kids.length) {
        parts.push(h("h3", {}, "Tasks inside"), h("ul", { class: "child-tasks" }, kids.map(([k, t]) => {
          const b = h("button", { type: "button", class: "link-button" }, k.slice(path.length + 1) || k);
          b.addEventListener("click", () => pick(k));
          return h("li", {}, b, " ", badge(taskState(t)));
        })));
      }
      if (taskState(entry) === "CACHED") {
        if (keepLog) { log.stop(); log = null; }
      } else if (entry.type === "container" || (!entry.type && !kids.length)) {
        if (!log) log = logPanel(ns, name, path, entry);
        parts.push(log.el);
      } else if (keepLog) { log.stop(); log = null; }
      body.replaceChildren(...parts);
    }

    function pick(path) {
      selected = path;
      panel.hidden = false;
      graph && graph.select(path);
      renderPanel(path, true);
      panel.scrollIntoView({ block: "nearest" });
    }

    /** The graphs from the root down to the DAG at `path` (a nested pipeline, condition or loop iteration). */
    function trailFor(path) {
      const levels = [{ label: (spec.pipelineInfo || {}).name || "pipeline", prefix: "", dag: (spec.root || {}).dag }];
      let prefix = "";
      path.split("/").forEach((part) => {
        prefix = prefix ? `${prefix}/${part}` : part;
        const entry = tasks()[prefix] || {};
        let comp = entry.component;
        if (entry.type === "iteration") comp = (tasks()[prefix.replace(/-iteration-\d+$/, "")] || {}).component;
        else if (entry.type !== "dag") return;
        const dag = ((spec.components || {})[comp] || {}).dag;
        if (dag) levels.push({ label: entry.name || part, prefix, dag });
      });
      return levels;
    }

    let graph = null;
    const trail = document.getElementById("dag-trail");
    function showLevels(levels) {
      const here = levels[levels.length - 1];
      graph = drawGraph(box, spec, here.dag, here.prefix, pick);
      if (trail) {
        trail.hidden = levels.length < 2;
        trail.replaceChildren(...levels.map((level, i) => {
          if (i === levels.length - 1) return h("span", { "aria-current": "location" }, level.label);
          const b = h("button", { type: "button", class: "link-button" }, level.label);
          b.addEventListener("click", () => showLevels(levels.slice(0, i + 1)));
          return h("span", {}, b, h("span", { class: "muted", "aria-hidden": "true" }, " / "));
        }));
      }
      if (selected) graph && graph.select(selected);
      paint();
    }
    document.getElementById("task-close").addEventListener("click", () => {
      panel.hidden = true; selected = null; if (log) { log.stop(); log = null; } graph && graph.select(null);
    });

    function paint() {
      const st = run.status || {};
      const state = st.state || "PENDING";
      if (graph) {
        graph.paths.forEach((p) => {
          const t = tasks()[p];
          const kids = children(p).length;
          let note;
          if (!t) note = state in { SUCCEEDED: 1, FAILED: 1, CANCELED: 1 } ? "not run" : "waiting";
          else if (t.state === "RUNNING" && t.startedAt) note = `running · ${duration(t.startedAt)}`;
          else if (taskState(t) === "CACHED") note = "cached · not run";
          else if (t.startedAt && t.finishedAt) note = `${t.state.toLowerCase()} · ${duration(t.startedAt, t.finishedAt)}`;
          else note = (t.state || "pending").toLowerCase();
          if (kids && t) note += ` · ${kids} inside`;
          graph.setState(p, t ? taskState(t) : null, note);
        });
      }
      const badgeSlot = document.getElementById("run-state");
      if (badgeSlot && badgeSlot.firstElementChild.dataset.state !== state) badgeSlot.replaceChildren(badge(state));
      const dur = document.getElementById("run-duration");
      if (dur) dur.textContent = duration(st.startedAt || (run.metadata || {}).creationTimestamp, ACTIVE.has(state) ? null : st.finishedAt);
      const fin = document.getElementById("run-finished");
      if (fin && !ACTIVE.has(state) && st.finishedAt && !fin.querySelector("time")) {
        fin.replaceChildren(h("time", { datetime: st.finishedAt, "data-relative": "" }, st.finishedAt));
        relative(fin);
      }
      const term = document.getElementById("terminate-run");
      if (term) term.hidden = !ACTIVE.has(state) || state === "CANCELING";
      const retry = document.getElementById("retry-run");
      if (retry) retry.hidden = state !== "FAILED" && state !== "CANCELED";
      const msg = document.getElementById("run-message");
      if (msg && st.message && (state === "FAILED" || state === "CANCELED")) {
        msg.textContent = st.message; msg.className = `alert ${state === "FAILED" ? "error" : "warn"}`; msg.hidden = false;
      }
      const outs = (st.outputs || {}).parameters || {};
      const outBox = document.getElementById("run-outputs");
      if (outBox && Object.keys(outs).length && outBox.dataset.filled !== JSON.stringify(outs)) {
        outBox.dataset.filled = JSON.stringify(outs);
        outBox.replaceChildren(kvTable(outs));
      }
      if (selected) renderPanel(selected, false);
    }

    showLevels(trailFor(""));

    async function poll() {
      try {
        run = await api("GET", `/api/v1/namespaces/${encodeURIComponent(ns)}/runs/${encodeURIComponent(name)}`);
        paint();
      } catch (e) { /* keep the last picture; try again */ }
      if (ACTIVE.has((run.status || {}).state || "PENDING")) setTimeout(poll, POLL_MS);
    }
    if (ACTIVE.has((run.status || {}).state || "PENDING")) setTimeout(poll, POLL_MS);

    const retry = document.getElementById("retry-run");
    if (retry) {
      retry.addEventListener("click", async () => {
        retry.disabled = true;
        const msg = document.getElementById("run-message");
        try {
          await api("POST", `/apis/v2beta1/runs/${encodeURIComponent(retry.dataset.runId)}:retry`, {});
          msg.textContent = "Retrying: failed and canceled tasks run again, finished ones are kept.";
          msg.className = "alert warn"; msg.hidden = false;
          retry.hidden = true;
          setTimeout(poll, 300);
        } catch (e) {
          msg.textContent = e.message; msg.className = "alert error"; msg.hidden = false;
        }
        retry.disabled = false;
      });
    }
    const archive = document.getElementById("archive-run");
    if (archive) {
      archive.addEventListener("click", async () => {
        archive.disabled = true;
        const msg = document.getElementById("run-message");
        try {
          await api("POST", `/apis/v2beta1/runs/${encodeURIComponent(archive.dataset.runId)}:${archive.dataset.action}`, {});
          window.location.reload();
          return;
        } catch (e) {
          msg.textContent = e.message; msg.className = "alert error"; msg.hidden = false;
        }
        archive.disabled = false;
      });
    }
    const term = document.getElementById("terminate-run");
    if (term) {
      term.addEventListener("click", async () => {
        if (!window.confirm("Terminate this run? Its running tasks are stopped.")) return;
        term.disabled = true;
        const msg = document.getElementById("run-message");
        try {
          await api("POST", `/apis/v2beta1/runs/${encodeURIComponent(term.dataset.runId)}:terminate`, {});
          msg.textContent = "Terminating…"; msg.className = "alert warn"; msg.hidden = false;
          setTimeout(poll, 200);
        } catch (e) {
          msg.textContent = e.message; msg.className = "alert error"; msg.hidden = false;
        }
        term.disabled = false;
      });
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    pipelineGraph();
    runPage();
  });
})();
