"use strict";
// The queue's web page. It only calls the queue's own API; the token stays in this tab
// (sessionStorage) and is either typed in or obtained with a login code from `farm queue
// url` (in the URL fragment, which browsers never send to a server). A code works once and
// expires within a minute, so the address the browser keeps in its history opens nothing.
//
// Rows are updated in place (a text selection survives the refresh); one log reader per
// job (never two reads from the same offset); the task table lists the job's tasks and
// "Retry failed tasks" shows while some failed.
const MAX_ROWS = 500;
const DAY = 86400000;
const FINISHED = ["Completed", "Cancelled", "Failed"];
const STATE_ORDER = { Running: 0, Waiting: 1, Failed: 2, Cancelled: 3, Completed: 4 };
const jobs = new Map();
const rows = new Map();
let token = null, lastUpdated = null, selected = null, rangeDays = 7;
let sortKey = "id", sortDir = -1;
let agents = [], agentsAt = null, unreachableSince = null, lastGood = null;
let reader = null, thumbsSupported = true;
const thumbCache = new Map();

const $ = (id) => document.getElementById(id);
const fmt = (ms) => {
  if (!ms) return "–";
  const t = new Date(ms);
  return t.toDateString() === new Date().toDateString() ? t.toLocaleTimeString() : t.toLocaleString();
};
const ago = (ms) => {
  if (!ms) return "–";
  const s = Math.max(0, (Date.now() - ms) / 1000);
  return s < 60 ? s.toFixed(s < 10 ? 1 : 0) + " s ago" : s < 3600 ? Math.round(s / 60) + " min ago" : fmt(ms);
};
const span = (ms) => {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 60 ? s + " s" : s < 3600 ? Math.floor(s / 60) + " min " + (s % 60) + " s" : Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
};
const setText = (el, text) => { if (el.textContent !== text) el.textContent = text; };
const setClass = (el, name) => { if (el.className !== name) el.className = name; };
const jobPath = (id) => "/v1/jobs/" + encodeURIComponent(id);

class Unauthorized extends Error {}
class Unreachable extends Error {}
class HttpError extends Error { constructor(status, message) { super(message); this.status = status; } }

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { cache: "no-store", ...options, headers: { Authorization: "Bearer " + token, ...(options.headers || {}) } });
  } catch (error) { throw new Unreachable(error.message); }
  if (response.status === 401) throw new Unauthorized("the token was refused");
  if (response.status === 502 || response.status === 504) throw new Unreachable("gateway " + response.status);
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) {}
    throw new HttpError(response.status, detail);
  }
  return response;
}
const json = async (path, options) => (await api(path, options)).json();

// ----- login -----

async function takeCode() {
  const m = location.hash.match(/(?:^#|&)code=([^&]*)/);
  if (!m) return false;
  history.replaceState(null, "", location.pathname + location.search);
  let response;
  try {
    response = await fetch("/web/v1/session", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code: decodeURIComponent(m[1]) }), cache: "no-store",
    });
  } catch (error) { showLogin("cannot reach the queue: " + error.message); return true; }
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) {}
    stopTimers();
    sessionStorage.removeItem("farm-token");
    token = null;
    showLogin("the link was refused: " + detail);
    return true;
  }
  token = (await response.json()).token;
  sessionStorage.setItem("farm-token", token);
  start();
  return true;
}

function showLogin(message) {
  $("app").classList.add("hidden");
  $("login").classList.remove("hidden");
  $("login-error").textContent = message || "";
  $("status").textContent = "not connected";
}

// ----- reachability -----

function reachable() {
  lastGood = Date.now();
  if (unreachableSince === null) return;
  unreachableSince = null;
  $("banner").classList.add("hidden");
  $("agents").classList.remove("stale");
}

function report(error) {
  if (error instanceof Unauthorized) { stopTimers(); showLogin(error.message); return; }
  if (error instanceof Unreachable) {
    if (unreachableSince === null) unreachableSince = Date.now();
    const banner = $("banner");
    banner.textContent = "The queue at " + location.host + " does not answer (since " + fmt(unreachableSince) +
      "): is `farm queue serve` running? Retrying every second. Jobs and agents below are as of " + fmt(lastGood) + ".";
    banner.classList.remove("hidden");
    $("agents").classList.add("stale");
    renderAgents();
    $("status").textContent = "queue unreachable";
    return;
  }
  $("status").textContent = "error: " + error.message;
}

// ----- jobs -----

async function loadJobs() {
  let cursor = null;
  const first = lastUpdated === null;
  const since = rangeDays ? Date.now() - rangeDays * DAY : 0;
  let newest = lastUpdated;
  do {
    const params = new URLSearchParams({ limit: "500" });
    if (first) { if (rangeDays) params.set("since", String(since)); } else params.set("updated_since", String(lastUpdated));
    if (cursor) params.set("cursor", cursor);
    const page = await json("/v1/jobs?" + params);
    for (const job of page.jobs) {
      jobs.set(job.id, job);
      if (job.updated_at && (newest === null || job.updated_at > newest)) newest = job.updated_at;
    }
    cursor = page.next_cursor;
  } while (cursor);
  lastUpdated = newest === null ? since : newest;
  renderJobs();
}

function reload() { lastUpdated = null; jobs.clear(); for (const row of rows.values()) row.remove(); rows.clear(); return loadJobs(); }

const runningOn = (id) => agents.filter((a) => a.alive && a.job_id === id).length;

function visibleJobs() {
  const q = $("search").value.trim().toLowerCase();
  const state = $("state-filter").value;
  const list = [...jobs.values()].filter((j) => (!state || j.state === state) && (!q || j.id === q ||
    j.name.toLowerCase().includes(q) || (j.tags || []).some((t) => t.toLowerCase().includes(q))));
  const key = (j) => {
    switch (sortKey) {
      case "id": return Number(j.id) || 0;
      case "state": return STATE_ORDER[j.state] ?? 9;
      case "priority": return j.priority ?? 0;
      case "name": return j.name.toLowerCase();
      case "progress": return j.progress && j.progress.frames_total ? j.progress.frames_done / j.progress.frames_total : -1;
      default: return j[sortKey] || 0;
    }
  };
  list.sort((a, b) => { const x = key(a), y = key(b); return (x < y ? -1 : x > y ? 1 : (Number(a.id) - Number(b.id))) * sortDir; });
  return list;
}

function newRow(id) {
  const row = document.createElement("tr");
  row.dataset.id = id;
  row.tabIndex = -1;
  for (const name of ["id", "state", "priority", "name", "frames", "wide", "wide"]) {
    const td = row.insertCell();
    td.className = name;
  }
  const bar = document.createElement("span");
  bar.className = "bar";
  bar.append(document.createElement("span"));
  const count = document.createElement("span");
  count.className = "running-count";
  row.cells[4].append(bar, document.createTextNode(""), count);
  row.addEventListener("click", () => select(id));
  rows.set(id, row);
  return row;
}

function updateRow(row, job) {
  const c = row.cells;
  setText(c[0], job.id);
  setText(c[1], job.state);
  setClass(c[1], "state state-" + job.state);
  setText(c[2], String(job.priority ?? 0));
  setText(c[3], job.name);
  const [bar, text, count] = c[4].childNodes;
  const p = job.progress;
  const width = (p && p.frames_total ? 100 * p.frames_done / p.frames_total : 0) + "%";
  if (bar.firstChild.style.width !== width) bar.firstChild.style.width = width;
  setClass(bar, job.state === "Failed" ? "bar has-failed" : "bar");
  setText(text, p ? p.frames_done + "/" + p.frames_total : "–");
  const n = runningOn(job.id);
  setText(count, n ? n + " running" : "");
  setText(c[5], fmt(job.submit_time));
  setText(c[6], fmt(job.end_time));
  row.classList.toggle("selected", job.id === selected);
}

function renderJobs() {
  const list = visibleJobs();
  const shown = list.slice(0, MAX_ROWS);
  const body = $("jobs").tBodies[0];
  const keep = new Set(shown.map((j) => j.id));
  for (const [id, row] of rows) if (!keep.has(id) && row.parentNode) row.remove();
  let at = body.firstChild;
  for (const job of shown) {
    const row = rows.get(job.id) || newRow(job.id);
    updateRow(row, job);
    if (row !== at) body.insertBefore(row, at); else at = at.nextSibling;
  }
  if (!body.querySelector("tr[tabindex='0']") && body.firstChild) body.firstChild.tabIndex = 0;
  const none = $("no-jobs");
  none.classList.toggle("hidden", shown.length > 0 && list.length <= MAX_ROWS);
  setText(none, jobs.size === 0 ? "No jobs yet." : list.length > MAX_ROWS ? "Showing " + MAX_ROWS + " of " + list.length + ": refine the search." : "No job matches.");
  renderDetail();
}

function whyWaiting(job) {
  if (FINISHED.includes(job.state) || runningOn(job.id) > 0) return "";
  if (job.reason) return "Waits: " + job.reason;
  if (unreachableSince !== null) return "";
  const live = agents.filter((a) => a.alive);
  if (live.length === 0) return "Waits: no agent is alive (start some with `farm agent`, or `farm queue serve --agents N`).";
  const usable = live.filter((a) => !a.disabled);
  if (usable.length === 0) return "Waits: every agent is disabled.";
  const busy = usable.filter((a) => a.job_id && a.job_id !== job.id);
  if (busy.length === usable.length) {
    const others = [...new Set(busy.map((a) => a.job_id))].map((id) => {
      const other = jobs.get(id);
      return "job " + id + (other ? " (priority " + (other.priority ?? 0) + ")" : "");
    });
    return "Waits: all " + usable.length + " agents are busy with " + others.join(", ") + "; this job's priority is " + (job.priority ?? 0) + ".";
  }
  return job.state === "Waiting" ? "Waits for a free agent." : "";
}

function renderDetail() {
  const job = selected && jobs.get(selected);
  $("detail").classList.toggle("hidden", !job);
  $("pick").classList.toggle("hidden", !!job);
  if (!job) return;
  setText($("detail-id"), job.id);
  setText($("detail-name"), job.name);
  const parts = [job.state + (job.native_state ? " (" + job.native_state + ")" : ""), "attempt " + (job.attempt || 1), "priority " + (job.priority ?? 0)];
  const n = runningOn(job.id);
  if (n) parts.push(n + " task" + (n > 1 ? "s" : "") + " running now");
  if (job.tags && job.tags.length) parts.push("tags: " + job.tags.join(", "));
  if (job.reason && FINISHED.includes(job.state)) parts.push(job.reason);
  if (job.render_log_filename) parts.push(job.render_log_filename);
  setText($("meta"), parts.join(" · "));
  setText($("why"), whyWaiting(job));
  const finished = FINISHED.includes(job.state);
  $("stop").disabled = finished;
  $("restart").disabled = !finished;
  $("delete").disabled = !finished;
  const input = $("priority");
  if (document.activeElement !== input && input.dataset.job !== job.id + ":" + job.priority) {
    input.value = job.priority ?? 0;
    input.dataset.job = job.id + ":" + job.priority;
  }
}

function select(id, focus) {
  if (selected !== id) {
    selected = id;
    openReader(id);
    $("tasks").tBodies[0].replaceChildren();
    $("thumbs").replaceChildren();
    tasksState.cursor = null;
  }
  renderJobs();
  pollLog().catch(report);
  loadTasks().catch(report);
  loadThumbs().catch(report);
  const row = rows.get(id);
  if (row) { for (const r of rows.values()) r.tabIndex = -1; row.tabIndex = 0; if (focus) row.focus(); }
}

// ----- confirmation -----

function confirmDialog(text, ok) {
  const dialog = $("confirm");
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = ok;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
    $("confirm-cancel").focus();
  });
}

async function stopJob(id) {
  const job = jobs.get(id);
  if (!job || FINISHED.includes(job.state)) return;
  const p = job.progress;
  const frames = p ? " (" + p.frames_done + " of " + p.frames_total + " frames done)" : "";
  if (!await confirmDialog("Stop job " + id + " \u201c" + job.name + "\u201d" + frames + "? Its running tasks are killed; Restart runs it again from the start.", "Stop job")) return;
  setJob(await json(jobPath(id) + ":stop", { method: "POST" }));
}

async function deleteJob(id) {
  const job = jobs.get(id);
  if (!job || !FINISHED.includes(job.state)) return;
  if (!await confirmDialog("Delete job " + id + " \u201c" + job.name + "\u201d (" + job.state + ") and its render log? This cannot be undone.", "Delete job")) return;
  await api(jobPath(id), { method: "DELETE" });
  jobs.delete(id);
  const row = rows.get(id);
  if (row) { row.remove(); rows.delete(id); }
  if (selected === id) { selected = null; reader = null; }
  renderJobs();
}

function setJob(job) { jobs.set(job.id, job); renderJobs(); }

async function setPriority() {
  if (!selected) return;
  const value = Number($("priority").value);
  if (!Number.isInteger(value) || value < -1000 || value > 1000) { report(new Error("priority must be a whole number from -1000 to 1000")); return; }
  setJob(await json(jobPath(selected), { method: "PATCH", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ priority: value }) }));
  $("status").textContent = "priority of job " + selected + " set to " + value;
}

async function restart() {
  if (!selected) return;
  setJob(await json(jobPath(selected) + ":start", { method: "POST" }));
  if (reader) reader.complete = false;
}

// ----- the log: one reader per job -----

function openReader(id, task) {
  reader = { id, offset: task ? task.start : 0, end: task ? task.end : null, complete: false, busy: false };
  $("log").textContent = task ? "── task " + task.index + " (frames " + task.frames + ") ── whole log: click the job again\n" : "";
}

async function pollLog() {
  const r = reader;
  if (!r || r.complete || r.busy) return;
  r.busy = true;
  try {
    let path = jobPath(r.id) + "/log?offset=" + r.offset;
    if (r.end !== null) path += "&limit=" + Math.max(1, r.end - r.offset);
    const response = await api(path);
    const text = await response.text();
    if (r !== reader) return;
    const log = $("log");
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    if (text) log.append(document.createTextNode(text));
    if (atBottom) log.scrollTop = log.scrollHeight;
    r.offset = Number(response.headers.get("X-Next-Offset") || r.offset);
    r.complete = response.headers.get("X-Log-Complete") === "true" || (r.end !== null && r.offset >= r.end);
  } finally { r.busy = false; }
}

// ----- tasks (GET /v1/jobs/{id}/tasks → {tasks: [{index, frames, state, agent, attempt,
// tries, exit_code, reason, start_time, end_time, log_offset, log_end}], next_cursor}) -----

const tasksState = { cursor: null, busy: false, failed: 0 };

async function loadTasks(more) {
  const id = selected;
  const box = $("tasks-box");
  if (!id) { box.classList.add("hidden"); return; }
  if (tasksState.busy) return;
  tasksState.busy = true;
  try {
    const params = new URLSearchParams({ limit: "200" });
    if (more && tasksState.cursor) params.set("cursor", tasksState.cursor);
    let page;
    try { page = await json(jobPath(id) + "/tasks?" + params); } catch (error) {
      // The job is gone (deleted): nothing to show.
      if (error instanceof HttpError && error.status === 404) { box.classList.add("hidden"); return; }
      throw error;
    }
    if (id !== selected) return;
    box.classList.remove("hidden");
    const body = $("tasks").tBodies[0];
    if (!more) tasksState.failed = 0;
    for (const t of page.tasks) {
      const index = String(t.index);
      let row = body.querySelector("tr[data-index='" + CSS.escape(index) + "']");
      if (!row) { row = body.insertRow(); row.dataset.index = index; for (let i = 0; i < 8; i++) row.insertCell(); }
      if (t.state === "failed") tasksState.failed++;
      const c = row.cells;
      setText(c[0], index);
      setText(c[1], t.frames ?? "–");
      setText(c[2], t.state);
      setClass(c[2], "state state-" + t.state);
      c[2].title = t.reason ?? "";
      setText(c[3], t.agent ?? "–");
      setText(c[4], String(t.attempt));
      c[4].title = "attempt " + t.attempt + ", handed out " + t.tries + " time" + (t.tries === 1 ? "" : "s") + " in it";
      setText(c[5], t.exit_code === undefined ? "–" : String(t.exit_code));
      setText(c[6], t.start_time ? span((t.end_time || Date.now()) - t.start_time) : "–");
      // The task's part of the job's log; each attempt writes a new part, so the link follows.
      c[7].replaceChildren();
      if (t.log_offset !== undefined) {
        const link = document.createElement("a");
        link.href = "#";
        link.textContent = "log";
        const part = { start: t.log_offset, end: t.log_end ?? null, index, frames: t.frames ?? "–" };
        link.addEventListener("click", (e) => {
          e.preventDefault();
          openReader(id, part);
          pollLog().catch(report);
        });
        c[7].append(link);
      }
    }
    tasksState.cursor = page.next_cursor || null;
    $("more-tasks").classList.toggle("hidden", !tasksState.cursor);
    $("retry-failed").classList.toggle("hidden", tasksState.failed === 0);
  } finally { tasksState.busy = false; }
}

async function retryFailed() {
  if (!selected) return;
  const answer = await json(jobPath(selected) + ":retry-failed", { method: "POST" });
  if (answer && answer.id) setJob(answer);
  if (reader) reader.complete = false;
  await loadTasks();
}

// ----- thumbnails of the job's declared output images -----

async function loadThumbs() {
  const id = selected, strip = $("thumbs");
  if (!id || !thumbsSupported) return;
  let listed;
  try { listed = (await json("/web/v1/jobs/" + encodeURIComponent(id) + "/outputs")).outputs || []; } catch (error) {
    if (error instanceof HttpError && error.status === 404 && !jobs.has(id)) return;
    if (error instanceof HttpError && error.status === 404) { thumbsSupported = false; strip.classList.add("hidden"); return; }
    throw error;
  }
  if (id !== selected) return;
  const last = listed.slice(-16);
  strip.classList.toggle("hidden", last.length === 0);
  const want = new Set(last.map((o) => id + "/" + o.name + "@" + o.modified));
  for (const fig of [...strip.children]) if (!want.has(fig.dataset.key)) fig.remove();
  for (const o of last) {
    const key = id + "/" + o.name + "@" + o.modified;
    if (strip.querySelector("figure[data-key='" + CSS.escape(key) + "']")) continue;
    let url = thumbCache.get(key);
    if (!url) {
      try {
        const blob = await (await api("/web/v1/jobs/" + encodeURIComponent(id) + "/outputs/" + encodeURIComponent(o.name))).blob();
        url = URL.createObjectURL(blob);
        thumbCache.set(key, url);
      } catch (error) { if (error instanceof HttpError) continue; throw error; }
    }
    if (id !== selected) return;
    const fig = document.createElement("figure");
    fig.dataset.key = key;
    const img = document.createElement("img");
    img.src = url;
    img.alt = o.name;
    img.title = o.path;
    const cap = document.createElement("figcaption");
    cap.textContent = o.name;
    fig.append(img, cap);
    strip.append(fig);
  }
}

// ----- agents -----

async function loadAgents() {
  ({ agents } = await json("/v1/agents"));
  agentsAt = Date.now();
  renderAgents();
}

function renderAgents() {
  const body = $("agents").tBodies[0];
  const stale = unreachableSince !== null;
  const seen = new Set();
  for (const agent of agents) {
    const key = String(agent.id);
    seen.add(key);
    let row = body.querySelector("tr[data-id='" + key + "']");
    if (!row) {
      row = body.insertRow();
      row.dataset.id = key;
      for (let i = 0; i < 7; i++) row.insertCell();
      row.cells[0].className = "wrap";
      row.cells[5].className = "wrap";
      const button = document.createElement("button");
      button.type = "button";
      button.addEventListener("click", () => toggleAgent(agent.id, button.dataset.disable === "1").catch(report));
      row.cells[6].append(button);
    }
    const c = row.cells;
    setText(c[0], agent.name + " · " + agent.hostname + " (" + agent.pid + ", " + agent.kind + ")");
    const state = stale ? "unknown" : !agent.alive ? "ended " + fmt(agent.ended_at) : agent.disabled ? "disabled" : "alive";
    setText(c[1], state);
    setClass(c[1], stale || !agent.alive ? "muted" : agent.disabled ? "state-Waiting" : "state-Completed");
    setText(c[2], agent.alive && !stale ? ago(agent.last_seen) : "–");
    setText(c[3], agent.load === null || agent.load === undefined ? "–" : agent.load.toFixed(2));
    setText(c[4], agent.alive && !stale ? (agent.job_id ? 1 : 0) + "/" + (agent.slots || 1) : "–");
    setText(c[5], agent.job_id ? "job " + agent.job_id + " task " + agent.task + (agent.task_frames ? " (frames " + agent.task_frames + ")" : "") +
      ": " + (agent.job_name || "") + (agent.task_since ? " · " + span(Date.now() - agent.task_since) : "") : "–");
    const button = c[6].firstChild;
    button.dataset.disable = agent.disabled ? "0" : "1";
    setText(button, agent.disabled ? "Enable" : "Disable");
    button.disabled = !agent.alive || stale;
  }
  for (const row of [...body.rows]) if (!seen.has(row.dataset.id)) row.remove();
}

async function toggleAgent(id, disable) {
  await json("/v1/agents/" + id + (disable ? ":disable" : ":enable"), { method: "POST" });
  await loadAgents();
}

// ----- keyboard -----

function onKey(event) {
  if (event.target.closest("input, select, textarea, dialog") || event.altKey || event.ctrlKey || event.metaKey) return;
  if (event.key === "/") { event.preventDefault(); $("search").focus(); return; }
  const row = event.target.closest && event.target.closest("#jobs tbody tr");
  if (!row) return;
  const id = row.dataset.id;
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    event.preventDefault();
    const next = event.key === "ArrowDown" ? row.nextElementSibling : row.previousElementSibling;
    if (next) { row.tabIndex = -1; next.tabIndex = 0; next.focus(); }
  } else if (event.key === "Enter") {
    event.preventDefault();
    select(id, true);
  } else if (event.key === "s") {
    event.preventDefault();
    stopJob(id).catch(report);
  } else if (event.key === "Delete") {
    event.preventDefault();
    deleteJob(id).catch(report);
  }
}

// ----- wiring -----

let timers = [];
function stopTimers() { timers.forEach(clearInterval); timers = []; }

async function tick() {
  try {
    await loadJobs();
    await loadAgents();
    reachable();
    renderJobs();
    await pollLog();
    $("status").textContent = "updated " + new Date().toLocaleTimeString() + " · " + jobs.size + " jobs";
  } catch (error) { report(error); }
}

async function slowTick() {
  const job = selected && jobs.get(selected);
  if (!job || unreachableSince !== null) return;
  try {
    if (!FINISHED.includes(job.state) || tasksState.lastState !== job.state) { await loadTasks(); await loadThumbs(); }
    tasksState.lastState = job.state;
  } catch (error) { report(error); }
}

async function start() {
  stopTimers();
  try { await api("/v1/capabilities"); } catch (error) { report(error); if (!(error instanceof Unreachable)) return; }
  $("login").classList.add("hidden");
  $("app").classList.remove("hidden");
  await tick();
  timers.push(setInterval(tick, 1000), setInterval(slowTick, 2000));
}

function init() {
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    token = $("token").value.trim();
    sessionStorage.setItem("farm-token", token);
    start();
  });
  $("stop").addEventListener("click", () => stopJob(selected).catch(report));
  $("restart").addEventListener("click", () => restart().catch(report));
  $("delete").addEventListener("click", () => deleteJob(selected).catch(report));
  $("retry-failed").addEventListener("click", () => retryFailed().catch(report));
  $("set-priority").addEventListener("click", () => setPriority().catch(report));
  $("priority").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); setPriority().catch(report); } });
  $("more-tasks").addEventListener("click", () => loadTasks(true).catch(report));
  $("search").addEventListener("input", renderJobs);
  $("state-filter").addEventListener("change", renderJobs);
  $("range").addEventListener("change", () => { rangeDays = Number($("range").value); reload().catch(report); });
  for (const th of document.querySelectorAll("#jobs th[data-sort]")) {
    th.addEventListener("click", () => {
      const key = th.dataset.sort;
      sortDir = sortKey === key ? -sortDir : (key === "name" ? 1 : -1);
      sortKey = key;
      for (const other of document.querySelectorAll("#jobs th[data-sort]")) other.className = other === th ? "sorted " + (sortDir > 0 ? "asc" : "desc") : (other.classList.contains("wide") ? "wide" : "");
      if (th.dataset.sort === "submit_time" || th.dataset.sort === "end_time") th.classList.add("wide");
      renderJobs();
    });
  }
  document.addEventListener("keydown", onKey);
  // A new link opened in this tab changes only the fragment: no reload.
  window.addEventListener("hashchange", () => { takeCode(); });
  takeCode().then((hadCode) => {
    if (hadCode) return;
    token = sessionStorage.getItem("farm-token");
    if (token) start(); else showLogin();
  });
}

init();
