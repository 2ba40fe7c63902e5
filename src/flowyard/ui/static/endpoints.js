/* Endpoints pages: live request rate and latency (polling servingstats), and the deploy form. */
"use strict";

(function () {
  const api = (...args) => window.flowyard.api(...args);

  /** Poll the namespace's request totals; fill [data-stat] cells with the rate and mean latency since the last poll. */
  function liveStats(namespace, rowsOf) {
    let previous = null;
    async function poll() {
      let data;
      try {
        data = await api("GET", `/api/v1/namespaces/${encodeURIComponent(namespace)}/servingstats`);
      } catch (e) {
        return;
      }
      const now = {};
      for (const item of data.items) {
        const sum = { requests: 0, seconds: 0 };
        for (const rev of item.revisions) { sum.requests += rev.requests; sum.seconds += rev.seconds; }
        now[item.name] = sum;
      }
      if (previous) {
        const dt = Math.max(0.001, data.time - previous.time);
        for (const [name, cells] of rowsOf()) {
          const a = previous.totals[name], b = now[name];
          if (!a || !b) continue;
          const n = b.requests - a.requests;
          cells.rate.textContent = (n / dt).toFixed(1);
          if (n > 0) cells.latency.textContent = `${((b.seconds - a.seconds) / n * 1000).toFixed(1)} ms`;  // else: the last one
        }
      }
      previous = { time: data.time, totals: now };
    }
    poll();
    window.setInterval(() => { if (!document.hidden) poll(); }, 2000);
  }

  function listPage() {
    const table = document.getElementById("endpoints-table");
    if (!table) return;
    liveStats(table.dataset.namespace, () => Array.from(table.querySelectorAll("tbody tr")).map((tr) => [
      tr.dataset.name, { rate: tr.querySelector('[data-stat="rate"]'), latency: tr.querySelector('[data-stat="latency"]') },
    ]));
  }

  function detailPage() {
    const facts = document.getElementById("endpoint-facts");
    if (!facts) return;
    liveStats(facts.dataset.namespace, () => [[facts.dataset.name, {
      rate: document.getElementById("stat-rate"), latency: document.getElementById("stat-latency"),
    }]]);
  }

  function deployForm() {
    const form = document.getElementById("endpoint-form");
    if (!form) return;
    const source = document.getElementById("ep-source");
    const model = document.getElementById("ep-model");
    const ref = document.getElementById("ep-ref");
    const error = document.getElementById("endpoint-error");
    function syncSource() {
      const registry = source.value === "registry";
      document.getElementById("source-uri").hidden = registry;
      const box = document.getElementById("source-registry");
      if (box) box.hidden = !registry;
    }
    function syncRefs() {
      if (!model || !ref) return;
      const option = model.options[model.selectedIndex];
      ref.replaceChildren(...(option ? option.dataset.refs.split(" ").filter(Boolean) : []).map((r) => {
        const o = document.createElement("option");
        o.value = r; o.textContent = /^\d+$/.test(r) ? `version ${r}` : `alias ${r}`;
        return o;
      }));
    }
    source.addEventListener("change", syncSource);
    if (model) model.addEventListener("change", syncRefs);
    syncSource();
    syncRefs();
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.hidden = true;
      const name = document.getElementById("ep-name").value.trim();
      const registry = source.value === "registry";
      const modelBlock = registry
        ? { storageUri: `models:/${model.value}/${ref.value}` }
        : { modelFormat: { name: document.getElementById("ep-format").value },
            storageUri: document.getElementById("ep-uri").value.trim() };
      const annotations = {};
      const follow = document.getElementById("ep-follow");
      if (registry && follow && follow.checked) annotations["serving.flowyard.io/follow-alias"] = "true";
      const manifest = {
        apiVersion: "serving.kserve.io/v1beta1", kind: "InferenceService",
        metadata: { name, annotations },
        spec: { predictor: {
          minReplicas: Number(document.getElementById("ep-min").value),
          maxReplicas: Number(document.getElementById("ep-max").value),
          scaleMetric: "concurrency", scaleTarget: Number(document.getElementById("ep-target").value),
          model: modelBlock,
        } },
      };
      const button = document.getElementById("endpoint-submit");
      button.disabled = true;
      try {
        await api("POST", `/api/v1/namespaces/${encodeURIComponent(form.dataset.namespace)}/${form.dataset.plural}`, manifest);
        window.location.assign(form.dataset.detail.replace("NAME", encodeURIComponent(name)));
      } catch (e) {
        error.textContent = e.message;
        error.hidden = false;
        button.disabled = false;
      }
    });
  }

  document.addEventListener("DOMContentLoaded", () => { listPage(); detailPage(); deployForm(); });
})();
