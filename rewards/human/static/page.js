// The labeling page of textenv. Every text from the server is inserted with textContent (never as HTML),
// so a completion holding markup shows as text, and in an element of its own direction (dir="auto" or a
// <bdi>), so bidi controls in it cannot reorder the page's own words. The page says "saved" only after the
// server's answer, which comes after the label is committed to disk.
"use strict";

const DIMENSIONS = ["coherence", "creativity", "relevance", "fluency"];
const $ = (id) => document.getElementById(id);
let annotator = "";
let task = null;
let busy = false;

// A token given in the address (?token=...) was turned into a cookie by the server: drop it from the address bar.
if (new URLSearchParams(window.location.search).has("token")) {
  window.history.replaceState(null, "", window.location.pathname);
}

// detail: text that may come from users or models (the server's error detail), isolated in a <bdi>.
function setStatus(text, kind, detail) {
  const status = $("status");
  status.textContent = text;
  if (detail) {
    const isolated = document.createElement("bdi");
    isolated.textContent = detail;
    status.appendChild(isolated);
  }
  status.className = kind || "";
}

function buildRatings(side) {
  const box = $("ratings-" + side);
  for (const dim of DIMENSIONS) {
    const row = document.createElement("div");
    row.className = "row";
    const name = document.createElement("span");
    name.textContent = dim;
    row.appendChild(name);
    for (let value = 1; value <= 5; value++) {
      const label = document.createElement("label");
      const input = document.createElement("input");
      input.type = "radio";
      input.name = side + "-" + dim;
      input.value = String(value);
      input.id = "rate-" + side + "-" + dim + "-" + value;
      label.appendChild(input);
      label.appendChild(document.createTextNode(String(value)));
      row.appendChild(label);
    }
    box.appendChild(row);
  }
  const clear = document.createElement("button");
  clear.type = "button";
  clear.textContent = "clear ratings";
  clear.addEventListener("click", () => clearRatings(side));
  box.appendChild(clear);
}

function clearRatings(side) {
  for (const input of $("ratings-" + side).querySelectorAll("input[type=radio]")) input.checked = false;
}

// null when nothing is rated; an object when all four are; an Error when only some are.
function readRatings(side) {
  const ratings = {};
  let count = 0;
  for (const dim of DIMENSIONS) {
    const checked = document.querySelector("input[name='" + side + "-" + dim + "']:checked");
    if (checked) {
      ratings[dim] = Number(checked.value);
      count++;
    }
  }
  if (count === 0) return null;
  if (count < DIMENSIONS.length) return new Error("rate all four dimensions of " + side.toUpperCase() + ", or clear them");
  return ratings;
}

function render(state) {
  task = state.task;
  const progress = state.progress;
  $("progress").textContent = progress.labeled + " / " + progress.total + " labeled";
  $("undo").disabled = !state.can_undo;
  $("start").hidden = true;
  $("done").hidden = task !== null;
  $("work").hidden = task === null;
  if (task === null) return;
  $("prompt").textContent = task.prompt;
  $("text-a").textContent = task.a;
  $("text-b").textContent = task.b;
  $("note").value = "";
  clearRatings("a");
  clearRatings("b");
}

async function call(method, path, body) {
  const options = { method: method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  let data = null;
  try {
    data = await response.json();
  } catch (err) {
    data = null;
  }
  if (!response.ok) {
    let detail = data && data.detail !== undefined ? data.detail : response.statusText;
    if (typeof detail !== "string") detail = JSON.stringify(detail);
    const error = new Error(response.status + ": ");
    error.status = response.status;
    error.detail = detail;
    throw error;
  }
  return data;
}

async function loadNext() {
  if (!annotator) return;
  setStatus("loading…", "busy");
  try {
    render(await call("GET", "/api/next?annotator=" + encodeURIComponent(annotator)));
    setStatus("", "");
  } catch (err) {
    setStatus("could not load the next task: " + err.message, "error", err.detail);
  }
}

async function submit(choice) {
  if (busy || task === null) return;
  const ratingsA = readRatings("a");
  const ratingsB = readRatings("b");
  for (const r of [ratingsA, ratingsB]) {
    if (r instanceof Error) {
      setStatus(r.message, "error");
      return;
    }
  }
  busy = true;
  setStatus("saving…", "busy");
  try {
    const state = await call("POST", "/api/labels", {
      annotator: annotator,
      task_id: task.id,
      shown: task.shown,
      choice: choice,
      ratings_a: choice === "skip" ? null : ratingsA,
      ratings_b: choice === "skip" ? null : ratingsB,
      note: $("note").value,
    });
    render(state);
    setStatus("saved", "ok");
  } catch (err) {
    if (err.status === 409) {
      // labeled meanwhile (another tab, the terminal): show the task that is really next
      try {
        render(await call("GET", "/api/next?annotator=" + encodeURIComponent(annotator)));
      } catch (ignored) {
        // the message below says what happened; the next action reloads
      }
    }
    setStatus("NOT saved: " + err.message, "error", err.detail);
  } finally {
    busy = false;
  }
}

async function undo() {
  if (busy || !annotator) return;
  busy = true;
  setStatus("undoing…", "busy");
  try {
    const state = await call("POST", "/api/undo", { annotator: annotator });
    render(state);
    setStatus(state.undone === null ? "nothing to undo" : "undone", "ok");
  } catch (err) {
    setStatus("NOT undone: " + err.message, "error", err.detail);
  } finally {
    busy = false;
  }
}

function start() {
  const value = $("annotator").value.trim();
  if (!value || value === annotator) return;
  annotator = value;
  try {
    window.localStorage.setItem("textenv-annotator", annotator);
  } catch (err) {
    // private browsing: the id is not remembered, which is fine
  }
  loadNext();
}

const KEYS = { "1": "A", a: "A", "2": "B", b: "B", "3": "tie", t: "tie", s: "skip" };

document.addEventListener("keydown", (event) => {
  const target = event.target;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (target && (target.tagName === "INPUT" && target.type !== "radio" || target.tagName === "TEXTAREA")) return;
  const key = event.key.toLowerCase();
  if (key in KEYS && !$("work").hidden) {
    event.preventDefault();
    submit(KEYS[key]);
  } else if (key === "u" && annotator) {
    event.preventDefault();
    undo();
  }
});

window.addEventListener("DOMContentLoaded", () => {
  buildRatings("a");
  buildRatings("b");
  $("choose-a").addEventListener("click", () => submit("A"));
  $("choose-b").addEventListener("click", () => submit("B"));
  $("choose-tie").addEventListener("click", () => submit("tie"));
  $("choose-skip").addEventListener("click", () => submit("skip"));
  $("undo").addEventListener("click", undo);
  const input = $("annotator");
  input.addEventListener("change", start);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") start();
  });
  let saved = null;
  try {
    saved = window.localStorage.getItem("textenv-annotator");
  } catch (err) {
    saved = null;
  }
  if (saved) {
    input.value = saved;
    start();
  }
});
