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

  document.addEventListener("DOMContentLoaded", () => {
    autosubmit();
    relativeTimes();
    members();
  });
})();
