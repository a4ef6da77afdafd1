// Rowloom's dashboard: plain JavaScript over the REST API, live through its server-sent events.
// Every text from the API is set as text (never as HTML); the API key stays in this tab's sessionStorage.
"use strict";

const KEY = "rowloom-api-key";
const main = document.getElementById("main");
let leaving = new AbortController(); // aborted when the page changes: its streams and timers end

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children.flat()) node.append(child instanceof Node ? child : String(child));
  return node;
}

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status;
  }
}

function headers(extra = {}) {
  return { Authorization: `Bearer ${sessionStorage.getItem(KEY) || ""}`, ...extra };
}

async function api(path, { method = "GET", body, signal } = {}) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }), signal };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(path, init);
  if (response.status === 401) { signOut("Your key was refused: sign in again."); throw new ApiError(401, null); }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// Server-sent events through fetch (EventSource cannot send the Authorization header).
async function stream(path, onEvent, signal) {
  const response = await fetch(path, { headers: headers({ Accept: "text/event-stream" }), signal });
  if (!response.ok) throw new ApiError(response.status, null);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message"; const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) onEvent(event, JSON.parse(data.join("\n")));
    }
  }
}

function follow(path, onEvent) {
  const signal = leaving.signal;
  stream(path, onEvent, signal).catch((error) => {
    if (!signal.aborted) main.prepend(el("p", { class: "error" }, `Live updates stopped: ${error.message}`));
  });
}

const money = (value) => (value === null || value === undefined ? "–" : `$${Number(value).toFixed(4)}`);
const number = (value) => (value === null || value === undefined ? "–" : Number(value).toLocaleString("en"));
const when = (value) => (value ? new Date(value).toLocaleString() : "–");
const badge = (status) => el("span", { class: `badge ${status}` }, status);
const card = (label, value, id) => el("div", { class: "card" }, el("b", { id }, value), el("span", {}, label));
const failure = (error) => el("p", { class: "error" }, error.message);

function table(columns, rows) {
  return el("table", {}, el("thead", {}, el("tr", {}, columns.map((c) => el("th", {}, c)))),
    el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) => el("td", {}, c))))));
}

function barChart(items, format = number) {
  const width = 380, row = 22, max = Math.max(1e-12, ...items.map((i) => i.value));
  const chart = svg("svg", { width, height: Math.max(row, items.length * row), role: "img" });
  items.forEach((item, i) => {
    const bar = Math.max(1, (item.value / max) * 200);
    chart.append(svg("text", { x: 0, y: i * row + 15 }, String(item.label).slice(0, 22)),
      svg("rect", { x: 130, y: i * row + 4, width: bar, height: 14, fill: "#1b5fab" }),
      svg("text", { x: 136 + bar, y: i * row + 15 }, format(item.value)));
  });
  return items.length ? chart : el("p", { class: "muted" }, "Nothing yet.");
}

function lineChart(points) {
  const width = 560, height = 120, last = points.length ? points[points.length - 1] : { t: 1 };
  const max = Math.max(1, ...points.map((p) => p.v)), span = Math.max(1, last.t - (points[0] ? points[0].t : 0));
  const xy = points.map((p) => `${((p.t - points[0].t) / span) * (width - 40) + 35},${height - 15 - (p.v / max) * (height - 25)}`);
  return svg("svg", { width, height, role: "img", id: "throughput" },
    svg("text", { x: 0, y: 12 }, `${Math.round(max)}/s`), svg("text", { x: 0, y: height - 15 }, "0"),
    svg("polyline", { points: xy.join(" "), fill: "none", stroke: "#1b5fab", "stroke-width": 2 }));
}

// Sign-in: nothing is shown or asked of the API before a key works.
function signOut(message) {
  sessionStorage.removeItem(KEY);
  leaving.abort();
  document.getElementById("nav").hidden = true;
  document.getElementById("sign-out").hidden = true;
  signInPage(message);
}

function signInPage(message) {
  const input = el("input", { type: "password", id: "api-key", placeholder: "rlk_...", autocomplete: "off" });
  const note = el("p", { class: "error", id: "sign-in-error" }, message || "");
  main.replaceChildren(el("form", { class: "signin", id: "sign-in", onsubmit: async (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, input.value.trim());
    const answer = await fetch("/api/v1/jobs?limit=1", { headers: headers() });
    if (!answer.ok) {
      sessionStorage.removeItem(KEY);
      note.textContent = answer.status === 401 ? "That key is not known (or was revoked)."
        : `The key cannot list jobs (HTTP ${answer.status}).`;
      return;
    }
    render();
  } }, el("h1", {}, "Sign in"), el("p", { class: "muted" }, "An API key: a read key sees, a write key acts."),
  input, el("button", { class: "primary", type: "submit" }, "Sign in"), note));
}

// Jobs: the API's filters, cursor paging, and live rows.
async function jobsPage(params) {
  const form = el("form", { class: "filters", id: "job-filters" },
    el("label", {}, "Status", el("select", { name: "status" }, ["", "queued", "running", "waiting", "paused", "cancelling",
      "completed", "failed", "cancelled"].map((s) => el("option", { value: s, selected: params.get("status") === s }, s || "any")))),
    el("label", {}, "Workflow", el("input", { name: "workflow", value: params.get("workflow") || "" })),
    el("label", {}, "Priority", el("select", { name: "priority" }, ["", "urgent", "high", "normal", "low"].map(
      (p) => el("option", { value: p, selected: params.get("priority") === p }, p || "any")))),
    el("label", {}, "Name contains", el("input", { name: "name", value: params.get("name") || "" })),
    el("label", {}, "Created after", el("input", { name: "created_after", type: "date", value: params.get("created_after") || "" })),
    el("label", {}, "Created before", el("input", { name: "created_before", type: "date", value: params.get("created_before") || "" })),
    el("button", { type: "submit", class: "primary" }, "Filter"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = new URLSearchParams();
    for (const [name, value] of new FormData(form)) if (value) chosen.set(name, value);
    location.hash = `#/jobs?${chosen}`;
  });
  const query = new URLSearchParams(params);
  query.set("limit", "50");
  const page = await api(`/api/v1/jobs?${query}`);
  const rows = new Map();
  const body = page.items.map((job) => {
    const status = el("td", {}, badge(job.status));
    const done = el("td", {}, `${number(job.counts.done)} / ${number(job.counts.total)}`);
    rows.set(job.id, { status, done });
    return el("tr", { "data-job": job.id }, el("td", {}, el("a", { href: `#/jobs/${job.id}` }, `#${job.id}`)),
      el("td", {}, job.name), el("td", {}, job.workflow_name), status, el("td", {}, job.priority), done,
      el("td", {}, when(job.created_at)));
  });
  const fresh = el("p", { class: "muted", id: "new-jobs", hidden: true },
    el("a", { href: "#", onclick: (e) => { e.preventDefault(); render(); } }, "New jobs: show them"));
  const pager = el("div", { class: "actions" });
  if (params.get("after")) pager.append(el("a", { href: `#/jobs?${withParam(params, "after", null)}` }, "« First page"));
  if (page.has_more) pager.append(el("a", { href: `#/jobs?${withParam(params, "after", page.next)}`, id: "next-page" }, "Next page »"));
  main.replaceChildren(el("h1", {}, "Jobs"), form, fresh,
    el("table", { id: "jobs" }, el("thead", {}, el("tr", {}, ["Job", "Name", "Workflow", "Status", "Priority", "Rows done",
      "Created"].map((c) => el("th", {}, c)))), el("tbody", {}, body)), pager);
  const newest = Math.max(0, ...page.items.map((j) => j.id));
  const ids = page.items.map((j) => j.id).join(",");
  follow(`/api/v1/jobs/changes?since_id=${newest}${ids ? `&ids=${ids}` : ""}`, (event, data) => {
    if (event === "job" && rows.has(data.id)) {
      rows.get(data.id).status.replaceChildren(badge(data.status));
      rows.get(data.id).done.textContent = `${number(data.counts.done)} / ${number(data.counts.total)}`;
    } else if (event === "created") fresh.hidden = false;
  });
}

function withParam(params, name, value) {
  const copy = new URLSearchParams(params);
  if (value === null) copy.delete(name); else copy.set(name, value);
  return copy;
}

// A job: progress, throughput, steps and models, cost against the estimate and budgets, events, rows, actions.
async function jobPage(id) {
  const job = await api(`/api/v1/jobs/${id}`);
  const samples = [];
  const status = el("span", { id: "job-status" });
  const bar = el("progress", { id: "job-progress", max: 100, value: 0 });
  const figures = el("div", { class: "cards", id: "job-figures" });
  const chart = el("div", {});
  const steps = el("div", {});
  const batches = el("div", { id: "job-batches" });
  const mix = el("div", {});
  const actions = el("div", { class: "actions" }, ["cancel", "pause", "resume", "retry"].map((action) =>
    el("button", { id: `action-${action}`, class: action === "cancel" ? "danger" : "", onclick: () => act(id, action) },
      action[0].toUpperCase() + action.slice(1))),
  el("button", { id: "download", onclick: () => download(id) }, "Download output"));
  const message = el("p", { class: "error", id: "action-error" });
  const budgets = el("div", {});
  const events = el("div", {});
  const rows = el("div", {});
  main.replaceChildren(el("h1", {}, `Job #${id} `, job.name, " ", status), el("p", { class: "muted" },
    `Workflow ${job.workflow_name} v${job.version} · priority ${job.priority} · created ${when(job.created_at)}`),
  bar, figures, actions, message, el("div", { class: "grid" },
    el("section", {}, el("h2", {}, "Throughput (rows/s)"), chart),
    el("section", {}, el("h2", {}, "Model mix"), mix)),
  el("h2", {}, "Steps and models"), steps, batches, el("h2", {}, "Cost, estimate and budgets"), budgets,
  el("h2", {}, "Events"), events, el("h2", {}, "Failed rows and a sample of items"), rows);

  const show = (current) => {
    const counts = current.counts, handled = counts.done + counts.failed + counts.skipped;
    status.replaceChildren(badge(current.status));
    bar.value = counts.total ? Math.round((handled / counts.total) * 1000) / 10 : (current.status === "completed" ? 100 : 0);
    figures.replaceChildren(card("rows done", number(counts.done), "figure-done"), card("failed", number(counts.failed)),
      card("skipped", number(counts.skipped)), card("of", number(counts.total)),
      card("rows/s", current.usage.rows_per_s ?? "–", "figure-rate"), card("ETA (s)", current.usage.eta_s ?? "–"),
      card("tokens in / out", `${number(current.usage.tokens_in)} / ${number(current.usage.tokens_out)}`),
      card("cost", money(current.usage.cost), "figure-cost"),
      card("estimate", current.estimate ? `${money(current.estimate.cost_low)}–${money(current.estimate.cost_high)}` : "–"),
      card("from the cache", number(counts.cached)),
      ...(current.batches || []).length ? [card("saved by batches", money(current.batches.reduce((sum, b) => sum + (b.saved || 0), 0)), "figure-saved")] : []);
    batches.replaceChildren(...((current.batches || []).length ? [el("h2", {}, "Provider batches"),
      table(["Batch", "Deployment", "Status", "Requests", "Completed", "Failed", "Cost", "Saved"],
        current.batches.map((b) => [b.id || b.label, b.deployment, b.status || b.state, number(b.requests),
          number(b.completed), number(b.failed), money(b.cost), money(b.saved || 0)]))] : []));
    if (current.usage.rows_per_s !== null && current.usage.rows_per_s !== undefined) {
      samples.push({ t: Date.now() / 1000, v: current.usage.rows_per_s });
      chart.replaceChildren(lineChart(samples));
    } else if (!samples.length) chart.replaceChildren(el("p", { class: "muted" }, "Drawn while the job runs."));
    mix.replaceChildren(barChart(Object.entries(current.usage.models || {}).map(([label, value]) => ({ label, value }))));
    const stepRows = [];
    for (const [step, byModel] of Object.entries(current.steps || {})) {
      for (const [model, c] of Object.entries(byModel)) {
        stepRows.push([step, model || "–", number(c.done || 0), number(c.failed || 0),
          `${number(c.tokens_in || 0)} / ${number(c.tokens_out || 0)}`, money(c.cost || 0), number(c.cached || 0)]);
      }
    }
    steps.replaceChildren(stepRows.length ? table(["Step", "Model", "Done", "Failed", "Tokens in / out", "Cost", "Cached"], stepRows)
      : el("p", { class: "muted" }, "One step: see the counts above."));
  };
  show(job);
  loadDetails(id, job, { budgets, events, rows }).catch((error) => rows.append(failure(error)));
  follow(`/api/v1/jobs/${id}/progress`, (event, data) => {
    if (event === "progress") show(data);
    if (event === "end") loadDetails(id, null, { budgets, events, rows }).catch(() => {});
  });
}

async function loadDetails(id, job, { budgets, events, rows }) {
  job = job || await api(`/api/v1/jobs/${id}`);
  const [eventPage, errors, items, budgetList] = await Promise.all([
    api(`/api/v1/jobs/${id}/events?limit=200`), api(`/api/v1/jobs/${id}/errors?limit=20`),
    api(`/api/v1/jobs/${id}/items?limit=10`), api("/api/v1/budgets").catch(() => [])]);
  events.replaceChildren(table(["When", "Event", "Message"], eventPage.items.map((e) => [when(e.created_at), e.kind, e.message])));
  rows.replaceChildren(
    errors.items.length ? table(["Row", "Error", "Reason", "Attempts"], errors.items.map((i) => [JSON.stringify(i.key), i.error_class, i.error, i.attempts]))
      : el("p", { class: "muted" }, "No failed rows."),
    el("h2", {}, "Items"), table(["Row", "Status", "Answer", "Model", "Cost"],
      items.items.map((i) => [JSON.stringify(i.key), i.status, JSON.stringify(i.outputs).slice(0, 160), i.model || "–", money(i.cost)])));
  const mine = (Array.isArray(budgetList) ? budgetList : budgetList.items || []).filter((b) =>
    b.scope === "platform" || (b.scope === "workflow" && b.target === job.workflow_name));
  budgets.replaceChildren(table(["Spent by this job", "Estimate (expected)", "Budget", "Spent of limit", "Resets"],
    [[money(job.usage.cost), job.estimate ? money(job.estimate.cost_expected) : "–", "", "", ""],
      ...mine.map((b) => ["", "", `${b.scope} ${b.target || ""} ${b.period}`, `${money(b.spent_usd)} of ${money(b.limit_usd)}`, when(b.resets_at)])]));
}

async function act(id, action) {
  if (!confirm(`${action[0].toUpperCase() + action.slice(1)} job #${id}?`)) return;
  const note = document.getElementById("action-error");
  try {
    await api(`/api/v1/jobs/${id}/${action}`, { method: "POST", body: {} });
    note.textContent = "";
  } catch (error) {
    note.textContent = error.status === 403 ? "This key may only read: sign in with a write key to act." : error.message;
  }
}

async function download(id) {
  const response = await fetch(`/api/v1/jobs/${id}/output`, { headers: headers() });
  if (!response.ok) {
    document.getElementById("action-error").textContent = (await response.json()).error.message;
    return;
  }
  const name = (response.headers.get("content-disposition") || "").match(/filename="?([^";]+)/);
  const link = el("a", { href: URL.createObjectURL(await response.blob()), download: name ? name[1] : `job-${id}` });
  link.click();
  URL.revokeObjectURL(link.href);
}

// Workflows: the list, a workflow's versions, a version's YAML as stored, a diff, and "run this".
async function workflowsPage() {
  const page = await api("/api/v1/workflows?limit=200");
  main.replaceChildren(el("h1", {}, "Workflows"), table(["Name", "Latest version", "Active", "Updated"],
    page.items.map((w) => [el("a", { href: `#/workflows/${encodeURIComponent(w.name)}` }, w.name), w.latest_version,
      w.is_active ? "yes" : "no", when(w.updated_at)])));
}

async function workflowPage(name) {
  const path = `/api/v1/workflows/${encodeURIComponent(name)}`;
  const versions = await api(`${path}/versions`);
  const numbers = versions.map((v) => v.version).sort((a, b) => a - b);
  const text = (n) => fetch(`${path}/versions/${n}?format=yaml`, { headers: headers() }).then((r) => r.text());
  const shown = el("pre", { id: "yaml" });
  const diff = el("pre", { class: "diff", id: "diff" });
  const pick = (id, chosen) => el("select", { id }, numbers.map((n) => el("option", { value: n, selected: n === chosen }, `v${n}`)));
  const left = pick("diff-from", numbers[Math.max(0, numbers.length - 2)]), right = pick("diff-to", numbers[numbers.length - 1]);
  const params = el("textarea", { id: "run-params", rows: 4, cols: 60 }, "{}");
  const priority = el("select", { id: "run-priority" }, ["normal", "urgent", "high", "low"].map((p) => el("option", { value: p }, p)));
  const runVersion = pick("run-version", numbers[numbers.length - 1]);
  const note = el("p", { class: "error" });
  main.replaceChildren(el("h1", {}, `Workflow ${name}`),
    table(["Version", "Active", "sha256", "Created"], versions.map((v) => [
      el("a", { href: "#", onclick: async (e) => { e.preventDefault(); shown.textContent = await text(v.version); } }, `v${v.version}`),
      v.is_active ? "yes" : "no", (v.content_hash || v.sha256 || "").slice(0, 12), when(v.created_at)])),
    el("h2", {}, "YAML as stored"), shown,
    el("h2", {}, "Diff"), el("div", { class: "actions" }, left, right,
      el("button", { id: "show-diff", onclick: async () => showDiff(diff, await text(left.value), await text(right.value)) }, "Compare")), diff,
    el("h2", {}, "Run this"), el("form", { class: "stack", id: "run-form", onsubmit: async (event) => {
      event.preventDefault();
      try {
        const job = await api("/api/v1/jobs", { method: "POST", body: { workflow: name, version: Number(runVersion.value),
          priority: priority.value, params: JSON.parse(params.value || "{}") } });
        location.hash = `#/jobs/${job.id}`;
      } catch (error) { note.textContent = error instanceof SyntaxError ? `params: ${error.message}` : error.message; }
    } }, el("label", {}, "Version", runVersion), el("label", {}, "Priority", priority),
    el("label", {}, "Params (JSON: overrides of the spec, e.g. {\"source\": {\"path\": \"nov.csv\"}})", params),
    el("button", { class: "primary", type: "submit" }, "Run"), note));
  shown.textContent = await text(numbers[numbers.length - 1]);
}

function showDiff(target, before, after) {
  const a = before.split("\n"), b = after.split("\n");
  const lcs = Array.from({ length: a.length + 1 }, () => new Uint32Array(b.length + 1));
  for (let i = a.length - 1; i >= 0; i--) for (let j = b.length - 1; j >= 0; j--)
    lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const lines = [];
  let i = 0, j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) { lines.push(el("div", {}, `  ${a[i]}`)); i++; j++; }
    else if (j < b.length && (i === a.length || lcs[i][j + 1] >= lcs[i + 1][j])) { lines.push(el("div", { class: "add" }, `+ ${b[j]}`)); j++; }
    else { lines.push(el("div", { class: "del" }, `- ${a[i]}`)); i++; }
  }
  target.replaceChildren(...lines);
}

// Usage and budgets: spend per day, model, workflow and key.
async function usagePage() {
  const by = (group) => api(`/api/v1/usage?group_by=${group}&limit=60`).then((page) =>
    page.items.map((g) => ({ label: g[group] ?? "–", value: g.cost })));
  const [days, models, workflows, keys, budgets] = await Promise.all([by("day"), by("model"), by("workflow"), by("key"),
    api("/api/v1/budgets").catch((error) => error)]);
  const budgetList = budgets instanceof Error ? [] : (Array.isArray(budgets) ? budgets : budgets.items || []);
  main.replaceChildren(el("h1", {}, "Usage and budgets"), el("div", { class: "grid" },
    el("section", {}, el("h2", {}, "Spend per day"), barChart(days.reverse(), money)),
    el("section", {}, el("h2", {}, "Spend per model"), barChart(models, money)),
    el("section", {}, el("h2", {}, "Spend per workflow"), barChart(workflows, money)),
    el("section", {}, el("h2", {}, "Spend per key"), barChart(keys.map((k) => ({ ...k, label: `key ${k.label}` })), money))),
  el("h2", {}, "Budgets"), budgets instanceof Error ? failure(budgets) : table(["Budget", "Spent", "Reserved", "Limit", "Remaining", "Resets"],
    budgetList.map((b) => [`${b.scope} ${b.target || ""} ${b.period}`, money(b.spent_usd), money(b.reserved_usd), money(b.limit_usd),
      money(b.remaining_usd), when(b.resets_at)])));
}

// Gateway models: health, cool-downs, capacity, latency and errors.
async function modelsPage() {
  let view;
  try { view = await api("/admin/models"); } catch (error) {
    main.replaceChildren(el("h1", {}, "Gateway models"), el("p", { class: "error" },
      error.status === 403 ? "The gateway's models are shown to admin keys." : error.message));
    return;
  }
  const cell = (value) => (value === null || value === undefined ? "–" : typeof value === "object" ? JSON.stringify(value) : String(value));
  const names = ["name", "model", "healthy", "cooldown_s", "consecutive_failures", "weight", "in_flight", "max_in_flight",
    "requests_left", "tokens_left", "requests_ok", "requests_failed", "latency_p50_ms", "latency_p95_ms", "latency_mean_ms",
    "tokens_in", "tokens_out", "cost"];
  const present = names.filter((n) => view.models.some((m) => n in m));
  main.replaceChildren(el("h1", {}, "Gateway models"), table(present, view.models.map((m) => present.map((n) => cell(m[n])))));
}

async function render() {
  leaving.abort();
  leaving = new AbortController();
  if (!sessionStorage.getItem(KEY)) { signInPage(""); return; }
  document.getElementById("nav").hidden = false;
  document.getElementById("sign-out").hidden = false;
  const [path, query] = (location.hash.slice(1) || "/jobs").split("?");
  const parts = path.split("/").filter(Boolean);
  const params = new URLSearchParams(query || "");
  try {
    if (parts[0] === "jobs" && parts[1]) await jobPage(Number(parts[1]));
    else if (parts[0] === "workflows" && parts[1]) await workflowPage(decodeURIComponent(parts[1]));
    else if (parts[0] === "workflows") await workflowsPage();
    else if (parts[0] === "usage") await usagePage();
    else if (parts[0] === "models") await modelsPage();
    else await jobsPage(params);
  } catch (error) {
    if (error.status !== 401) main.replaceChildren(failure(error));
  }
}

document.getElementById("sign-out").addEventListener("click", () => signOut(""));
window.addEventListener("hashchange", render);
render();
