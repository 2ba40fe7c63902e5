/* Flowyard dashboard: small progressive enhancements and calls to the JSON API. */
"use strict";

(function () {
  const meta = (name) => (document.querySelector(`meta[name="${name}"]`) || {}).content || "";

  /** Call the JSON API with the session cookie and CSRF header; throws Error(message) on failure. */
  async function api(method, url, body) {
    const headers = { Accept: "application/json" };
    if (method !== "GET" && method !== "HEAD") headers[meta("csrf-header") || "X-CSRF-Token"] = meta("csrf-token");
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(url, {
        method, headers, credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new Error("The server cannot be reached: check your connection and try again.");
    }
    let data = null;
    try { data = await response.json(); } catch (e) { /* not JSON */ }
    if (!response.ok) {
      const message = (data && data.message) || `The request failed (HTTP ${response.status}).`;
      const error = new Error(message.charAt(0).toUpperCase() + message.slice(1));
      error.status = response.status;
      throw error;
    }
    return data;
  }
  window.flowyard = { api };

  /* Forms marked data-autosubmit submit when a select changes (the namespace switcher). */
  function autosubmit() {
    document.querySelectorAll("form[data-autosubmit] select").forEach((select) => {
      select.addEventListener("change", () => select.form.submit());
    });
  }

  /* <time data-relative> shows "5 min ago", with the exact time as a tooltip. */
  function relativeTimes() {
    const units = [["day", 86400], ["h", 3600], ["min", 60]];
    document.querySelectorAll("time[data-relative]").forEach((el) => {
      const t = Date.parse(el.getAttribute("datetime"));
      if (Number.isNaN(t)) return;
      el.title = new Date(t).toLocaleString();
      const seconds = Math.max(0, (Date.now() - t) / 1000);
      if (seconds < 60) { el.textContent = "just now"; return; }
      for (const [name, size] of units) {
        if (seconds >= size) {
          const n = Math.floor(seconds / size);
          el.textContent = `${n} ${name}${name === "day" && n > 1 ? "s" : ""} ago`;
          return;
        }
      }
    });
  }

  /* -- members page ------------------------------------------------------------------------ */

  function members() {
    const table = document.getElementById("members-table");
    if (!table || table.dataset.editable !== "true") return;
    const ns = table.dataset.namespace;
    const me = table.dataset.me;
    const box = document.getElementById("members-message");
    const form = document.getElementById("add-member");
    const roles = Array.from(document.querySelectorAll("#member-role option")).map((o) => o.value);
    const base = `/api/v1/namespaces/${encodeURIComponent(ns)}/members`;

    function say(text, kind) {
      box.textContent = text;
      box.className = `alert ${kind}`;
      box.hidden = false;
    }

    function el(tag, attrs, ...children) {
      const node = document.createElement(tag);
      Object.entries(attrs || {}).forEach(([k, v]) => {
        if (k === "class") node.className = v; else node.setAttribute(k, v);
      });
      children.forEach((c) => node.append(c));
      return node;
    }

    function row(m) {
      const name = el("span", { class: "who" },
        el("span", { class: "avatar small", "aria-hidden": "true" }, m.user.charAt(0).toUpperCase()),
        el("span", { class: "member-name" }, m.user));
      if (m.owner) name.append(el("span", { class: "badge subtle" }, "owner"));
      if (m.user === me) name.append(el("span", { class: "muted" }, "(you)"));
      const who = el("td", {}, name);
      let role;
      let actions;
      if (m.owner) {
        role = el("td", {}, el("span", { class: `badge role-${m.role}` }, m.role));
        actions = el("td", { class: "actions" });
      } else {
        const select = el("select", { class: "role-select", "aria-label": `Role of ${m.user}` });
        roles.forEach((r) => { const o = el("option", { value: r }, r); o.selected = r === m.role; select.append(o); });
        role = el("td", {}, select);
        actions = el("td", { class: "actions" },
          el("button", { type: "button", class: "btn danger small remove-member", "aria-label": `Remove ${m.user}` }, "Remove"));
      }
      return el("tr", { "data-user": m.user }, who, role, actions);
    }

    async function refresh() {
      const data = await api("GET", base);
      const body = table.tBodies[0];
      body.replaceChildren(...data.items.map(row));
      const count = document.querySelector("#members-title .count");
      if (count) count.textContent = String(data.items.length);
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const user = form.elements.user.value.trim();
      const role = form.elements.role.value;
      if (!user) { say("Enter the user name of the person to add.", "error"); form.elements.user.focus(); return; }
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        await api("PUT", `${base}/${encodeURIComponent(user)}`, { role });
        await refresh();
        form.reset();
        say(`${user} is now a member of ${ns} with the ${role} role.`, "ok");
      } catch (e) {
        say(e.message, "error");
      } finally {
        button.disabled = false;
      }
    });

    table.addEventListener("change", async (event) => {
      const select = event.target.closest("select.role-select");
      if (!select) return;
      const user = select.closest("tr").dataset.user;
      select.disabled = true;
      try {
        await api("PUT", `${base}/${encodeURIComponent(user)}`, { role: select.value });
        say(`${user} now has the ${select.value} role.`, "ok");
        if (user === me && select.value !== "admin") window.location.reload();
      } catch (e) {
        say(e.message, "error");
        await refresh().catch(() => {});
      } finally {
        select.disabled = false;
      }
    });

    table.addEventListener("click", async (event) => {
      const button = event.target.closest("button.remove-member");
      if (!button) return;
      const user = button.closest("tr").dataset.user;
      if (!window.confirm(`Remove ${user} from ${ns}?`)) return;
      button.disabled = true;
      try {
        await api("DELETE", `${base}/${encodeURIComponent(user)}`);
        if (user === me) { window.location.reload(); return; }
        await refresh();
        say(`${user} was removed from ${ns}.`, "ok");
      } catch (e) {
        say(e.message, "error");
        button.disabled = false;
      }
    });
  }


  /* -- notebooks --------------------------------------------------------------------------- */

  const STOP_ANNOTATION = "kubeflow-resource-stopped";
  const GPU = "nvidia.com/gpu";
  const HOME = "/home/jovyan"; // where the workspace volume is mounted (WORKSPACE_MOUNT in ui/routes.py)
  const TRANSITIONAL = new Set(["Pending", "Starting", "Stopping"]);
  const REFRESH_MS = 2000;
  const IDLE_REFRESH_MS = 30000;

  /** An element with attributes (class, and any other) and children (nodes or text). */
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (v === null || v === undefined || v === false) return;
      if (k === "class") node.className = v; else node.setAttribute(k, v === true ? "" : v);
    });
    children.forEach((c) => { if (c !== null && c !== undefined) node.append(c); });
    return node;
  }

  /** The sprite icon `i-<name>`. */
  function icon(name) {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("class", "icon");
    svg.setAttribute("aria-hidden", "true");
    const use = document.createElementNS("http://www.w3.org/2000/svg", "use");
    use.setAttribute("href", `#i-${name}`);
    svg.append(use);
    return svg;
  }

  /** What the table shows of a Notebook manifest (mirrors `notebook_row` in ui/routes.py). */
  function notebookRow(obj) {
    const meta = obj.metadata || {};
    const pod = ((obj.spec || {}).template || {}).spec || {};
    const container = (pod.containers || [])[0] || {};
    const resources = container.resources || {};
    const limits = resources.limits || {};
    const requests = resources.requests || {};
    const amount = (key) => {
      const v = key in limits ? limits[key] : requests[key];
      return v === undefined || v === null || v === "" ? null : String(v);
    };
    const status = obj.status || {};
    const stopped = STOP_ANNOTATION in (meta.annotations || {});
    const phase = String(status.phase || "Pending");
    const ready = (status.conditions || []).find((c) => c && c.type === "Ready");
    let shown = phase;
    if (stopped && phase !== "Stopped" && phase !== "Failed") shown = "Stopping";
    else if (!stopped && phase === "Stopped") shown = "Starting";
    const url = status.url || "";
    const volumes = new Map((pod.volumes || []).filter((v) => v && v.persistentVolumeClaim && v.persistentVolumeClaim.claimName)
      .map((v) => [v.name, v.persistentVolumeClaim.claimName]));
    const home = (container.volumeMounts || []).find((m) => m && String(m.mountPath || "").replace(/\/+$/, "") === HOME);
    return {
      name: meta.name || "",
      environment: container.image || "default",
      cpu: amount("cpu"), memory: amount("memory"), gpu: amount(GPU),
      phase: shown,
      message: status.message || "",
      ready: ready && shown !== "Stopped" ? ready.status === "True" : null,
      readyReason: ready ? (ready.message || ready.reason || "") : "",
      lastActivity: status.lastActivity || "",
      stopped,
      connect: url && phase === "Running" && !stopped ? `${url.endsWith("/") ? url : `${url}/`}lab` : null,
      workspace: (home && volumes.get(home.name)) || "",
      claims: Array.from(volumes.values()),
    };
  }

  function notebookRowElement(nb, editable) {
    const badge = h("span", { class: `badge phase phase-${nb.phase.toLowerCase()}`, title: nb.message || null }, nb.phase);
    const line = h("span", { class: "status-line" }, badge);
    if (nb.ready !== null) {
      line.append(h("span", { class: `ready ${nb.ready ? "yes" : "no"}`, title: nb.readyReason || null },
        nb.ready ? "Ready" : "Not ready"));
    }
    const statusCell = h("td", { class: "status-cell" }, line);
    if (nb.message) statusCell.append(h("span", { class: "status-message", title: nb.message }, nb.message));
    const activity = nb.lastActivity
      ? h("time", { datetime: nb.lastActivity, "data-relative": true }, nb.lastActivity.replace("T", " ").replace("Z", " UTC"))
      : h("span", { class: "muted" }, "—");
    const tr = h("tr", { "data-name": nb.name, "data-phase": nb.phase, "data-stopped": String(nb.stopped),
      "data-claims": nb.claims.join(" "), "data-workspace": nb.workspace },
    h("td", {}, h("span", { class: "nb-name" }, nb.name)),
    h("td", {}, h("span", { class: "env" }, nb.environment)),
    h("td", { class: "num" }, nb.cpu || "—"),
    h("td", { class: "num" }, nb.memory || "—"),
    h("td", { class: "num" }, nb.gpu || "—"),
    statusCell,
    h("td", { class: "nowrap" }, activity));
    if (editable) {
      const actions = h("td", { class: "actions" });
      if (nb.connect) {
        actions.append(h("a", { class: "btn primary small connect", href: nb.connect, target: "_blank", rel: "noopener",
          "aria-label": `Connect to ${nb.name}` }, "Connect"), " ");
      }
      actions.append(nb.stopped
        ? h("button", { type: "button", class: "btn small start", "aria-label": `Start ${nb.name}` }, "Start")
        : h("button", { type: "button", class: "btn small stop", "aria-label": `Stop ${nb.name}` }, "Stop"), " ");
      actions.append(h("button", { type: "button", class: "btn danger small delete", "aria-label": `Delete ${nb.name}` }, "Delete"));
      tr.append(actions);
    }
    return tr;
  }

  /** An RFC 3339 time without fractions, e.g. 2024-05-01T12:00:00Z. */
  function rfc3339(date) {
    return date.toISOString().replace(/\.\d{3}Z$/, "Z");
  }

  function notebooks() {
    const table = document.getElementById("notebooks-table");
    if (!table) return;
    const ns = table.dataset.namespace;
    const editable = table.dataset.editable === "true";
    const empty = document.getElementById("notebooks-empty");
    const box = document.getElementById("notebooks-message");
    const dialog = document.getElementById("delete-dialog");
    const base = `/api/v1/namespaces/${encodeURIComponent(ns)}/notebooks`;
    let timer = null;
    let inFlight = false;

    function say(text, kind) {
      box.textContent = text;
      box.className = `alert ${kind}`;
      box.hidden = !text;
    }

    function busy() {
      return Array.from(table.tBodies[0].rows).some((tr) => TRANSITIONAL.has(tr.dataset.phase));
    }

    function schedule() {
      window.clearTimeout(timer);
      // every 2 s while something is on its way; otherwise now and then, for culling and last activity
      timer = window.setTimeout(() => { if (busy() || !document.hidden) refresh(); else schedule(); },
        busy() ? REFRESH_MS : IDLE_REFRESH_MS);
    }

    function render(items) {
      const rows = items.map(notebookRow).sort((a, b) => a.name.localeCompare(b.name));
      table.tBodies[0].replaceChildren(...rows.map((nb) => notebookRowElement(nb, editable)));
      table.hidden = rows.length === 0;
      empty.hidden = rows.length !== 0;
      relativeTimes();
    }

    async function refresh() {
      if (inFlight) return;
      inFlight = true;
      try {
        const data = await api("GET", base);
        render(data.items || []);
        if (box.dataset.stale) { say("", "ok"); delete box.dataset.stale; }
      } catch (e) {
        say(`The list could not be refreshed: ${e.message}`, "error");
        box.dataset.stale = "1";
      } finally {
        inFlight = false;
        schedule();
      }
    }
    table.refreshNotebooks = refresh; // for tests and the console

    const params = new URLSearchParams(window.location.search);
    const created = params.get("created");
    if (created) {
      say(`Notebook ${created} was created: its status below shows when it is ready to connect.`, "ok");
      params.delete("created");
      const query = params.toString();
      window.history.replaceState(null, "", window.location.pathname + (query ? `?${query}` : ""));
    }
    if (table.dataset.available === "true") {
      schedule();
      document.addEventListener("visibilitychange", () => { if (!document.hidden && busy()) refresh(); });
    }
    if (!editable) return;

    async function setStopped(name, stop, button) {
      button.disabled = true;
      const patch = { metadata: { annotations: { [STOP_ANNOTATION]: stop ? rfc3339(new Date()) : null } } };
      try {
        await api("PATCH", `${base}/${encodeURIComponent(name)}`, patch);
        say(stop ? `Stopping ${name}: its files stay on its workspace volume.` : `Starting ${name}.`, "ok");
      } catch (e) {
        say(e.message, "error");
      }
      await refresh();
    }

    /** "a", "a and b", "a, b and c" of code elements. */
    function listOf(names) {
      return names.flatMap((c, i) => [i === 0 ? "" : i === names.length - 1 ? " and " : ", ", h("code", {}, c)]);
    }

    function confirmDelete(name, workspace, claims) {
      if (!dialog || typeof dialog.showModal !== "function") {
        return Promise.resolve(window.confirm(`Delete notebook ${name}? Its volumes are kept.`));
      }
      dialog.querySelector('[data-fill="name"]').textContent = name;
      const data = claims.filter((c) => c !== workspace);
      const keep = workspace
        ? ["Its workspace volume ", h("code", {}, workspace), " is ", h("strong", {}, "kept"), ", with your files"]
        : ["It has no workspace volume"];
      if (data.length) keep.push(`; ${data.length > 1 ? "its data volumes" : "its data volume"} `, ...listOf(data), " ", data.length > 1 ? "are" : "is", " kept too");
      keep.push(workspace ? ": attach it to a new notebook to carry on." : ".");
      dialog.querySelector('[data-fill="keep"]').replaceChildren(...keep);
      return new Promise((resolve) => {
        dialog.addEventListener("close", () => resolve(dialog.returnValue === "delete"), { once: true });
        dialog.returnValue = "";
        dialog.showModal();
      });
    }

    table.addEventListener("click", async (event) => {
      const button = event.target.closest("button.stop, button.start, button.delete");
      if (!button) return;
      const tr = button.closest("tr");
      const name = tr.dataset.name;
      if (button.classList.contains("stop")) { await setStopped(name, true, button); return; }
      if (button.classList.contains("start")) { await setStopped(name, false, button); return; }
      const claims = (tr.dataset.claims || "").split(" ").filter(Boolean);
      if (!(await confirmDelete(name, tr.dataset.workspace, claims))) return;
      button.disabled = true;
      try {
        await api("DELETE", `${base}/${encodeURIComponent(name)}`);
        const kept = claims.length > 1 ? ` Its volumes ${claims.slice(0, -1).join(", ")} and ${claims[claims.length - 1]} were kept.`
          : claims.length ? ` Its volume ${claims[0]} was kept.` : "";
        say(`Notebook ${name} was deleted.${kept}`, "ok");
      } catch (e) {
        say(e.message, "error");
      }
      await refresh();
    });
  }

  /* -- new notebook form ------------------------------------------------------------------- */

  const NAME_RE = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
  const CPU_RE = /^(\d+(\.\d+)?|\.\d+|\d+m)$/;
  const QUANTITY_RE = /^(\d+(\.\d+)?)(Ki|Mi|Gi|Ti|Pi|k|K|M|G|T|P)?$/;
  const UNITS = { "": 1, k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30,
    Ti: 2 ** 40, Pi: 2 ** 50 };

  /** Bytes of a quantity like "1Gi", or NaN. */
  function bytes(text) {
    const m = QUANTITY_RE.exec(text);
    return m ? Number(m[1]) * UNITS[m[3] || ""] : NaN;
  }

  function notebookForm() {
    const form = document.getElementById("notebook-form");
    if (!form) return;
    const ns = form.dataset.namespace;
    const nameMax = Number(form.dataset.nameMax) || 52;
    const maxGpus = Number(form.dataset.maxGpus) || 0;
    const mount = form.dataset.workspaceMount || "/home/jovyan";
    const volumes = form.dataset.volumes === "true";
    const existing = new Set((form.dataset.existing || "").split(" ").filter(Boolean));
    const summary = document.getElementById("form-summary");
    const serverError = document.getElementById("form-error");
    const submit = document.getElementById("create-notebook");
    const nameInput = form.elements.name;
    const newName = document.getElementById("ws-new-name");
    const sizeInput = document.getElementById("ws-size");
    const existingSelect = document.getElementById("ws-existing");
    const dataTable = document.getElementById("data-volumes");
    const rowTemplate = document.getElementById("data-volume-row");
    const addButton = document.getElementById("add-data-volume");
    const nsUrl = `/api/v1/namespaces/${encodeURIComponent(ns)}`;

    const workspaceChoice = () => {
      const checked = form.querySelector('input[name="workspace"]:checked');
      return checked ? checked.value : "none";
    };

    function syncWorkspace() {
      const name = nameInput.value.trim();
      if (newName) newName.textContent = `${name || "<name>"}-workspace`;
      if (sizeInput) sizeInput.disabled = workspaceChoice() !== "new";
      if (existingSelect) existingSelect.disabled = workspaceChoice() !== "existing";
    }

    function addRow() {
      const row = rowTemplate.content.firstElementChild.cloneNode(true);
      const select = row.querySelector("select");
      const used = new Set(Array.from(dataTable.querySelectorAll("select")).map((s) => s.value));
      const free = Array.from(select.options).find((o) => !used.has(o.value));
      if (free) select.value = free.value;
      const input = row.querySelector("input");
      input.value = `${mount}/${select.value}`;
      input.dataset.auto = "1";
      select.addEventListener("change", () => { if (input.dataset.auto) input.value = `${mount}/${select.value}`; });
      input.addEventListener("input", () => { delete input.dataset.auto; });
      dataTable.tBodies[0].append(row);
      dataTable.hidden = false;
      select.focus();
    }

    nameInput.addEventListener("input", syncWorkspace);
    // a field's message goes away as soon as it is edited; the rest stay until the next submit
    form.addEventListener("input", (event) => {
      const el = event.target;
      if (el.getAttribute("aria-invalid") !== "true") return;
      el.removeAttribute("aria-invalid");
      const ids = (el.getAttribute("aria-describedby") || "").split(" ").filter((id) => id.endsWith("-error"));
      const inTable = el.closest("#data-volumes") ? ["data-volumes-error"] : [];
      ids.concat(inTable).forEach((id) => {
        const p = document.getElementById(id);
        if (p && !(inTable.length && form.querySelector('#data-volumes [aria-invalid="true"]'))) p.hidden = true;
      });
      if (!form.querySelector('[aria-invalid="true"]')) summary.hidden = true;
    });
    form.querySelectorAll('input[name="workspace"]').forEach((r) => r.addEventListener("change", syncWorkspace));
    if (addButton) addButton.addEventListener("click", addRow);
    if (dataTable) {
      dataTable.hidden = true;
      dataTable.addEventListener("click", (event) => {
        const button = event.target.closest("button.remove-volume");
        if (!button) return;
        button.closest("tr").remove();
        dataTable.hidden = dataTable.tBodies[0].rows.length === 0;
        if (addButton) addButton.focus();
      });
    }
    syncWorkspace();

    function clearErrors() {
      form.querySelectorAll(".field-error").forEach((p) => { p.hidden = true; p.textContent = ""; });
      form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
      summary.hidden = true;
      serverError.hidden = true;
    }

    /** Check the form; returns [errors: [element, message, errorId][], values]. */
    function validate() {
      const errors = [];
      const fail = (el, message, id) => errors.push([el, message, id]);
      const name = nameInput.value.trim();
      if (!name) fail(nameInput, "Enter a name for the notebook.", "nb-name-error");
      else if (name.length > nameMax) fail(nameInput, `The name is ${name.length} characters long; use at most ${nameMax}.`, "nb-name-error");
      else if (!NAME_RE.test(name)) {
        fail(nameInput, /[A-Z]/.test(name) ? "Use lower-case letters only in the name."
          : !/^[a-z]/.test(name) ? "The name must start with a letter."
            : "Use only lower-case letters, digits and dashes, and end with a letter or digit.", "nb-name-error");
      }
      const environment = form.elements.environment.value;
      if (!environment) fail(form.elements.environment, "Choose an environment.", "nb-env-error");
      const cpu = form.elements.cpu.value.trim();
      if (!CPU_RE.test(cpu)) fail(form.elements.cpu, "Enter CPU cores as a number (0.5, 2) or millicores (500m).", "nb-cpu-error");
      else if (parseFloat(cpu) <= 0) fail(form.elements.cpu, "Ask for more than 0 CPU.", "nb-cpu-error");
      const memory = form.elements.memory.value.trim();
      const memBytes = bytes(memory);
      if (Number.isNaN(memBytes)) fail(form.elements.memory, "Enter memory with a unit, e.g. 512Mi, 1Gi or 4Gi.", "nb-memory-error");
      else if (memBytes < 64 * 2 ** 20) fail(form.elements.memory, "JupyterLab needs at least 64Mi of memory; 1Gi is a good start.", "nb-memory-error");
      const gpuText = form.elements.gpus.value.trim();
      const gpus = Number(gpuText);
      if (!/^\d+$/.test(gpuText)) fail(form.elements.gpus, "Enter a whole number of GPUs (0 for none).", "nb-gpus-error");
      else if (gpus > maxGpus) {
        fail(form.elements.gpus, maxGpus ? `This server has ${maxGpus} GPU${maxGpus > 1 ? "s" : ""}: ask for at most ${maxGpus}.`
          : "This server has no GPUs: leave this at 0.", "nb-gpus-error");
      }
      const workspace = { kind: volumes ? workspaceChoice() : "none" };
      if (workspace.kind === "new") {
        workspace.claim = `${name}-workspace`;
        workspace.size = sizeInput.value.trim();
        const size = bytes(workspace.size);
        if (Number.isNaN(size) || size <= 0) fail(sizeInput, "Enter the volume's size with a unit, e.g. 5Gi.", "ws-size-error");
        else if (name && existing.has(workspace.claim)) {
          fail(sizeInput, `A volume called ${workspace.claim} already exists: choose it under “Existing volume” to reuse it.`, "ws-size-error");
        }
      } else if (workspace.kind === "existing") {
        workspace.claim = existingSelect.value;
        if (!workspace.claim) fail(existingSelect, "Choose the volume to use as workspace.", "ws-existing-error");
      }
      const data = [];
      const seenClaims = new Set(workspace.claim ? [workspace.claim] : []);
      const seenPaths = new Set([mount]);
      const seenLeaves = new Set();
      if (dataTable) {
        Array.from(dataTable.tBodies[0].rows).forEach((tr) => {
          const select = tr.querySelector("select");
          const input = tr.querySelector("input");
          const claim = select.value;
          const path = input.value.trim().replace(/\/+$/, "") || input.value.trim();
          if (seenClaims.has(claim)) fail(select, `${claim} is mounted twice: mount each volume once.`, "data-volumes-error");
          if (!path.startsWith("/")) fail(input, `The mount path of ${claim} must be absolute, e.g. ${mount}/data.`, "data-volumes-error");
          else if (path.split("/").includes("..")) fail(input, `The mount path of ${claim} must not contain “..”.`, "data-volumes-error");
          else if (seenPaths.has(path)) fail(input, `Two volumes are mounted at ${path}: give each its own path.`, "data-volumes-error");
          else {
            // data volumes show up in the workspace folder under the last part of their mount path
            const leaf = path.split("/").pop();
            if (!leaf || leaf.startsWith(".")) {
              fail(input, `The mount path of ${claim} must end in a folder name that does not start with a dot, e.g. ${mount}/${claim}.`, "data-volumes-error");
            } else if (seenLeaves.has(leaf)) {
              fail(input, `Two data volumes end in “${leaf}”: data volumes appear in your workspace under the last part of their path, so make it unique.`, "data-volumes-error");
            }
            seenLeaves.add(leaf);
          }
          seenClaims.add(claim);
          seenPaths.add(path);
          data.push({ claim, path });
        });
      }
      return [errors, { name, environment, cpu, memory, gpus, workspace, data }];
    }

    function show(errors) {
      const messages = new Map();
      errors.forEach(([el, message, id]) => {
        el.setAttribute("aria-invalid", "true");
        if (!messages.has(id)) messages.set(id, []);
        if (!messages.get(id).includes(message)) messages.get(id).push(message);
      });
      messages.forEach((list, id) => {
        const p = document.getElementById(id);
        if (p) { p.textContent = list.join(" "); p.hidden = false; }
      });
      summary.textContent = errors.length === 1 ? "Fix the field marked below to create the notebook."
        : `Fix the ${messages.size > 1 ? messages.size : errors.length} problems marked below to create the notebook.`;
      summary.hidden = false;
      errors[0][0].focus();
    }

    function manifest(v) {
      const requests = { cpu: v.cpu, memory: v.memory };
      const container = { name: v.name, image: v.environment, resources: { requests } };
      if (v.gpus > 0) container.resources.limits = { [GPU]: String(v.gpus) };
      const mounts = [];
      const vols = [];
      if (v.workspace.claim) {
        mounts.push({ name: "workspace", mountPath: mount });
        vols.push({ name: "workspace", persistentVolumeClaim: { claimName: v.workspace.claim } });
      }
      v.data.forEach((d, i) => {
        mounts.push({ name: `data-${i + 1}`, mountPath: d.path });
        vols.push({ name: `data-${i + 1}`, persistentVolumeClaim: { claimName: d.claim } });
      });
      if (mounts.length) container.volumeMounts = mounts;
      const podSpec = { containers: [container] };
      if (vols.length) podSpec.volumes = vols;
      return { apiVersion: "kubeflow.org/v1", kind: "Notebook", metadata: { name: v.name, labels: { app: v.name } },
        spec: { template: { spec: podSpec } } };
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors();
      const [errors, v] = validate();
      if (errors.length) { show(errors); return; }
      submit.disabled = true;
      submit.textContent = "Creating…";
      let createdClaim = null;
      try {
        if (v.workspace.kind === "new") {
          try {
            await api("POST", `${nsUrl}/persistentvolumeclaims`, {
              apiVersion: "v1", kind: "PersistentVolumeClaim", metadata: { name: v.workspace.claim },
              spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: v.workspace.size } } },
            });
            createdClaim = v.workspace.claim;
          } catch (e) {
            e.message = `The workspace volume ${v.workspace.claim} could not be created: ${e.message}`;
            throw e;
          }
        }
        await api("POST", `${nsUrl}/notebooks`, manifest(v));
        const target = new URL(form.dataset.list, window.location.href);
        target.searchParams.set("created", v.name);
        window.location.assign(target.pathname + target.search);
        return;
      } catch (e) {
        if (createdClaim) {
          await api("DELETE", `${nsUrl}/persistentvolumeclaims/${encodeURIComponent(createdClaim)}`).catch(() => {});
        }
        serverError.textContent = e.message;
        serverError.hidden = false;
        serverError.scrollIntoView({ block: "nearest" });
      }
      submit.disabled = false;
      submit.textContent = "Create notebook";
    });
  }

  /* kfp.Client prints links in the Kubeflow UI's form, /#/runs/details/<run id>: follow them. */
  function kubeflowLinks() {
    const match = /^#\/runs\/details\/([0-9a-f-]+)$/.exec(location.hash);
    if (match) location.replace(`/runs/${match[1]}`);
  }

  document.addEventListener("DOMContentLoaded", () => {
    kubeflowLinks();
    autosubmit();
    relativeTimes();
    members();
    notebooks();
    notebookForm();
  });
})();
