// The reconcile status page: reads /api/* (controller/statuspage.py) and follows /api/stream.
// Read-only. Everything shown is set with textContent (never parsed as HTML). A token, when the
// server needs one, comes from the address's fragment (#token=..., never sent to the server) and
// is sent as "Authorization: Bearer"; live updates are read with fetch() for that reason
// (EventSource cannot send a header), parsed as server-sent events.
"use strict";
(() => {
  const TOKEN_KEY = "reconcile.ui-token";
  const TYPES = ["Applied", "Created", "Started", "Restarted", "Recreated", "Died", "HealthChanged", "BackOff",
    "GaveUp", "Failed", "Removed", "Deleted", "JobFailed", "Completed", "RolledBack", "StormDetected",
    "EngineUnavailable", "EngineRestored", "EngineDegraded", "ControllerStarted", "ControllerStopped"];
  const $ = (sel) => document.querySelector(sel);
  const state = { services: [], selected: null, tl: null, next: null, lastId: 0, refresh: null, retry: 1000 };

  function takeToken() {
    const m = /^#token=(.+)$/.exec(location.hash);
    if (m) {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
      history.replaceState(null, "", location.pathname + location.search);
    }
  }

  function headers(extra) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    return Object.assign(token ? { Authorization: "Bearer " + token } : {}, extra || {});
  }

  function notice(text) {
    const n = $("#notice");
    n.textContent = text || "";
    n.hidden = !text;
  }

  async function api(path) {
    const resp = await fetch(path, { headers: headers(), cache: "no-store" });
    if (resp.status === 401) {
      notice("This page needs its token: open it as " + location.origin + "/#token=<the contents of the file " +
        "given to reconcile run --ui-token-file>.");
      throw new Error("unauthorized");
    }
    if (!resp.ok) throw new Error(path + ": HTTP " + resp.status);
    return resp.json();
  }

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function ago(ts) {
    const s = Math.max(0, Date.now() / 1000 - ts);
    if (s < 60) return Math.round(s) + " s ago";
    if (s < 3600) return Math.round(s / 60) + " min ago";
    if (s < 86400) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " d ago";
  }

  function when(ts) { return new Date(ts * 1000).toLocaleString(); }

  // -- services -------------------------------------------------------------------------
  async function loadServices() {
    const data = await api("/api/services");
    state.services = data.services;
    if (!state.lastId) state.lastId = data.lastEventId;
    renderServices();
  }

  function renderServices() {
    const body = $("#services tbody");
    const rows = state.services.map((s) => {
      const tr = el("tr", { "data-service": s.name, "data-state": s.state });
      if (s.name === state.selected) tr.classList.add("selected");
      tr.append(el("td", { "data-field": "name" }, s.name), el("td", {}, s.kind));
      const st = el("td", { "data-field": "state" });
      st.append(el("span", { class: "state " + s.state }, s.state));
      tr.append(st, el("td", { "data-field": "health" }, s.health || "—"),
        el("td", { class: "num", "data-field": "restarts" }, s.restartCount));
      const ev = s.lastEvent;
      const last = el("td", { "data-field": "last-event", title: ev ? when(ev.ts) : "" },
        ev ? ev.type + " · " + ago(ev.ts) : "—");
      tr.append(last, el("td", { class: "reason", "data-field": "reason" }, (ev && ev.reason) || s.message || ""));
      tr.addEventListener("click", () => select(s.name));
      return tr;
    });
    body.replaceChildren(...rows);
    const counts = {};
    for (const s of state.services) counts[s.state] = (counts[s.state] || 0) + 1;
    $("#summary").textContent = state.services.length + " services · " +
      Object.entries(counts).map(([k, v]) => v + " " + k).join(" · ");
    const sel = $("#f-service");
    const chosen = sel.value;
    const opts = [el("option", { value: "" }, "all"), ...state.services.map((s) => el("option", { value: s.name }, s.name))];
    sel.replaceChildren(...opts);
    sel.value = chosen;
  }

  // -- one service --------------------------------------------------------------------------
  async function select(name) {
    state.selected = name;
    for (const tr of document.querySelectorAll("#services tbody tr")) {
      tr.classList.toggle("selected", tr.dataset.service === name);
    }
    await loadDetail();
  }

  async function loadDetail() {
    if (!state.selected) return;
    const d = await api("/api/services/" + encodeURIComponent(state.selected) + "?hours=" + $("#f-hours").value);
    $("#detail").hidden = false;
    $("#detail-name").textContent = d.service.name;
    $("#detail-message").textContent = d.service.message || "";
    $("#detail-spec").textContent = JSON.stringify(d.spec, null, 2);
    renderTimeline(d.timeline);
  }

  function renderTimeline(tl) {
    state.tl = tl;
    const span = tl.end - tl.start;
    const pct = (t) => (100 * (t - tl.start) / span).toFixed(4) + "%";
    const parts = tl.bands.map((b) => {
      const div = el("div", { class: "band band-" + b.state, "data-state": b.state,
        title: b.state + ": " + when(b.start) + " – " + when(b.end) });
      div.style.left = pct(b.start);
      div.style.width = (100 * (b.end - b.start) / span).toFixed(4) + "%";
      return div;
    });
    for (const r of tl.restarts) {
      const m = el("div", { class: "restart-mark", title: "restart at " + when(r) });
      m.style.left = pct(r);
      parts.push(m);
    }
    $("#timeline").replaceChildren(...parts);
    const hours = span / 3600;
    $("#axis").replaceChildren(...[4, 3, 2, 1].map((i) => el("span", {}, "−" + (hours * i / 4) + " h")),
      el("span", {}, "now"));
  }

  // -- history ------------------------------------------------------------------------------
  function filters() {
    const q = new URLSearchParams();
    for (const id of ["service", "type", "since"]) {
      const v = $("#f-" + id).value;
      if (v) q.set(id, v);
    }
    return q;
  }

  function eventRow(e) {
    const tr = el("tr", { class: "event", "data-type": e.type, "data-service": e.service, "data-id": e.id });
    tr.append(el("td", { title: when(e.ts) }, when(e.ts)), el("td", {}, e.service || "(host)"), el("td", {}, e.type),
      el("td", { class: "muted" }, e.actor), el("td", {}, e.reason), el("td", { class: "muted" }, e.message));
    return tr;
  }

  async function loadEvents(more) {
    const q = filters();
    q.set("limit", "100");
    if (more && state.next) q.set("before", state.next);
    const data = await api("/api/events?" + q.toString());
    const rows = data.events.map(eventRow);
    const body = $("#events tbody");
    if (more) body.append(...rows); else body.replaceChildren(...rows);
    state.next = data.next;
    $("#older").hidden = !data.next;
  }

  function matches(e) {
    const service = $("#f-service").value;
    const type = $("#f-type").value;
    return (!service || e.service === service) && (!type || e.type === type);
  }

  // -- live updates -------------------------------------------------------------------------
  function onAudit(e) {
    state.lastId = Math.max(state.lastId, e.id);
    if (matches(e) && !document.querySelector('#events tr[data-id="' + e.id + '"]')) {  // once, also after a reload of the list
      const tr = eventRow(e);
      tr.classList.add("fresh");
      $("#events tbody").prepend(tr);
    }
    if (state.tl && e.service === state.selected && e.type === "Restarted") {
      // mark it at once; the detail reloaded below redraws the bands from the server
      const tl = state.tl;
      tl.restarts.push(e.ts);
      if (e.ts > tl.end && tl.bands.length) {
        tl.bands[tl.bands.length - 1].end = e.ts;
        tl.end = e.ts;
      }
      renderTimeline(tl);
    }
    clearTimeout(state.refresh);
    state.refresh = setTimeout(refresh, 100);
  }

  function refresh() {
    return Promise.all([loadServices(), loadDetail()]).catch(() => {});
  }

  function live(on, text) {
    const l = $("#live");
    l.className = "live " + (on ? "on" : "off");
    l.textContent = text;
  }

  async function follow() {
    try {
      const resp = await fetch("/api/stream", { headers: headers({ "Last-Event-ID": String(state.lastId) }),
        cache: "no-store" });
      if (!resp.ok || !resp.body) throw new Error("HTTP " + resp.status);
      live(true, "live");
      state.retry = 1000;
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          frame(buf.slice(0, cut));
          buf = buf.slice(cut + 2);
        }
      }
    } catch (err) {
      // fall through: reconnect below
    }
    live(false, "reconnecting…");
    setTimeout(follow, state.retry);
    state.retry = Math.min(state.retry * 2, 10000);
  }

  function frame(text) {
    let type = "message";
    let data = "";
    for (const line of text.split("\n")) {
      if (line.startsWith("event: ")) type = line.slice(7);
      else if (line.startsWith("data: ")) data += line.slice(6);
    }
    if (type === "audit") onAudit(JSON.parse(data));
  }

  async function start() {
    takeToken();
    $("#f-type").append(...TYPES.map((t) => el("option", { value: t }, t)));
    for (const id of ["#f-service", "#f-type", "#f-since"]) $(id).addEventListener("change", () => loadEvents(false));
    $("#f-hours").addEventListener("change", () => { loadDetail().catch(() => {}); });
    $("#older").addEventListener("click", (ev) => { ev.preventDefault(); loadEvents(true); });
    try {
      await loadServices();
      await loadEvents(false);
      if (state.services.length) await select(state.services[0].name);
    } catch (err) {
      live(false, "offline");
      return;
    }
    setInterval(refresh, 30000);
    follow();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
