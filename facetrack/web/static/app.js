// The review page's actions: pick, confirm, then the page's own JSON API (POST with the page's CSRF token).
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]').content;

async function api(method, url, body) {
  const response = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({error: `${response.status} ${response.statusText}`}));
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

const $ = (id) => document.getElementById(id);
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

function flash(text, link) {
  const box = $("flash");
  box.textContent = text;
  if (link) {
    const a = document.createElement("a");
    a.href = link.href;
    a.textContent = link.text;
    box.append(" ", a);
  }
  box.hidden = false;
}

const pending = sessionStorage.getItem("facetrack-flash");
if (pending) {
  sessionStorage.removeItem("facetrack-flash");
  const {text, link} = JSON.parse(pending);
  flash(text, link);
}

const dialog = $("act");
let current = null; // {action, identity, sightings, target, targetNamed, template}

function show(step) {
  $("act-pick").hidden = step !== "pick";
  $("act-confirm").hidden = step !== "confirm";
  $("act-next").hidden = step !== "pick";
  $("act-back").hidden = step !== "confirm" || current.action === "forget" || current.action === "remove-template";
  $("act-ok").hidden = step !== "confirm";
  $("act-error").hidden = true;
}

function fillChoices(filter) {
  const box = $("act-choices");
  box.replaceChildren();
  const template = $("people-choices");
  if (!template) return;
  for (const node of template.content.querySelectorAll(".choice")) {
    if (node.dataset.identity === current.identity || !filter(node)) continue;
    const choice = node.cloneNode(true);
    choice.addEventListener("click", () => {
      for (const other of box.querySelectorAll(".choice")) other.classList.remove("picked");
      choice.classList.add("picked");
      current.target = choice.dataset.identity;
      current.targetNamed = choice.dataset.named === "1";
      $("act-name").value = "";
    });
    box.append(choice);
  }
  if (!box.children.length) {
    const none = document.createElement("p");
    none.className = "empty";
    none.textContent = filter === named ? "Nobody is named yet." : "Nobody else to pick.";
    box.append(none);
  }
}

const named = (node) => node.dataset.named === "1";
const anyone = () => true;

function open(action, identity, sightings, template) {
  current = {action, identity, sightings, target: null, targetNamed: false, template};
  $("act-name").value = "";
  $("act-new").hidden = action !== "name";
  if (action === "name") {
    $("act-title").textContent = `Name ${identity}`;
    $("act-pick-help").textContent = "Pick a person already known, or type a new name.";
    fillChoices(named);
    show("pick");
  } else if (action === "merge") {
    $("act-title").textContent = `Merge ${identity} into…`;
    $("act-pick-help").textContent = `Who else is ${identity}? Their sightings go together.`;
    fillChoices(anyone);
    show("pick");
  } else if (action === "remove-template") {
    $("act-title").textContent = `Remove a template of ${identity}`;
    askConfirm();
  } else {
    $("act-title").textContent = `Forget ${identity}`;
    askConfirm();
  }
  dialog.showModal();
  if (action === "name") $("act-name").focus();
}

function fail(text) {
  const box = $("act-error");
  box.textContent = text;
  box.hidden = false;
}

function askConfirm() {
  const {action, identity, sightings} = current;
  const what = plural(sightings, "sighting");
  let question;
  if (action === "name") {
    const typed = $("act-name").value.trim();
    if (typed) {
      current.target = typed;
      current.targetNamed = false;
    }
    if (!current.target) return fail("Pick a person or type a name.");
    question = current.targetNamed
      ? `${identity} is ${current.target}: ${what} and the templates of ${identity} join ${current.target}.`
      : `${identity} becomes ${current.target}, with ${what}; later runs with this store name them.`;
    $("act-ok").textContent = "Name";
  } else if (action === "merge") {
    if (!current.target) return fail("Pick who else this is.");
    question = `${identity} and ${current.target} are one person: ${what} of ${identity} go to ` +
      `${current.target}, and ${identity} is no more.`;
    $("act-ok").textContent = "Merge";
  } else if (action === "remove-template") {
    question = `Remove this template of ${identity}: new tracks are no longer matched against it (the sighting ` +
      "it came from stays).";
    $("act-ok").textContent = "Remove";
  } else {
    question = `Erase ${identity} for good: ${what}, the face crops and templates; nothing of them stays in ` +
      "the store.";
    $("act-ok").textContent = "Forget";
  }
  $("act-question").textContent = question;
  show("confirm");
}

async function commit() {
  const {action, identity, target} = current;
  const who = encodeURIComponent(identity);
  $("act-ok").disabled = true;
  try {
    let text;
    let next = null;
    if (action === "name" || action === "merge") {
      const done = action === "name"
        ? await api("POST", `/api/strangers/${who}/name`, {name: target})
        : await api("POST", `/api/strangers/${who}/merge`, {into: target});
      text = action === "name"
        ? `${identity} is now ${done.identity} (${plural(done.sightings, "sighting")}).`
        : `${identity} merged into ${done.identity} (${plural(done.sightings_moved, "sighting")} moved).`;
      next = `/people/${encodeURIComponent(done.identity)}`;
    } else if (action === "remove-template") {
      const done = await api("POST", `/api/people/${who}/templates/${current.template}/remove`, undefined);
      text = `Removed a template of ${done.identity} (${plural(done.templates, "template")} left).`;
      next = location.pathname;
    } else {
      const done = await api("POST", `/api/people/${who}/forget`, undefined);
      text = `Forgot ${identity}: ${plural(done.sightings, "sighting")} erased.`;
      next = "/";
    }
    const link = action === "forget" || action === "remove-template" ? null : {href: next, text: `${target}'s page`};
    sessionStorage.setItem("facetrack-flash", JSON.stringify({text, link}));
    dialog.close();
    // Reviewing goes on where it is; from a person's page, to where that person now is.
    if (location.pathname.startsWith("/people/")) location.assign(next);
    else location.reload();
  } catch (error) {
    fail(error.message);
  } finally {
    $("act-ok").disabled = false;
  }
}

// Ignoring destroys nothing: no confirm step, undone with the same button.
async function ignore(button) {
  const {identity} = button.dataset;
  const on = button.dataset.ignored !== "1";
  button.disabled = true;
  try {
    await api("POST", `/api/people/${encodeURIComponent(identity)}/ignore`, {ignored: on});
    sessionStorage.setItem("facetrack-flash", JSON.stringify({
      text: on ? `${identity} is ignored: still recognised, never alerted.` : `${identity} is no longer ignored.`,
      link: null}));
    location.reload();
  } catch (error) {
    flash(error.message);
    button.disabled = false;
  }
}

for (const button of document.querySelectorAll("[data-action]")) {
  button.addEventListener("click", () => {
    if (button.dataset.action === "ignore") return ignore(button);
    open(button.dataset.action, button.dataset.identity, Number(button.dataset.sightings || 0),
      button.dataset.template);
  });
}
$("act-next").addEventListener("click", askConfirm);
$("act-back").addEventListener("click", () => show("pick"));
$("act-cancel").addEventListener("click", () => dialog.close());
$("act-ok").addEventListener("click", commit);
$("act-name").addEventListener("input", () => {
  current.target = null;
  for (const other of $("act-choices").querySelectorAll(".choice")) other.classList.remove("picked");
});
$("act-form").addEventListener("submit", (event) => {
  event.preventDefault();
  if (!$("act-pick").hidden) askConfirm();
});

const enrolForm = $("enrol");
if (enrolForm) {
  enrolForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = $("enrol-error");
    error.hidden = true;
    $("enrol-send").disabled = true;
    try {
      const response = await fetch("/api/gallery", {
        method: "POST", credentials: "same-origin", headers: {"X-CSRF-Token": csrf}, body: new FormData(enrolForm),
      });
      const data = await response.json().catch(() => ({error: `${response.status} ${response.statusText}`}));
      if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
      sessionStorage.setItem("facetrack-flash", JSON.stringify({
        text: `${data.name}: ${plural(data.added, "photo")} enrolled, ${plural(data.templates, "template")} ` +
          "in the gallery.", link: null}));
      location.reload();
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
    } finally {
      $("enrol-send").disabled = false;
    }
  });
}

// Live tiles: each camera's newest picture, a few times a second, while the page is visible.
const tiles = document.querySelectorAll(".tile");
if (tiles.length) {
  const refresh = async () => {
    if (document.hidden) return;
    try {
      const state = await api("GET", "/api/live");
      for (const camera of state.cameras) {
        const tile = document.querySelector(`.tile[data-camera="${CSS.escape(camera.camera)}"]`);
        if (!tile || !camera.tile) continue;
        tile.querySelector("img").src = `${camera.tile}?t=${Date.now()}`;
        tile.querySelector(".age").textContent = camera.age_s < 2 ? "live" : `${camera.age_s.toFixed(0)} s ago`;
      }
    } catch (error) {
      for (const tile of tiles) tile.querySelector(".age").textContent = error.message;
    }
  };
  refresh();
  setInterval(refresh, 500);
}
