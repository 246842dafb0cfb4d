// quiv dashboard: a small script with no build step and no dependencies.
// Everything that comes from the server is put in the page with textContent
// (through el()), never as markup.
"use strict";

(function () {
  const csrfToken = document.querySelector('meta[name="quiv-csrf-token"]').content;
  const readOnly = document.querySelector('meta[name="quiv-read-only"]').content === "true";
  const IN_FLIGHT = new Set(["scheduled", "running"]);
  const SYMBOLS = {
    scheduled: "\u2026", running: "\u25B6", completed: "\u2713", failed: "\u2717",
    cancelled: "\u2298", active: "\u25CF", paused: "\u2016",
  };
  const state = {
    offset: 0, limit: 50, status: "", taskId: "", window: "", hasMore: false,
    jobRows: new Map(), taskRows: new Map(), removed: new Set(), taskNames: new Map(),
    generation: 0,
  };
  const $ = (id) => document.getElementById(id);
  const tasksBody = document.querySelector("#tasks tbody");
  const jobsBody = document.querySelector("#jobs tbody");

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else if (key === "onclick") node.addEventListener("click", value);
      else if (key in node && typeof value !== "string") node[key] = value;
      else node.setAttribute(key, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function when(iso) {
    if (!iso) return el("span", { class: "muted", text: "\u2014" });
    const date = new Date(iso);
    return el("time", { datetime: iso, title: iso, text: date.toLocaleString() });
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "\u2014";
    if (seconds < 1) return (seconds * 1000).toFixed(0) + " ms";
    if (seconds < 120) return seconds.toFixed(1) + " s";
    return (seconds / 60).toFixed(1) + " min";
  }

  function badge(status) {
    return el("span", { class: "status status-" + status, "data-status": status },
      (SYMBOLS[status] || "") + " " + status);
  }

  function notice(text, isError) {
    const node = $("notice");
    node.textContent = text;
    node.dataset.kind = isError ? "error" : "info";
  }

  async function getJSON(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { accept: "application/json" } });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || response.status + " " + response.statusText);
    return body;
  }

  async function act(url, question, button) {
    if (!window.confirm(question)) return;
    if (button) button.disabled = true;
    try {
      const response = await fetch(url, {
        method: "POST", credentials: "same-origin",
        headers: { "X-CSRF-Token": csrfToken, accept: "application/json" },
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(body.error || String(response.status));
      notice("Done: " + question.replace(/\?$/, ""), false);
    } catch (error) {
      notice("Refused: " + error.message, true);
    } finally {
      if (button) button.disabled = false;
    }
  }

  function actionButton(label, url, question, danger) {
    const button = el("button", { type: "button", class: danger ? "danger" : null, text: label });
    button.addEventListener("click", () => act(url, question, button));
    return button;
  }

  // -- stats ------------------------------------------------------------------
  function renderStats(stats) {
    const list = $("stats");
    const byStatus = Object.entries(stats.tasks_by_status || {})
      .map(([key, count]) => count + " " + key).join(", ") || "none";
    const items = [
      ["Jobs in flight", String(stats.active_jobs)],
      ["Pool", Math.round(stats.pool_utilization * 100) + "% of " + stats.pool_size],
      ["Tasks", byStatus],
      ["Next run", stats.next_run_at ? new Date(stats.next_run_at).toLocaleString() : "\u2014"],
      ["Jobs in history", String(stats.job_history_count)],
      ["Scheduler", stats.loop_alive ? "running" : "stopped"],
    ];
    list.replaceChildren(...items.map(([term, value]) =>
      el("div", {}, el("dt", { text: term }), el("dd", { text: value }))));
  }

  // -- tasks --------------------------------------------------------------------
  function taskRow(task) {
    const id = encodeURIComponent(task.id);
    const actions = el("td", { class: "actions" });
    if (!readOnly) {
      actions.append(actionButton("Run now", "tasks/" + id + "/run", "Run task " + task.name + " now?"));
      if (task.status === "paused") {
        actions.append(actionButton("Resume", "tasks/" + id + "/resume", "Resume task " + task.name + "?"));
      } else {
        actions.append(actionButton("Pause", "tasks/" + id + "/pause", "Pause task " + task.name + "?"));
      }
      actions.append(actionButton("Remove", "tasks/" + id + "/remove", "Remove task " + task.name + "?", true));
    }
    const schedule = el("td", { text: task.schedule + (task.timezone ? " (" + task.timezone + ")" : "") });
    return el("tr", { "data-task-id": task.id },
      el("th", { scope: "row", text: task.name }),
      schedule,
      el("td", {}, when(task.next_run_at)),
      el("td", {}, badge(task.status)),
      actions);
  }

  function putTask(task) {
    state.taskNames.set(task.id, task.name);
    const row = taskRow(task);
    const old = state.taskRows.get(task.id);
    if (old) old.replaceWith(row); else tasksBody.append(row);
    state.taskRows.set(task.id, row);
    $("tasks-empty").hidden = state.taskRows.size > 0;
  }

  function dropTask(taskId) {
    state.removed.add(taskId);
    const row = state.taskRows.get(taskId);
    if (row) row.remove();
    state.taskRows.delete(taskId);
    $("tasks-empty").hidden = state.taskRows.size > 0;
  }

  function renderTaskFilter() {
    const select = $("filter-task");
    const current = select.value;
    const options = [el("option", { value: "", text: "All tasks" })];
    const names = [...state.taskNames.entries()].sort((a, b) => a[1].localeCompare(b[1]));
    for (const [id, name] of names) options.push(el("option", { value: id, text: name }));
    select.replaceChildren(...options);
    select.value = state.taskNames.has(current) ? current : "";
  }

  // -- jobs ---------------------------------------------------------------------
  function progressCell(job) {
    const cell = el("td", { class: "progress-cell" });
    if (job.bar) {
      const pct = Math.round(job.bar.fraction * 100);
      cell.append(el("div", { class: "progress" },
        el("progress", { max: job.bar.total, value: job.bar.done, "aria-label": "Progress of " + job.task_name }),
        el("span", { class: "num", text: job.bar.done + " / " + job.bar.total + " (" + pct + "%)" })));
    } else if (job.progress) {
      cell.append(el("span", { class: "clip", text: job.progress }));
    } else {
      cell.append(el("span", { class: "muted", text: "\u2014" }));
    }
    return cell;
  }

  function outcomeCell(job) {
    const cell = el("td", { class: "clip" });
    if (job.error_message || job.error_type) {
      cell.append(el("span", { class: "error-type", text: job.error_message || job.error_type }));
    } else if (job.result !== null) {
      cell.append(el("code", { text: job.result }));
    } else {
      cell.append(el("span", { class: "muted", text: "\u2014" }));
    }
    return cell;
  }

  function jobRow(job) {
    const actions = el("td", { class: "actions" });
    if (!readOnly && IN_FLIGHT.has(job.status)) {
      actions.append(actionButton("Cancel", "jobs/" + encodeURIComponent(job.id) + "/cancel",
        "Cancel this job of " + job.task_name + "?", true));
    }
    const details = el("button", { type: "button", text: "Details", "aria-expanded": "false" });
    details.addEventListener("click", () => toggleDetail(job.id, details));
    actions.append(details);
    return el("tr", { "data-job-id": job.id, "data-status": job.status },
      el("th", { scope: "row", text: job.task_name }),
      el("td", {}, badge(job.status)),
      el("td", { class: "num", text: job.attempt }),
      el("td", {}, when(job.started_at)),
      el("td", { class: "num", text: duration(job.duration_seconds) }),
      progressCell(job),
      outcomeCell(job),
      actions);
  }

  async function toggleDetail(jobId, button) {
    const row = state.jobRows.get(jobId);
    if (!row) return;
    const next = row.nextElementSibling;
    if (next && next.classList.contains("detail")) {
      next.remove();
      button.setAttribute("aria-expanded", "false");
      return;
    }
    try {
      const { job } = await getJSON("api/jobs/" + encodeURIComponent(jobId));
      const parts = [el("h3", { text: "Job " + job.id })];
      if (job.progress) parts.push(el("h3", { text: "Last progress" }), el("pre", { text: job.progress }));
      if (job.result !== null) parts.push(el("h3", { text: "Result" }), el("pre", { text: job.result }));
      if (job.error_message) parts.push(el("h3", { text: "Error" }), el("pre", { text: job.error_message }));
      if (job.traceback) parts.push(el("h3", { text: "Traceback" }), el("pre", { text: job.traceback }));
      const live = state.jobRows.get(jobId);
      if (!live) return;
      live.after(el("tr", { class: "detail" }, el("td", { colspan: 8 }, ...parts)));
      button.setAttribute("aria-expanded", "true");
    } catch (error) {
      notice("Could not load the job: " + error.message, true);
    }
  }

  function matches(job) {
    if (state.status && job.status !== state.status) return false;
    if (state.taskId && job.task_id !== state.taskId) return false;
    if (state.window) {
      if (!job.started_at) return false;
      if (Date.parse(job.started_at) < Date.now() - Number(state.window) * 1000) return false;
    }
    return true;
  }

  function putJob(job) {
    const old = state.jobRows.get(job.id);
    if (old) {
      const row = jobRow(job);
      const detail = old.nextElementSibling;
      old.replaceWith(row);
      state.jobRows.set(job.id, row);
      if (detail && detail.classList.contains("detail")) {
        row.querySelector("button[aria-expanded]").setAttribute("aria-expanded", "true");
      }
      return;
    }
    if (state.offset !== 0 || !matches(job)) return;
    const row = jobRow(job);
    jobsBody.prepend(row);
    state.jobRows.set(job.id, row);
    while (state.jobRows.size > state.limit) {
      const [lastId, lastRow] = [...state.jobRows.entries()].pop();
      const detail = lastRow.nextElementSibling;
      if (detail && detail.classList.contains("detail")) detail.remove();
      lastRow.remove();
      state.jobRows.delete(lastId);
      state.hasMore = true;
    }
    renderPager();
  }

  function renderPager() {
    $("jobs-empty").hidden = state.jobRows.size > 0;
    $("page-newer").disabled = state.offset === 0;
    $("page-older").disabled = !state.hasMore;
    const first = state.jobRows.size ? state.offset + 1 : 0;
    $("page-info").textContent = "Jobs " + first + "\u2013" + (state.offset + state.jobRows.size);
  }

  async function loadJobs() {
    const generation = ++state.generation;
    const query = new URLSearchParams({ limit: String(state.limit), offset: String(state.offset) });
    if (state.status) query.set("status", state.status);
    if (state.taskId) query.set("task_id", state.taskId);
    if (state.window) query.set("window", state.window);
    const body = await getJSON("api/jobs?" + query);
    if (generation !== state.generation) return; // a newer load won
    jobsBody.replaceChildren();
    state.jobRows.clear();
    for (const job of body.jobs) {
      const row = jobRow(job);
      jobsBody.append(row);
      state.jobRows.set(job.id, row);
    }
    state.hasMore = body.has_more;
    renderPager();
  }

  async function loadTasks() {
    const body = await getJSON("api/tasks");
    tasksBody.replaceChildren();
    state.taskRows.clear();
    state.taskNames.clear();
    for (const task of body.tasks) putTask(task);
    $("tasks-empty").hidden = state.taskRows.size > 0;
    renderTaskFilter();
  }

  async function loadAll() {
    try {
      const [stats] = await Promise.all([getJSON("api/stats"), loadTasks(), loadJobs()]);
      renderStats(stats.stats);
    } catch (error) {
      notice("Could not load: " + error.message, true);
    }
  }

  // -- live updates ---------------------------------------------------------------
  function onMessage(message) {
    switch (message.type) {
      case "hello":
      case "reload":
        loadAll();
        break;
      case "stats":
        renderStats(message.stats);
        break;
      case "job":
        putJob(message.job);
        break;
      case "task":
        if (message.event === "task_removed") {
          dropTask(message.task.id);
          renderTaskFilter();
        } else if (!state.removed.has(message.task.id)) {
          const known = state.taskNames.has(message.task.id);
          putTask(message.task);
          if (!known) renderTaskFilter();
        }
        break;
    }
  }

  function connect() {
    const connection = $("connection");
    const source = new EventSource("events");
    source.addEventListener("open", () => {
      connection.dataset.state = "live";
      connection.textContent = "Live";
    });
    source.addEventListener("error", () => {
      connection.dataset.state = "connecting";
      connection.textContent = "Reconnecting\u2026";
    });
    source.addEventListener("message", (event) => onMessage(JSON.parse(event.data)));
  }

  // -- filters and paging ---------------------------------------------------------
  function onFilter() {
    state.status = $("filter-status").value;
    state.taskId = $("filter-task").value;
    state.window = $("filter-window").value;
    state.limit = Number($("filter-limit").value);
    state.offset = 0;
    loadJobs().catch((error) => notice("Could not load jobs: " + error.message, true));
  }

  $("filters").addEventListener("submit", (event) => event.preventDefault());
  $("filters").addEventListener("change", onFilter);
  $("page-newer").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - state.limit);
    loadJobs().catch((error) => notice(error.message, true));
  });
  $("page-older").addEventListener("click", () => {
    state.offset += state.limit;
    loadJobs().catch((error) => notice(error.message, true));
  });
  if (readOnly) document.body.classList.add("read-only");
  renderPager();
  connect();
})();
