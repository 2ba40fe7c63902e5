/* Flowyard dashboard: the forms and lists of the Pipelines, Runs, Experiments and Recurring runs pages
   (upload, new version, create run / recurring run, row actions, compare and auto-refresh). */
"use strict";

(function () {
  const LIST_REFRESH_MS = 3000;
  const meta = (name) => (document.querySelector(`meta[name="${name}"]`) || {}).content || "";
  const api = (...args) => window.flowyard.api(...args);

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

  /** POST a compiled pipeline file as KFP's multipart `uploadfile`; the JSON answer, or Error(message). */
  async function uploadPackage(path, file, params) {
    const data = new FormData();
    data.append("uploadfile", file, file.name);
    const response = await fetch(`/apis/v2beta1/pipelines/${path}?${params}`, {
      method: "POST", body: data, credentials: "same-origin",
      headers: { Accept: "application/json", [meta("csrf-header") || "X-CSRF-Token"]: meta("csrf-token") },
    });
    let body = null;
    try { body = await response.json(); } catch (e) { /* not JSON */ }
    if (!response.ok) {
      const text = String((body && (body.message || body.detail)) || `The upload failed (HTTP ${response.status}).`);
      throw new Error(text.charAt(0).toUpperCase() + text.slice(1));
    }
    return body;
  }

  /* -- pipelines page: upload ----------------------------------------------------------------- */

  function uploadForm() {
    const form = document.getElementById("upload-form");
    if (!form) return;
    const box = document.getElementById("upload-message");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const file = form.elements.uploadfile.files[0];
      if (!file) { box.className = "alert error"; box.textContent = "Choose a compiled pipeline file (YAML) first."; box.hidden = false; return; }
      const button = document.getElementById("upload-submit");
      button.disabled = true;
      const params = new URLSearchParams({ namespace: form.dataset.namespace });
      const name = form.elements.name.value.trim();
      if (name) params.set("name", name);
      try {
        const body = await uploadPackage("upload", file, params);
        window.location.assign(`/pipelines/${encodeURIComponent(body.pipeline_id)}?ns=${encodeURIComponent(form.dataset.namespace)}`);
        return;
      } catch (e) {
        box.className = "alert error";
        box.textContent = e.message;
        box.hidden = false;
      }
      button.disabled = false;
    });
  }

  function coerce(type, text) {
    if (type === "NUMBER_INTEGER") {
      if (!/^-?\d+$/.test(text)) throw new Error("a whole number is expected");
      return parseInt(text, 10);
    }
    if (type === "NUMBER_DOUBLE") {
      const n = Number(text);
      if (text === "" || Number.isNaN(n)) throw new Error("a number is expected");
      return n;
    }
    if (type === "BOOLEAN") return text === "true";
    if (type === "LIST" || type === "STRUCT") {
      let v;
      try { v = JSON.parse(text); } catch (e) { throw new Error(`JSON ${type === "LIST" ? "list" : "object"} expected`); }
      if (type === "LIST" ? !Array.isArray(v) : (v === null || typeof v !== "object" || Array.isArray(v))) {
        throw new Error(type === "LIST" ? "a JSON list is expected, e.g. [1, 2]" : 'a JSON object is expected, e.g. {"k": 1}');
      }
      return v;
    }
    return text;
  }

  /** The run-type switch and schedule fields of the create-run form; read() is the KFP trigger part or null. */
  function scheduleFields(form) {
    const box = document.getElementById("recurring-fields");
    const none = { recurring: () => false, read: () => null };
    if (!box) return none;
    const el = (id) => document.getElementById(id);
    const submitLabel = el("create-run-submit").querySelector("span");
    const recurring = () => form.elements.run_type.value === "recurring";
    const sync = () => {
      const on = recurring();
      box.hidden = !on;
      submitLabel.textContent = on ? "Create recurring run" : "Start run";
      el("run-name-label").textContent = on ? "Recurring run name" : "Run name";
      const cron = el("trigger-type").value === "cron";
      el("cron-field").hidden = !cron;
      el("cron-help").hidden = !cron;
      el("interval-field").hidden = cron;
    };
    form.querySelectorAll('input[name="run_type"]').forEach((r) => r.addEventListener("change", () => {
      const input = form.elements.display_name;
      input.value = input.value.replace(/ (run|schedule)$/, recurring() ? " schedule" : " run");
      sync();
    }));
    el("trigger-type").addEventListener("change", sync);
    sync();
    const utc = (v) => (v ? `${v.length === 16 ? `${v}:00` : v}Z` : undefined);
    function read() {
      const problem = el("schedule-error");
      problem.hidden = true;
      const fail = (text) => { problem.textContent = text; problem.hidden = false; return null; };
      const window_ = { start_time: utc(el("start-time").value), end_time: utc(el("end-time").value) };
      if (window_.start_time && window_.end_time && window_.end_time <= window_.start_time) {
        return fail("The end must come after the start.");
      }
      const most = el("max-concurrency").value.trim();
      if (!/^\d+$/.test(most) || +most < 1 || +most > 10) return fail("Maximum concurrent runs: a whole number from 1 to 10.");
      let trigger;
      if (el("trigger-type").value === "cron") {
        const cron = el("cron").value.trim();
        if (!cron) return fail("Enter a cron expression, e.g. 0 0 * * * * (every hour).");
        trigger = { cron_schedule: { cron, ...window_ } };
      } else {
        const count = el("interval-count").value.trim();
        if (!/^\d+$/.test(count) || +count < 1) return fail("Every: a whole number of at least 1.");
        trigger = { periodic_schedule: { interval_second: String(+count * +el("interval-unit").value), ...window_ } };
      }
      return { trigger, max_concurrency: most, mode: el("recurring-enabled").checked ? "ENABLE" : "DISABLE", no_catchup: true };
    }
    return { recurring, read };
  }

  /* -- pipeline page: a new version ----------------------------------------------------------- */

  function versionForm() {
    const form = document.getElementById("version-form");
    if (!form) return;
    const box = document.getElementById("version-message");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      box.hidden = true;
      const file = form.elements.uploadfile.files[0];
      if (!file) { box.textContent = "Choose a compiled pipeline file (YAML) first."; box.hidden = false; return; }
      const button = document.getElementById("version-submit");
      button.disabled = true;
      const params = new URLSearchParams({ pipelineid: form.dataset.pipelineId });
      const name = form.elements.name.value.trim();
      if (name) params.set("name", name);
      try {
        const body = await uploadPackage("upload_version", file, params);
        const q = new URLSearchParams({ ns: form.dataset.namespace, version: body.pipeline_version_id });
        window.location.assign(`/pipelines/${encodeURIComponent(form.dataset.pipeline)}?${q}`);
        return;
      } catch (e) {
        box.textContent = e.message;
        box.hidden = false;
      }
      button.disabled = false;
    });
  }

  function pipelineActions() {
    const box = document.getElementById("pipeline-actions");
    if (!box) return;
    const error = document.getElementById("pipeline-error");
    const pid = encodeURIComponent(box.dataset.pipelineId);
    const ns = encodeURIComponent(box.dataset.namespace);
    const run = (button, question, call, then) => {
      if (!button) return;
      button.addEventListener("click", async () => {
        if (!window.confirm(question)) return;
        button.disabled = true;
        error.hidden = true;
        try { await call(); window.location.assign(then); return; } catch (e) { error.textContent = e.message; error.hidden = false; }
        button.disabled = false;
      });
    };
    run(document.getElementById("delete-version"), `Delete version ${box.dataset.version}? Runs made from it are kept.`,
      () => api("DELETE", `/apis/v2beta1/pipelines/${pid}/versions/${encodeURIComponent(box.dataset.versionId)}`),
      `/pipelines/${pid}?ns=${ns}`);
    run(document.getElementById("delete-pipeline"), `Delete pipeline ${box.dataset.name} and all its versions? Runs made from it are kept.`,
      () => api("DELETE", `/apis/v2beta1/pipelines/${pid}?cascade=true`), `/pipelines?ns=${ns}`);
  }

  /* -- experiments and recurring runs: create and row actions ----------------------------------- */

  /** Row buttons [data-action] of `table` call `act(action, row)`; errors show in `errorBox`. */
  function rowActions(table, errorBox, act) {
    if (!table) return;
    table.addEventListener("click", async (event) => {
      const button = event.target.closest("button[data-action]");
      if (!button) return;
      errorBox.hidden = true;
      button.disabled = true;
      try {
        if (await act(button.dataset.action, button.closest("tr")) !== false) { window.location.reload(); return; }
      } catch (e) {
        errorBox.textContent = e.message;
        errorBox.hidden = false;
      }
      button.disabled = false;
    });
  }

  function experimentsPage() {
    const form = document.getElementById("experiment-form");
    if (form) {
      const box = document.getElementById("experiment-message");
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        box.hidden = true;
        const name = form.elements.display_name.value.trim();
        if (!name) { box.textContent = "Give the experiment a name."; box.hidden = false; return; }
        try {
          await api("POST", "/apis/v2beta1/experiments", {
            display_name: name, description: form.elements.description.value.trim(), namespace: form.dataset.namespace });
          window.location.reload();
        } catch (e) { box.textContent = e.message; box.hidden = false; }
      });
    }
    rowActions(document.getElementById("experiments-table"), document.getElementById("experiments-error"), async (action, tr) => {
      const id = encodeURIComponent(tr.dataset.id);
      if (action === "delete") {
        if (!window.confirm(`Delete experiment ${tr.dataset.name} with all its runs and recurring runs?`)) return false;
        await api("DELETE", `/apis/v2beta1/experiments/${id}`);
      } else {
        await api("POST", `/apis/v2beta1/experiments/${id}:${action}`, {});
      }
      return true;
    });
  }

  function recurringPage() {
    const pick = document.getElementById("recurring-pipeline");
    const next = document.getElementById("recurring-next");
    if (pick && next) {
      pick.addEventListener("change", () => {
        next.href = `${next.dataset.base}${encodeURIComponent(pick.value)}${next.dataset.query}`;
      });
    }
    rowActions(document.getElementById("recurring-table"), document.getElementById("recurring-error"), async (action, tr) => {
      const id = encodeURIComponent(tr.dataset.id);
      if (action === "delete") {
        if (!window.confirm(`Delete recurring run ${tr.dataset.name}? The runs it started stay.`)) return false;
        await api("DELETE", `/apis/v2beta1/recurringruns/${id}`);
      } else {
        await api("POST", `/apis/v2beta1/recurringruns/${id}:${action}`, {});
      }
      return true;
    });
  }

  function createRunForm() {
    const form = document.getElementById("create-run");
    if (!form) return;
    const ns = form.dataset.namespace;
    const select = document.getElementById("run-experiment");
    const newField = document.getElementById("new-experiment-field");
    const error = document.getElementById("create-error");
    select.addEventListener("change", () => { newField.hidden = select.value !== "__new__"; });
    const schedule = scheduleFields(form);
    form.addEventListener("input", (event) => {
      const f = event.target.closest(".field.param");
      if (!f) return;
      f.querySelector(".field-error").hidden = true;
      event.target.removeAttribute("aria-invalid");
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.hidden = true;
      const parameters = {};
      let bad = false;
      form.querySelectorAll(".field.param").forEach((f) => {
        const input = f.querySelector("input, select");
        const msg = f.querySelector(".field-error");
        msg.hidden = true;
        input.removeAttribute("aria-invalid");
        const text = input.value.trim();
        if (text === "") {
          if (input.required) { msg.textContent = "Required."; msg.hidden = false; input.setAttribute("aria-invalid", "true"); bad = true; }
          return;
        }
        try { parameters[f.dataset.param] = coerce(f.dataset.type, text); } catch (e) {
          msg.textContent = `${e.message.charAt(0).toUpperCase()}${e.message.slice(1)}.`; msg.hidden = false; input.setAttribute("aria-invalid", "true"); bad = true;
        }
      });
      const name = form.elements.display_name.value.trim();
      if (!name) { error.textContent = "Give the run a name."; error.hidden = false; return; }
      const trigger = schedule.recurring() ? schedule.read() : null;
      if (bad || (schedule.recurring() && !trigger)) return;
      const button = document.getElementById("create-run-submit");
      button.disabled = true;
      try {
        let experimentId = select.value;
        if (experimentId === "__new__" || experimentId === "") {
          const expName = experimentId === "" ? "Default" : form.elements.new_experiment.value.trim();
          if (!expName) throw new Error("Enter a name for the new experiment.");
          experimentId = (await api("POST", "/apis/v2beta1/experiments", { display_name: expName, namespace: ns })).experiment_id;
        }
        const source = {
          display_name: name, experiment_id: experimentId,
          pipeline_version_reference: { pipeline_id: form.dataset.pipelineId, pipeline_version_id: form.dataset.versionId },
          runtime_config: { parameters },
        };
        if (trigger) {
          await api("POST", "/apis/v2beta1/recurringruns", { ...source, ...trigger });
          window.location.assign(`/recurringruns?ns=${encodeURIComponent(ns)}`);
          return;
        }
        const run = await api("POST", "/apis/v2beta1/runs", source);
        window.location.assign(`/runs/${encodeURIComponent(run.run_id)}?ns=${encodeURIComponent(ns)}`);
        return;
      } catch (e) {
        error.textContent = e.message;
        error.hidden = false;
      }
      button.disabled = false;
    });
  }

  /* -- runs list: compare and auto-refresh ------------------------------------------------------ */

  function runsList() {
    const form = document.getElementById("compare-form");
    if (!form) return;
    const sync = () => {
      const n = form.querySelectorAll('input[name="run"]:checked').length;
      const button = document.getElementById("compare-runs");
      if (button) button.disabled = n < 2 || n > 6;
      const hint = document.getElementById("compare-hint");
      if (hint) hint.textContent = n ? `${n} selected` : "Select 2 to 6 runs to compare them.";
    };
    form.addEventListener("change", sync);
    sync();
    const refresh = async () => {
      const card = document.getElementById("runs-card");
      if (!card || card.dataset.active !== "true" || document.hidden) { setTimeout(refresh, LIST_REFRESH_MS); return; }
      try {
        const response = await fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } });
        if (response.ok) {
          const doc = new DOMParser().parseFromString(await response.text(), "text/html");
          const fresh = doc.getElementById("runs-card");
          if (fresh) {
            const checked = new Set([...card.querySelectorAll('input[name="run"]:checked')].map((i) => i.value));
            card.replaceChildren(...[...fresh.childNodes].map((n) => document.importNode(n, true)));
            card.dataset.active = fresh.dataset.active;
            card.querySelectorAll('input[name="run"]').forEach((i) => { i.checked = checked.has(i.value); });
            const count = doc.getElementById("runs-count");
            if (count) document.getElementById("runs-count").textContent = count.textContent;
            relative(card);
            sync();
          }
        }
      } catch (e) { /* try again later */ }
      setTimeout(refresh, LIST_REFRESH_MS);
    };
    setTimeout(refresh, LIST_REFRESH_MS);
  }

  document.addEventListener("DOMContentLoaded", () => {
    uploadForm();
    versionForm();
    pipelineActions();
    createRunForm();
    experimentsPage();
    recurringPage();
    runsList();
  });
})();
