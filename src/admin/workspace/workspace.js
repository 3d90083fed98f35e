// The careline agent workspace: one agent's status, their call, callbacks, voicemails and
// unlocking a patient, kept live from the admin API.
//
// Served as is by GET /agent/workspace.js: no framework, no build step. Everything comes from
// /api/v1/me, /api/v1/agents/{id}/workspace, /api/v1/callbacks and /api/v1/voicemails;
// /api/v1/events only says when to fetch again. Every value from the API is put on the page as
// text, never as markup. Voicemail audio is fetched with the token and played from a blob: URL
// (an <audio> element cannot send a bearer header); the token itself stays in this tab's
// session storage.
"use strict";

/** Where the token is kept: this tab only, gone when it closes. */
const TOKEN_KEY = "careline.agent.token";
/** Events arriving within this many milliseconds of each other cause one refetch. */
const REFRESH_DEBOUNCE_MS = 200;
/** Refetch this often even without events, in case one was missed. */
const SAFETY_REFRESH_MS = 10000;
/** First and longest pause before trying again after the server could not be reached. */
const RETRY_FIRST_MS = 1000;
const RETRY_LONGEST_MS = 30000;

/** How each agent state reads. */
const STATE_LABELS = {
  available: "Available",
  reserved: "Ringing",
  on_call: "On call",
  wrap_up: "Wrap-up",
  break: "On break",
  offline: "Offline",
};
const IDENTITY_LABELS = {
  verified: "Verified",
  failed: "Verification failed: verify in person",
  not_attempted: "Not verified",
};
const OUTCOME_LABELS = {
  connected: "connected",
  no_answer: "no answer",
  busy: "busy",
  failed: "call failed",
  machine: "answering machine",
  no_response: "no response",
  agent_missed: "agent missed",
  rest_error: "could not be placed",
  lost: "lost",
};
const CALLBACK_STATUS_LABELS = { pending: "pending", done: "done", failed: "failed" };

const desk = {
  agentId: null,
  view: null,
  callbacks: [],
  voicemails: [],
  /** Date.now() when the data on the page was fetched: times tick on from here. */
  fetchedAt: 0,
  events: null,
  retryMs: RETRY_FIRST_MS,
  retryTimer: null,
  refreshTimer: null,
  refreshing: false,
  refreshAgain: false,
  askingForToken: false,
  started: false,
  /** Voicemail id → its list item, kept across refreshes so playback is never cut off. */
  voicemailItems: new Map(),
  /** The patient reference waiting for "Yes, unlock". */
  pendingUnlock: null,
};

class Unauthorized extends Error {}

function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function headers(extra) {
  const all = Object.assign({ Accept: "application/json" }, extra || {});
  const token = storedToken();
  if (token) {
    all.Authorization = "Bearer " + token;
  }
  return all;
}

/** A request to the API; the answer's JSON. 401 and 403 throw Unauthorized. */
async function api(method, path, body) {
  const init = { method, headers: headers(), cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 401 || (response.status === 403 && method === "GET")) {
    throw new Unauthorized(path);
  }
  let answer = null;
  try {
    answer = await response.json();
  } catch (_) {
    // Not JSON: the status says enough.
  }
  if (!response.ok) {
    throw new Error((answer && answer.error) || path + " answered " + response.status);
  }
  return answer;
}

// ---- start: who is this, and whose workspace ----

async function start() {
  if (desk.askingForToken) {
    return;
  }
  try {
    const me = await api("GET", "api/v1/me");
    const asked = new URLSearchParams(location.search).get("agent");
    if (me.role === "agent") {
      if (asked && asked !== me.agent_id) {
        showProblem("This token belongs to agent " + me.agent_id + "; showing their workspace.");
      }
      desk.agentId = me.agent_id;
    } else if (me.role === "supervisor") {
      if (!asked) {
        await showAgentPicker();
        return;
      }
      desk.agentId = asked;
    } else {
      showProblem("A viewer token cannot open an agent's workspace: sign in with an agent or supervisor token.");
      askForToken(false);
      return;
    }
    desk.started = true;
    document.getElementById("workspace").hidden = false;
    await refresh();
  } catch (error) {
    handleFailure(error, start);
  }
}

async function showAgentPicker() {
  const agents = await api("GET", "api/v1/agents");
  const links = agents.map((agent) => {
    const item = element("li");
    const link = element("a", { href: "agent?agent=" + encodeURIComponent(agent.id) }, agent.name);
    item.append(link);
    return item;
  });
  document.getElementById("agent-links").replaceChildren(...links);
  document.getElementById("agent-picker").hidden = false;
  setConnection("live");
}

function handleFailure(error, again) {
  if (error instanceof Unauthorized) {
    askForToken(true);
  } else {
    showProblem("careline cannot be read right now (" + error.message + "); trying again.");
    setConnection("reconnecting");
    retryLater(again);
  }
}

// ---- fetching ----

/** Fetch everything and redraw; one fetch at a time, a request meanwhile runs after. */
async function refresh() {
  if (desk.askingForToken || !desk.started) {
    return;
  }
  if (desk.refreshing) {
    desk.refreshAgain = true;
    return;
  }
  desk.refreshing = true;
  try {
    const [view, callbacks, voicemails] = await Promise.all([
      api("GET", "api/v1/agents/" + encodeURIComponent(desk.agentId) + "/workspace"),
      api("GET", "api/v1/callbacks"),
      api("GET", "api/v1/voicemails"),
    ]);
    desk.view = view;
    desk.callbacks = callbacks;
    desk.voicemails = voicemails;
    desk.fetchedAt = Date.now();
    desk.retryMs = RETRY_FIRST_MS;
    render();
    showProblem(null);
    openEvents();
  } catch (error) {
    handleFailure(error, refresh);
  } finally {
    desk.refreshing = false;
    if (desk.refreshAgain) {
      desk.refreshAgain = false;
      scheduleRefresh();
    }
  }
}

function scheduleRefresh() {
  if (desk.refreshTimer !== null) {
    return;
  }
  desk.refreshTimer = setTimeout(() => {
    desk.refreshTimer = null;
    refresh();
  }, REFRESH_DEBOUNCE_MS);
}

function retryLater(again) {
  if (desk.retryTimer !== null) {
    return;
  }
  desk.retryTimer = setTimeout(() => {
    desk.retryTimer = null;
    again();
  }, desk.retryMs);
  desk.retryMs = Math.min(desk.retryMs * 2, RETRY_LONGEST_MS);
}

function openEvents() {
  if (desk.events !== null || desk.askingForToken) {
    return;
  }
  const token = storedToken();
  const source = new EventSource("api/v1/events" + (token ? "?token=" + encodeURIComponent(token) : ""));
  desk.events = source;
  source.addEventListener("ready", () => {
    setConnection("live");
    scheduleRefresh();
  });
  source.addEventListener("change", scheduleRefresh);
  source.addEventListener("resync", scheduleRefresh);
  source.addEventListener("error", () => {
    setConnection("reconnecting");
    if (source.readyState === EventSource.CLOSED) {
      closeEvents();
      retryLater(refresh);
    }
  });
}

function closeEvents() {
  if (desk.events !== null) {
    desk.events.close();
    desk.events = null;
  }
}

// ---- actions ----

async function setStatus(status) {
  try {
    await api("PUT", "api/v1/agents/" + encodeURIComponent(desk.agentId) + "/status", { status });
    showProblem(null);
  } catch (error) {
    showProblem("Your status could not be changed (" + error.message + ").");
  }
  refresh();
}

async function callbackDone(id) {
  try {
    await api("POST", "api/v1/callbacks/" + encodeURIComponent(id) + "/done");
  } catch (error) {
    showProblem("The callback could not be marked done (" + error.message + ").");
  }
  refresh();
}

/** Fetch a voicemail's audio with the token and play it from a blob: URL. */
async function playVoicemail(voicemail, audio, button) {
  button.disabled = true;
  try {
    if (!audio.dataset.loaded) {
      const response = await fetch(voicemail.audio_url.replace(/^\//, ""), {
        headers: headers({ Accept: "audio/wav" }),
        cache: "no-store",
      });
      if (!response.ok) {
        throw new Error("the audio answered " + response.status);
      }
      const blob = await response.blob();
      audio.src = URL.createObjectURL(blob);
      audio.dataset.loaded = "true";
      audio.hidden = false;
    }
    // Playback may be refused without a gesture the browser trusts; the controls still work.
    audio.play().catch(() => {});
  } catch (error) {
    showProblem("The voicemail could not be played (" + error.message + ").");
  } finally {
    button.disabled = false;
  }
}

async function voicemailHandled(id) {
  try {
    await api("POST", "api/v1/voicemails/" + encodeURIComponent(id) + "/handled");
  } catch (error) {
    showProblem("The voicemail could not be marked handled (" + error.message + ").");
  }
  refresh();
}

function askToUnlock(event) {
  event.preventDefault();
  const input = document.getElementById("unlock-ref");
  const patientRef = input.value.trim();
  if (patientRef === "") {
    return;
  }
  desk.pendingUnlock = patientRef;
  document.getElementById("unlock-question").textContent =
    "Unlock self-service for patient " + patientRef + "? Only after you have verified the caller.";
  document.getElementById("unlock-confirm").hidden = false;
  document.getElementById("unlock-result").hidden = true;
}

async function confirmUnlock() {
  const patientRef = desk.pendingUnlock;
  desk.pendingUnlock = null;
  document.getElementById("unlock-confirm").hidden = true;
  if (!patientRef) {
    return;
  }
  const result = document.getElementById("unlock-result");
  try {
    await api("POST", "api/v1/patients/" + encodeURIComponent(patientRef) + "/unlock");
    result.textContent = "Lockout cleared for patient " + patientRef + ".";
    result.dataset.ok = "true";
    document.getElementById("unlock-ref").value = "";
  } catch (error) {
    result.textContent = "The lockout could not be cleared (" + error.message + ").";
    result.dataset.ok = "false";
  }
  result.hidden = false;
}

function cancelUnlock() {
  desk.pendingUnlock = null;
  document.getElementById("unlock-confirm").hidden = true;
}

// ---- the token ----

function askForToken(rejected) {
  closeEvents();
  const hadToken = storedToken() !== null;
  sessionStorage.removeItem(TOKEN_KEY);
  desk.askingForToken = true;
  desk.started = false;
  setConnection("connecting");
  document.getElementById("token-error").hidden = !(rejected && hadToken);
  document.getElementById("token-overlay").hidden = false;
  document.getElementById("token").focus();
}

function tokenEntered(event) {
  event.preventDefault();
  const input = document.getElementById("token");
  const token = input.value.trim();
  if (token === "") {
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  input.value = "";
  document.getElementById("token-overlay").hidden = true;
  desk.askingForToken = false;
  start();
}

// ---- drawing ----

function element(tag, attributes, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    node.setAttribute(name, value);
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function setConnection(state) {
  const badge = document.getElementById("connection");
  badge.dataset.state = state;
  badge.textContent = { live: "live", reconnecting: "reconnecting…", connecting: "connecting…" }[state];
}

function showProblem(text) {
  const problem = document.getElementById("problem");
  problem.hidden = text === null;
  problem.textContent = text || "";
}

function duration(secs) {
  const s = Math.max(0, Math.floor(secs));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const seconds = String(s % 60).padStart(2, "0");
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, "0")}:${seconds}` : `${minutes}:${seconds}`;
}

function when(ms) {
  return new Date(ms).toLocaleString([], { dateStyle: "short", timeStyle: "short" });
}

/** What the agent is doing, else what they said about themselves. */
function agentState(agent) {
  return agent.state === "idle" ? agent.status : agent.state;
}

function render() {
  renderAgent();
  renderCall();
  renderCallbacks();
  renderVoicemails();
  tick();
}

function renderAgent() {
  const agent = desk.view.agent;
  document.getElementById("agent-name").textContent = agent.name;
  const state = agentState(agent);
  const badge = document.getElementById("state");
  badge.dataset.state = state;
  badge.textContent = STATE_LABELS[state] || state;
  const time = document.getElementById("time-in-state");
  time.dataset.baseSecs = agent.time_in_state_secs == null ? "" : String(agent.time_in_state_secs);
  const wrapUp = document.getElementById("wrap-up");
  wrapUp.hidden = agent.wrap_up_left_secs == null;
  wrapUp.dataset.leftSecs = agent.wrap_up_left_secs == null ? "" : String(agent.wrap_up_left_secs);
  document.getElementById("shift").textContent =
    (agent.on_shift ? "On shift" : "Off shift") + " · " + agent.calls_today + " calls today";
  for (const button of document.querySelectorAll("[data-status]")) {
    button.setAttribute("aria-pressed", String(button.dataset.status === agent.status));
  }
}

function renderCall() {
  const call = desk.view.call;
  const panel = document.getElementById("call");
  panel.dataset.kind = call ? call.kind : "none";
  document.getElementById("no-call").hidden = call !== null;
  document.getElementById("call-details").hidden = call === null;
  if (!call) {
    return;
  }
  const field = (name) => panel.querySelector(`[data-field="${name}"]`);
  field("call-kind").textContent = call.kind === "callback" ? "Callback: careline is calling the patient back" : "Incoming call";
  field("call-state").textContent = call.state === "ringing" ? (call.kind === "callback" ? "calling" : "ringing") : "on call";
  field("call-queue").textContent = call.queue || "—";
  field("call-waited").textContent = call.waited_secs == null ? "—" : duration(call.waited_secs);
  field("call-caller").textContent = call.caller_id || "withheld";
  const path = field("call-path");
  if (call.path.length === 0) {
    path.replaceChildren(element("li", { class: "quiet" }, call.kind === "callback" ? "a callback request" : "—"));
  } else {
    path.replaceChildren(...call.path.map((node) => element("li", {}, node)));
  }
  const identity = field("call-identity");
  identity.dataset.identity = call.identity;
  identity.textContent =
    IDENTITY_LABELS[call.identity] + (call.patient_ref ? " · patient " + call.patient_ref : "");
}

function attemptLine(attempt) {
  const outcome = attempt.outcome ? OUTCOME_LABELS[attempt.outcome] || attempt.outcome : "calling…";
  return `#${attempt.number} ${outcome} (${attempt.agent_id}, ${when(attempt.started_at_ms)})`;
}

function renderCallbacks() {
  const rows = desk.callbacks.map((request) => {
    const row = element("tr", { "data-callback": request.id, "data-status": request.status });
    row.append(element("td", { class: "when" }, when(request.due_at_ms)));
    row.append(element("td", {}, request.queue));
    row.append(element("td", {}, request.number));
    row.append(
      element(
        "td",
        {},
        IDENTITY_LABELS[request.identity] + (request.patient_ref ? " · " + request.patient_ref : ""),
      ),
    );
    const status = request.in_progress ? "calling now" : CALLBACK_STATUS_LABELS[request.status] || request.status;
    row.append(element("td", { class: "status" }, status));
    const attempts = element("ul", { class: "attempts" });
    for (const attempt of request.attempts) {
      attempts.append(element("li", { "data-outcome": attempt.outcome || "in_progress" }, attemptLine(attempt)));
    }
    const attemptsCell = element("td");
    attemptsCell.append(attempts.childElementCount > 0 ? attempts : element("span", { class: "quiet" }, "none yet"));
    row.append(attemptsCell);
    const actions = element("td");
    if (request.status !== "done") {
      const button = element("button", { type: "button", "data-action": "callback-done" }, "Mark done");
      button.addEventListener("click", () => callbackDone(request.id));
      actions.append(button);
    }
    row.append(actions);
    return row;
  });
  document.querySelector("#callbacks tbody").replaceChildren(...rows);
  document.getElementById("no-callbacks").hidden = rows.length > 0;
}

function voicemailItem(voicemail) {
  const item = element("li", { "data-voicemail": voicemail.id });
  item.append(element("span", { class: "when", "data-field": "when" }));
  item.append(element("span", { "data-field": "about" }));
  const play = element("button", { type: "button", "data-action": "play" }, "Play");
  const audio = element("audio", { controls: "", preload: "metadata", "data-voicemail-audio": voicemail.id });
  audio.hidden = true;
  play.addEventListener("click", () => playVoicemail(voicemail, audio, play));
  const handled = element("button", { type: "button", "data-action": "handled" }, "Mark handled");
  handled.addEventListener("click", () => voicemailHandled(voicemail.id));
  item.append(play, audio, handled, element("span", { class: "quiet", "data-field": "handled" }));
  return item;
}

function renderVoicemails() {
  const list = document.getElementById("voicemails");
  const seen = new Set();
  const items = desk.voicemails.map((voicemail) => {
    seen.add(voicemail.id);
    let item = desk.voicemailItems.get(voicemail.id);
    if (!item) {
      item = voicemailItem(voicemail);
      desk.voicemailItems.set(voicemail.id, item);
    }
    item.querySelector('[data-field="when"]').textContent = when(Date.parse(voicemail.started_at));
    item.querySelector('[data-field="about"]').textContent =
      `${voicemail.node} · ${duration(voicemail.duration_secs)} · caller ${voicemail.caller_id_masked || "withheld"}`;
    const handled = voicemail.handled_at != null;
    item.dataset.handled = String(handled);
    item.querySelector('[data-action="handled"]').hidden = handled;
    item.querySelector('[data-field="handled"]').textContent = handled
      ? "handled " + when(Date.parse(voicemail.handled_at)) + " by " + voicemail.handled_by
      : "";
    return item;
  });
  for (const [id, item] of desk.voicemailItems) {
    if (!seen.has(id)) {
      const audio = item.querySelector("audio");
      if (audio && audio.src.startsWith("blob:")) {
        URL.revokeObjectURL(audio.src);
      }
      desk.voicemailItems.delete(id);
    }
  }
  list.replaceChildren(...items);
  document.getElementById("no-voicemails").hidden = items.length > 0;
}

/** Every second: the time in state moves on, the wrap-up counts down. */
function tick() {
  const elapsed = desk.fetchedAt ? (Date.now() - desk.fetchedAt) / 1000 : 0;
  const time = document.getElementById("time-in-state");
  time.textContent = time.dataset.baseSecs === "" || time.dataset.baseSecs === undefined
    ? ""
    : duration(Number(time.dataset.baseSecs) + elapsed);
  const wrapUp = document.getElementById("wrap-up");
  if (!wrapUp.hidden && wrapUp.dataset.leftSecs !== "") {
    const left = Number(wrapUp.dataset.leftSecs) - elapsed;
    wrapUp.textContent = "ready again in " + duration(Math.ceil(Math.max(0, left)));
    if (left <= 0) {
      scheduleRefresh();
    }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("token-form").addEventListener("submit", tokenEntered);
  document.getElementById("unlock-form").addEventListener("submit", askToUnlock);
  document.getElementById("unlock-yes").addEventListener("click", confirmUnlock);
  document.getElementById("unlock-no").addEventListener("click", cancelUnlock);
  for (const button of document.querySelectorAll("[data-status]")) {
    button.addEventListener("click", () => setStatus(button.dataset.status));
  }
  setInterval(tick, 1000);
  setInterval(scheduleRefresh, SAFETY_REFRESH_MS);
  start();
});
