// The llmgate admin console: a single page over /admin/api/. No framework,
// no external requests; the admin token lives in sessionStorage (this tab).
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const page = $("#page");
const COLORS = ["#2f6fec", "#e8833a", "#2e9d6a", "#b44bc4", "#c9a227", "#3bb3c3", "#d6456b", "#7d7d85"];

function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
const fmt = (n) => (n == null ? "–" : Number(n).toLocaleString());
const ms = (n) => (n == null ? "–" : n === Infinity || n === "inf" ? "> 120 s" : n >= 1000 ? `${(n / 1000).toFixed(n >= 10000 ? 0 : 1)} s` : `${Math.round(n)} ms`);
const when = (t) => new Date(t).toLocaleString();

function token() { return sessionStorage.getItem("llmgate-admin-token"); }

async function api(path, options = {}) {
  const response = await fetch(`/admin/api/${path}`, {
    ...options,
    headers: { authorization: `Bearer ${token()}`, ...(options.headers || {}) },
  });
  if (response.status === 401) { logout(); throw new Error("signed out"); }
  const body = await response.json();
  if (!response.ok) throw new Error(body?.error?.message || response.statusText);
  return body;
}

function showLogin(message = "") {
  $("#login").hidden = false;
  $("#nav").hidden = true;
  $("#logout").hidden = true;
  page.innerHTML = "";
  $("#login-error").textContent = message;
}

function logout() {
  sessionStorage.removeItem("llmgate-admin-token");
  showLogin();
}

$("#login").addEventListener("submit", async (event) => {
  event.preventDefault();
  sessionStorage.setItem("llmgate-admin-token", $("#token").value);
  const ok = await fetch("/admin/api/status", { headers: { authorization: `Bearer ${token()}` } });
  if (!ok.ok) {
    sessionStorage.removeItem("llmgate-admin-token");
    showLogin("That token was refused.");
    return;
  }
  $("#token").value = "";
  $("#login-error").textContent = "";
  start();
});
$("#logout").addEventListener("click", logout);

const pages = { dashboard, logs, providers, plugins, config };

function start() {
  $("#login").hidden = true;
  $("#nav").hidden = false;
  $("#logout").hidden = false;
  route();
}

async function route() {
  if (!token()) return showLogin();
  const name = (location.hash.slice(1).split("?")[0]) || "dashboard";
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === name));
  page.innerHTML = `<p class="muted">Loading…</p>`;
  try {
    await (pages[name] || dashboard)();
  } catch (e) {
    if (token()) page.innerHTML = `<p class="error">${esc(e.message)}</p>`;
  }
}
window.addEventListener("hashchange", route);

// ---- Dashboard --------------------------------------------------------

const RANGES = { "15m": 15 * 60e3, "1h": 3600e3, "24h": 24 * 3600e3, "7d": 7 * 24 * 3600e3, "30d": 30 * 24 * 3600e3 };

function barChart(buckets, series, field, title) {
  const w = 600, h = 160, pad = 24;
  const totals = buckets.map((_, i) => series.reduce((sum, s) => sum + (s[field][i] || 0), 0));
  const max = Math.max(1, ...totals);
  const bw = (w - pad) / Math.max(1, buckets.length);
  let bars = "";
  buckets.forEach((t, i) => {
    let y = h - 14;
    series.forEach((s, k) => {
      const v = s[field][i] || 0;
      if (!v) return;
      const bh = (v / max) * (h - 30);
      y -= bh;
      bars += `<rect x="${pad + i * bw + 1}" y="${y}" width="${Math.max(1, bw - 2)}" height="${bh}" fill="${COLORS[k % COLORS.length]}"><title>${esc(s.name)}: ${v} at ${esc(when(t))}</title></rect>`;
    });
  });
  const first = buckets.length ? new Date(buckets[0]).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
  const last = buckets.length ? new Date(buckets[buckets.length - 1]).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
  return `<div class="chart" data-chart="${field}"><div class="legend"><strong>${esc(title)}</strong>${series.map((s, k) => `<span><i style="background:${COLORS[k % COLORS.length]}"></i>${esc(s.name || "(none)")}</span>`).join("")}</div>
    <svg viewBox="0 0 ${w} ${h}" preserveAspectRatio="none" role="img" aria-label="${esc(title)}">
      <text x="0" y="12" font-size="10" fill="#6b6b70">${fmt(max)}</text>
      <line x1="${pad}" y1="${h - 14}" x2="${w}" y2="${h - 14}" stroke="#e2e2e6"/>
      ${bars}
      <text x="${pad}" y="${h - 2}" font-size="10" fill="#6b6b70">${esc(first)}</text>
      <text x="${w}" y="${h - 2}" font-size="10" fill="#6b6b70" text-anchor="end">${esc(last)}</text>
    </svg></div>`;
}

async function dashboard() {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const range = RANGES[params.get("range")] ? params.get("range") : "1h";
  const by = params.get("by") === "provider" ? "provider" : "model";
  const to = Date.now();
  const data = await api(`timeseries?from=${to - RANGES[range]}&to=${to}&group_by=${by}`);
  const t = data.total;
  const tokens = data.series.map((s) => ({ ...s, tokens: s.input_tokens.map((v, i) => v + s.output_tokens[i]) }));
  page.innerHTML = `
    <h1>Dashboard</h1>
    <div class="toolbar">
      <label>Range <select id="range">${Object.keys(RANGES).map((r) => `<option ${r === range ? "selected" : ""}>${r}</option>`).join("")}</select></label>
      <label>Split by <select id="by"><option value="model">model</option><option value="provider" ${by === "provider" ? "selected" : ""}>provider</option></select></label>
    </div>
    <div class="cards">
      <div class="card"><div class="label">Requests</div><div class="value" id="total-requests">${fmt(t.requests)}</div></div>
      <div class="card"><div class="label">Errors</div><div class="value" id="total-errors">${fmt(t.errors)}</div></div>
      <div class="card"><div class="label">Input tokens</div><div class="value">${fmt(t.input_tokens)}</div></div>
      <div class="card"><div class="label">Output tokens</div><div class="value">${fmt(t.output_tokens)}</div></div>
      <div class="card"><div class="label">Latency p50 / p99</div><div class="value">${ms(t.latency_ms.p50)} / ${ms(t.latency_ms.p99)}</div></div>
      <div class="card"><div class="label">TTFT p50 / p99</div><div class="value">${ms(t.ttft_ms.p50)} / ${ms(t.ttft_ms.p99)}</div></div>
    </div>
    <h2>Over time</h2>
    ${barChart(data.buckets, data.series, "requests", "Requests")}
    ${barChart(data.buckets, data.series, "errors", "Errors")}
    ${barChart(data.buckets, tokens, "tokens", "Tokens (in + out)")}
    <h2>By ${by}</h2>
    <div class="table-wrap"><table id="groups"><thead><tr><th>${by}</th><th class="num">Requests</th><th class="num">Errors</th><th class="num">Latency p50</th><th class="num">p90</th><th class="num">p99</th><th class="num hide-narrow">TTFT p50</th><th class="num hide-narrow">p99</th><th class="num">Tokens in</th><th class="num">out</th></tr></thead>
    <tbody>${data.groups.map((g) => `<tr><td>${esc(g.name || "(none)")}</td><td class="num">${fmt(g.requests)}</td><td class="num">${fmt(g.errors)}</td><td class="num">${ms(g.latency_ms.p50)}</td><td class="num">${ms(g.latency_ms.p90)}</td><td class="num">${ms(g.latency_ms.p99)}</td><td class="num hide-narrow">${ms(g.ttft_ms.p50)}</td><td class="num hide-narrow">${ms(g.ttft_ms.p99)}</td><td class="num">${fmt(g.input_tokens)}</td><td class="num">${fmt(g.output_tokens)}</td></tr>`).join("") || `<tr><td colspan="10" class="muted">No requests in this range.</td></tr>`}</tbody></table></div>
    <p class="muted">Percentiles are read from per-minute histograms: each is the upper bound of its bucket.</p>`;
  const go = () => (location.hash = `dashboard?range=${$("#range").value}&by=${$("#by").value}`);
  $("#range").addEventListener("change", go);
  $("#by").addEventListener("change", go);
}

// ---- Logs --------------------------------------------------------------

function statusPill(status) {
  const kind = status < 400 ? "ok" : status === 499 ? "warn" : "bad";
  return `<span class="pill ${kind}">${status}</span>`;
}

async function logs() {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const query = new URLSearchParams({ limit: "50" });
  for (const key of ["model", "provider", "status", "cursor"]) if (params.get(key)) query.set(key, params.get(key));
  const data = await api(`requests?${query}`);
  page.innerHTML = `
    <h1>Logs</h1>
    <form class="toolbar" id="filters">
      <input name="model" placeholder="model" value="${esc(params.get("model"))}" aria-label="model">
      <input name="provider" placeholder="provider" value="${esc(params.get("provider"))}" aria-label="provider">
      <select name="status" aria-label="status">${["", "ok", "error", "4xx", "5xx", "499"].map((s) => `<option value="${s}" ${s === (params.get("status") || "") ? "selected" : ""}>${s || "any status"}</option>`).join("")}</select>
      <button class="primary" type="submit">Filter</button>
    </form>
    <div class="table-wrap"><table id="log-table"><thead><tr><th>Time</th><th>Model</th><th>Provider</th><th>Status</th><th class="num">Latency</th><th class="num hide-narrow">TTFT</th><th class="num">Tokens in/out</th><th class="hide-narrow">Key</th></tr></thead>
    <tbody>${data.items.map((r) => `<tr class="clickable" data-id="${esc(r.id)}"><td>${esc(when(r.time_ms))}</td><td>${esc(r.model)}</td><td>${esc(r.provider || "–")}</td><td>${statusPill(r.status)}${r.error_kind ? ` <span class="muted">${esc(r.error_kind)}</span>` : ""}</td><td class="num">${ms(r.latency_ms)}</td><td class="num hide-narrow">${r.stream ? ms(r.ttft_ms) : "–"}</td><td class="num">${fmt(r.input_tokens)} / ${fmt(r.output_tokens)}</td><td class="hide-narrow">${esc(r.key_id)}</td></tr>`).join("") || `<tr><td colspan="8" class="muted">No requests match.</td></tr>`}</tbody></table></div>
    <div class="toolbar" style="margin-top:.75rem">${data.next_cursor ? `<button id="older">Older →</button>` : `<span class="muted">End of the log.</span>`}</div>
    <div id="detail"></div>`;
  $("#filters").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const next = new URLSearchParams();
    for (const [k, v] of form) if (v) next.set(k, v);
    location.hash = `logs?${next}`;
  });
  if (data.next_cursor) $("#older").addEventListener("click", () => { params.set("cursor", data.next_cursor); location.hash = `logs?${params}`; });
  page.querySelectorAll("tr.clickable").forEach((row) => row.addEventListener("click", () => showRequest(row.dataset.id)));
}

async function showRequest(id) {
  const r = await api(`requests/${encodeURIComponent(id)}`);
  const body = (b, title) => (b ? `<h2>${title}${b.truncated ? " (cut)" : ""}</h2><pre>${esc(b.text)}</pre>` : "");
  $("#detail").innerHTML = `<div class="detail" id="request-detail">
    <h2>Request ${esc(r.id)}</h2>
    <dl>
      <dt>Time</dt><dd>${esc(when(r.time_ms))}</dd>
      <dt>Client</dt><dd>${esc(r.ingress)} dialect, ${esc(r.endpoint)}, key ${esc(r.key_id || "(open)")}</dd>
      <dt>Model</dt><dd>${esc(r.model)} → ${esc(r.provider || "–")} / ${esc(r.upstream_model || "–")}</dd>
      <dt>Status</dt><dd>${statusPill(r.status)} ${esc(r.error_kind || "")} ${esc(r.error || "")}</dd>
      <dt>Timing</dt><dd>${ms(r.latency_ms)} total${r.stream ? `, first byte after ${ms(r.ttft_ms)} (streamed)` : ""}</dd>
      <dt>Usage</dt><dd>${fmt(r.input_tokens)} in (${fmt(r.cached_tokens)} cached), ${fmt(r.output_tokens)} out (${fmt(r.reasoning_tokens)} reasoning)</dd>
    </dl>
    <h2>Attempts</h2>
    <div class="table-wrap"><table id="attempts"><thead><tr><th>#</th><th>Provider</th><th>Upstream model</th><th>Key</th><th>Status</th><th>Outcome</th><th class="num">Duration</th></tr></thead>
    <tbody>${(r.attempts || []).map((a, i) => `<tr><td>${i + 1}</td><td>${esc(a.provider)}</td><td>${esc(a.model)}</td><td>${a.key_index ?? "–"}</td><td>${a.status ?? "–"}</td><td><span class="pill ${a.outcome === "ok" ? "ok" : "bad"}">${esc(a.outcome)}</span> <span class="muted">${esc(a.error || "")}</span></td><td class="num">${ms(a.duration_ms)}</td></tr>`).join("") || `<tr><td colspan="7" class="muted">No upstream attempt.</td></tr>`}</tbody></table></div>
    ${r.notes?.length ? `<h2>Translation notes</h2><ul id="notes">${r.notes.map((n) => `<li>${esc(n)}</li>`).join("")}</ul>` : ""}
    ${body(r.request_body, "Request body")}${body(r.response_body, "Response body")}
  </div>`;
  $("#request-detail").scrollIntoView({ behavior: "smooth", block: "start" });
}

// ---- Providers ---------------------------------------------------------

function left(msValue) {
  return msValue == null ? "" : `${Math.ceil(msValue / 1000)} s left`;
}

async function providers() {
  const [b, health] = await Promise.all([api("backends"), api("health")]);
  const checks = health.providers || {};
  page.innerHTML = `
    <h1>Providers and models</h1>
    <h2>Providers</h2>
    <div class="table-wrap"><table id="provider-table"><thead><tr><th>Provider</th><th>Adapter</th><th class="hide-narrow">Base URL</th><th>State</th><th>Keys</th><th>Last check</th><th></th></tr></thead>
    <tbody>${b.providers.map((p) => {
      const check = checks[p.name];
      return `<tr><td>${esc(p.name)}</td><td>${esc(p.adapter)} <span class="muted">(${esc(p.dialect)})</span></td><td class="hide-narrow">${esc(p.base_url)}</td>
      <td>${p.enabled ? (p.all_keys_cooling ? `<span class="pill warn">all keys cooling</span>` : `<span class="pill ok">enabled</span>`) : `<span class="pill off">disabled</span>`}</td>
      <td>${p.keys.map((k) => k.in_rotation ? `<span class="pill ok">#${k.index}</span>` : `<span class="pill warn">#${k.index} ${left(k.cooldown_ms_left)}</span>`).join(" ") || `<span class="muted">none</span>`}</td>
      <td>${check ? `${check.ok ? `<span class="pill ok">ok</span>` : `<span class="pill bad">failed</span>`} <span class="muted">${esc(when(check.checked_at_ms))}</span>` : `<span class="muted">never</span>`}</td>
      <td><button data-check="${esc(p.name)}">Check now</button></td></tr>`;
    }).join("")}</tbody></table></div>
    ${b.models.map((m) => `
      <h2>${esc(m.name)} ${m.enabled ? "" : `<span class="pill off">disabled</span>`} <span class="muted">policy ${esc(m.policy)}${m.aliases.length ? `, aliases ${esc(m.aliases.join(", "))}` : ""}${m.fallback.length ? `, falls back to ${esc(m.fallback.join(", "))}` : ""}</span></h2>
      <div class="table-wrap"><table class="routes" data-model="${esc(m.name)}"><thead><tr><th>Provider</th><th>Upstream model</th><th class="num">Weight</th><th class="num">Priority</th><th>Capabilities</th><th>Health</th><th class="num">In flight</th><th class="num hide-narrow">Latency EWMA</th><th class="num hide-narrow">TTFT EWMA</th><th class="num">Error rate</th></tr></thead>
      <tbody>${m.routes.map((r) => `<tr><td>${esc(r.provider)}</td><td>${esc(r.upstream_model)}</td><td class="num">${r.weight}</td><td class="num">${r.priority}</td>
        <td>${r.capabilities ? esc(r.capabilities.join(", ") || "none") : "all"}${r.max_context ? ` <span class="muted">≤ ${fmt(r.max_context)} tokens</span>` : ""}</td>
        <td>${!r.enabled ? `<span class="pill off">disabled</span>` : r.healthy ? `<span class="pill ok">healthy</span>` : `<span class="pill bad cooldown">cooling down ${left(r.cooldown_ms_left)}</span>`}</td>
        <td class="num">${r.in_flight}</td><td class="num hide-narrow">${ms(r.latency_ewma_ms || null)}</td><td class="num hide-narrow">${ms(r.ttft_ewma_ms || null)}</td><td class="num">${(r.error_rate * 100).toFixed(0)}%</td></tr>`).join("")}</tbody></table></div>`).join("")}`;
  page.querySelectorAll("button[data-check]").forEach((button) => button.addEventListener("click", async () => {
    button.disabled = true;
    button.textContent = "Checking…";
    try { await api(`providers/${encodeURIComponent(button.dataset.check)}/check`, { method: "POST" }); } catch (e) { alert(e.message); }
    route();
  }));
}

// ---- Plugins -----------------------------------------------------------

async function plugins() {
  const data = await api("plugins");
  page.innerHTML = `
    <h1>Plugins</h1>
    <p class="muted">${data.dir ? `Plugin directory: <code>${esc(data.dir)}</code> (watched).` : "No plugin directory configured (<code>plugins.dir</code>)."}</p>
    <div class="table-wrap"><table id="plugin-table"><thead><tr><th>Name</th><th>World</th><th>Origin</th><th class="num">Size</th><th class="num">Calls</th><th class="num">Traps</th><th class="num hide-narrow">Time in calls</th><th class="hide-narrow">About</th></tr></thead>
    <tbody>${data.plugins.map((p) => `<tr><td>${esc(p.name)}</td><td>${esc(p.world)}${p.embeddings ? " + embeddings" : ""}</td><td>${esc(p.origin)}</td><td class="num">${fmt(Math.round(p.size_bytes / 1024))} KB</td><td class="num">${fmt(p.calls)}</td><td class="num">${p.traps ? `<span class="pill bad">${fmt(p.traps)}</span>` : "0"}</td><td class="num hide-narrow">${ms((p.call_seconds_total || 0) * 1000)}</td><td class="hide-narrow">${esc(p.description || "")}${p.dialect ? ` <span class="muted">[${esc(p.dialect)}]</span>` : ""}</td></tr>`).join("")}</tbody></table></div>
    <h2>Load errors</h2>
    ${data.load_errors.length ? `<ul id="load-errors">${data.load_errors.map((e) => `<li><code>${esc(e.file)}</code>: ${esc(e.message)}</li>`).join("")}</ul>` : `<p class="muted">None.</p>`}`;
}

// ---- Config ------------------------------------------------------------

async function config() {
  const data = await api("config");
  const reload = data.reload;
  page.innerHTML = `
    <h1>Config</h1>
    <div class="cards">
      <div class="card"><div class="label">Source</div><div>${esc(data.source)}</div></div>
      <div class="card"><div class="label">Generation</div><div class="value">${reload.generation}</div><div class="muted">loaded ${esc(when(reload.loaded_at_ms))}</div></div>
      <div class="card" id="last-reload"><div class="label">Last reload</div><div>${reload.last_attempt_ms ? `${reload.last_ok ? `<span class="pill ok">applied</span>` : `<span class="pill bad">rejected</span>`} ${esc(when(reload.last_attempt_ms))}` : `<span class="muted">none since start</span>`}</div>${reload.last_error ? `<p class="error">${esc(reload.last_error)}</p>` : ""}</div>
    </div>
    ${reload.needs_restart.length || data.warnings.length ? `<h2>Warnings</h2><ul>${[...reload.needs_restart, ...data.warnings].map((w) => `<li>${esc(w)}</li>`).join("")}</ul>` : ""}
    <h2>Effective config <span class="muted">(secrets masked)</span></h2>
    <pre id="effective-config">${esc(JSON.stringify(data.config, null, 2))}</pre>`;
}

if (token()) start(); else showLogin();
