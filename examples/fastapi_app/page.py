"""The example's single page: plain HTML and JavaScript, no build step."""

from __future__ import annotations

PAGE = """\
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>quiv example</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
  h1 { margin-bottom: .2rem; } .sub { color: #666; margin-top: 0; }
  button { margin: .2rem .3rem .2rem 0; padding: .4rem .8rem; cursor: pointer; }
  table { border-collapse: collapse; width: 100%; margin-top: 1rem; }
  th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #ddd; }
  td.id { font-family: monospace; font-size: .85rem; }
  progress { width: 12rem; }
  .running { color: #0a58ca; } .completed { color: #198754; }
  .cancelled { color: #996c00; } .failed { color: #dc3545; } .scheduled { color: #666; }
  #notes { font-size: .9rem; color: #555; min-height: 1.2rem; }
  #socket { font-size: .8rem; color: #888; }
  h2 { font-size: 1.1rem; margin: 1.5rem 0 0; }
  td.runs { white-space: pre-line; font-size: .9rem; }
</style>
</head>
<body>
<h1>quiv example</h1>
<p class="sub">Background jobs with live progress, cancellation and statuses.
  <a href="quiv/">Open the dashboard</a>.
  <span id="socket">connecting&hellip;</span></p>
<div>
  <button id="heartbeat-start">Start heartbeat (every 5 s)</button>
  <button id="heartbeat-stop" disabled>Stop heartbeat</button>
  <button id="download">Start a download</button>
  <button id="report">Build a report (async handler)</button>
</div>
<p id="notes"></p>
<h2>Schedules</h2>
<table>
  <thead><tr><th>task</th><th>schedule</th><th>status</th><th>next runs (UTC)</th></tr></thead>
  <tbody id="tasks"></tbody>
</table>
<h2>Jobs</h2>
<table>
  <thead><tr><th>job</th><th>task</th><th>status</th><th>progress</th><th>result</th><th></th></tr></thead>
  <tbody id="jobs"></tbody>
</table>
<script>
"use strict";
const rows = new Map();   // job id -> table row
let heartbeatTask = null;

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: {"content-type": "application/json"},
    body: JSON.stringify(body || {}),
  });
  return response.json();
}

function row(jobId, taskName) {
  let tr = rows.get(jobId);
  if (!tr) {
    tr = document.createElement("tr");
    tr.innerHTML = '<td class="id"></td><td></td><td></td>' +
      '<td><progress max="1" value="0"></progress></td><td class="result"></td><td></td>';
    tr.cells[0].textContent = jobId.slice(0, 8);
    tr.cells[0].title = jobId;
    const cancel = document.createElement("button");
    cancel.textContent = "Cancel";
    cancel.onclick = () => post(`/jobs/${jobId}/cancel`);
    tr.cells[5].appendChild(cancel);
    document.getElementById("jobs").prepend(tr);
    rows.set(jobId, tr);
  }
  if (taskName) tr.cells[1].textContent = taskName;
  return tr;
}

function showJob(job) {
  const tr = row(job.id, job.task_name);
  tr.cells[2].textContent = job.status;
  tr.cells[2].className = job.status;
  if (job.error_message) tr.cells[2].title = job.error_message;
  tr.cells[5].firstChild.hidden = !(job.status === "running" || job.status === "scheduled");
  if (job.status === "completed") {
    const bar = tr.cells[3].firstChild;
    bar.value = bar.max;
    if (job.result !== null && job.result !== undefined) {  // what the handler returned
      tr.cells[4].textContent = JSON.stringify(job.result);
    }
  }
}

function showProgress(message) {
  const tr = row(message.job_id, message.task);
  const bar = tr.cells[3].firstChild;
  bar.max = message.total;
  bar.value = message.done;
  bar.title = `${message.done} / ${message.total}`;
}

function utc(iso) {  // "2025-06-01T02:30:00+00:00" -> "2025-06-01 02:30:00"
  return iso.slice(0, 19).replace("T", " ");
}

async function loadTasks() {
  const tasks = await (await fetch("/tasks")).json();
  const body = document.getElementById("tasks");
  body.replaceChildren();
  for (const task of tasks.filter((t) => !t.run_once)) {  // the recurring ones
    const tr = document.createElement("tr");
    const runs = task.next_runs.map(utc).join("\\n");
    for (const text of [task.task_name, task.description, task.status, runs]) {
      tr.appendChild(document.createElement("td")).textContent = text;
    }
    tr.cells[3].className = "runs";
    tr.cells[3].title = task.next_runs.map((run) => new Date(run).toLocaleString()).join("\\n");
    body.appendChild(tr);
  }
}

async function loadJobs() {
  const jobs = await (await fetch("/jobs")).json();
  jobs.reverse().forEach(showJob);
}

function connect() {
  const socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  const state = document.getElementById("socket");
  socket.onopen = () => { state.textContent = "live"; loadJobs(); loadTasks(); };
  socket.onclose = () => { state.textContent = "disconnected, retrying"; setTimeout(connect, 1000); };
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "progress") showProgress(message);
    else if (message.type === "job") { showJob(message.job); loadTasks(); }
    else if (message.type === "note") document.getElementById("notes").textContent = message.text;
  };
}

document.getElementById("heartbeat-start").onclick = async () => {
  heartbeatTask = (await post("/heartbeat", {interval: 5})).task_id;
  document.getElementById("heartbeat-start").disabled = true;
  document.getElementById("heartbeat-stop").disabled = false;
  loadTasks();
};
document.getElementById("heartbeat-stop").onclick = async () => {
  await fetch(`/tasks/${heartbeatTask}`, {method: "DELETE"});
  document.getElementById("heartbeat-start").disabled = false;
  document.getElementById("heartbeat-stop").disabled = true;
  loadTasks();
};
document.getElementById("download").onclick = () =>
  post("/downloads", {media_id: Math.floor(Math.random() * 1000)});
document.getElementById("report").onclick = () => post("/reports", {});
connect();
</script>
</body>
</html>
"""
