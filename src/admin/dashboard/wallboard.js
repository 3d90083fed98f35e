// The careline wallboard: a tile per queue and the agent list, kept live from the admin API.
//
// Served as is by GET /dashboard/wallboard.js: no framework, no build step, no chart library.
// All data comes from /api/v1/queues and /api/v1/agents, and each queue's hours today from
// /api/v1/stats (drawn as an SVG built here); /api/v1/events (Server-Sent Events) only says
// when to fetch again. Every value from the API is put on the page as text, never as markup.
"use strict";

/** The longest wait of a queue turns amber past this many seconds... */
const WAIT_AMBER_SECS = 60;
/** ...and red past this many. */
const WAIT_RED_SECS = 180;
/** Events arriving within this many milliseconds of each other cause one refetch. */
const REFRESH_DEBOUNCE_MS = 250;
/** Refetch this often even without events, in case one was missed. */
const SAFETY_REFRESH_MS = 15000;
/** First and longest pause before trying again after the server could not be reached. */
const RETRY_FIRST_MS = 1000;
const RETRY_LONGEST_MS = 30000;
/** Each queue's hours today are fetched at most this often, however many events arrive. */
const HISTORY_MIN_GAP_MS = 5000;
/** Where the admin token is kept: this tab only, gone when it closes. */
const TOKEN_KEY = "careline.wallboard.token";

/** How each agent state reads on the board. */
const STATE_LABELS = {
  available: "available",
  reserved: "ringing",
  on_call: "on call",
  wrap_up: "wrap-up",
  break: "on break",
  offline: "offline",
};
/** The order of the per-state agent counts on a queue tile. */
const BOARD_STATES = ["available", "reserved", "on_call", "wrap_up", "break", "offline"];

const board = {
  queues: [],
  agents: [],
  /** Date.now() when the data on the page was fetched: times in state tick from here. */
  fetchedAt: 0,
  events: null,
  retryMs: RETRY_FIRST_MS,
  retryTimer: null,
  refreshTimer: null,
  wrapUpTimer: null,
  refreshing: false,
  refreshAgain: false,
  askingForToken: false,
  /** Queue name → the /api/v1/stats answer for its hours today. */
  history: {},
  /** Date.now() when the hours were last fetched; a timer for the next fetch when throttled. */
  historyFetchedAt: 0,
  historyTimer: null,
  historyFetching: false,
  historyAgain: false,
};

class Unauthorized extends Error {}

function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

async function getJson(path) {
  const headers = { Accept: "application/json" };
  const token = storedToken();
  if (token) {
    headers.Authorization = "Bearer " + token;
  }
  const response = await fetch(path, { headers, cache: "no-store" });
  if (response.status === 401 || response.status === 403) {
    throw new Unauthorized(path);
  }
  if (!response.ok) {
    let detail = "";
    try {
      detail = (await response.json()).error || "";
    } catch (_) {
      // Not JSON: the status says enough.
    }
    throw new Error(detail || path + " answered " + response.status);
  }
  return response.json();
}

/** Fetch queues and agents and redraw; one fetch at a time, a request meanwhile runs after. */
async function refresh() {
  if (board.askingForToken) {
    return;
  }
  if (board.refreshing) {
    board.refreshAgain = true;
    return;
  }
  board.refreshing = true;
  try {
    const answers = await Promise.allSettled([getJson("api/v1/queues"), getJson("api/v1/agents")]);
    const refused = answers.find((answer) => answer.reason instanceof Unauthorized);
    const failed = refused || answers.find((answer) => answer.status === "rejected");
    if (failed) {
      throw failed.reason;
    }
    const [queues, agents] = answers.map((answer) => answer.value);
    board.queues = queues;
    board.agents = agents;
    board.fetchedAt = Date.now();
    board.retryMs = RETRY_FIRST_MS;
    render();
    showProblem(null);
    // The token is good: now the live stream may open.
    openEvents();
    scheduleWrapUpRefresh();
    requestHistory();
  } catch (error) {
    if (error instanceof Unauthorized) {
      askForToken();
    } else {
      showProblem("careline cannot be read right now (" + error.message + "); trying again.");
      setConnection("reconnecting");
      retryLater();
    }
  } finally {
    board.refreshing = false;
    if (board.refreshAgain) {
      board.refreshAgain = false;
      scheduleRefresh();
    }
  }
}

/** Fetch the hours of today again: now, or when the last fetch is HISTORY_MIN_GAP_MS old. */
function requestHistory() {
  if (board.historyTimer !== null) {
    return;
  }
  const wait = board.historyFetchedAt + HISTORY_MIN_GAP_MS - Date.now();
  if (wait <= 0) {
    fetchHistory();
  } else {
    board.historyTimer = setTimeout(() => {
      board.historyTimer = null;
      fetchHistory();
    }, wait);
  }
}

/** Each queue's hours of its local today, from midnight in the queue's own time zone. */
async function fetchHistory() {
  if (board.historyFetching) {
    board.historyAgain = true;
    return;
  }
  board.historyFetching = true;
  board.historyFetchedAt = Date.now();
  try {
    const queues = board.queues;
    const answers = await Promise.allSettled(
      queues.map((queue) =>
        getJson(
          "api/v1/stats?interval=hour&queue=" +
            encodeURIComponent(queue.name) +
            "&from=" +
            encodeURIComponent(queue.today.date) +
            "&tz=" +
            encodeURIComponent(queue.today.timezone),
        ),
      ),
    );
    const history = {};
    queues.forEach((queue, index) => {
      const answer = answers[index];
      // A failed fetch keeps what was drawn; the queue board says when careline is unreachable.
      history[queue.name] = answer.status === "fulfilled" ? answer.value : board.history[queue.name];
    });
    board.history = history;
    drawCharts();
  } finally {
    board.historyFetching = false;
    if (board.historyAgain) {
      board.historyAgain = false;
      requestHistory();
    }
  }
}

/** Refetch soon, once for a burst of events. */
function scheduleRefresh() {
  if (board.refreshTimer !== null) {
    return;
  }
  board.refreshTimer = setTimeout(() => {
    board.refreshTimer = null;
    refresh();
  }, REFRESH_DEBOUNCE_MS);
}

function retryLater() {
  if (board.retryTimer !== null) {
    return;
  }
  board.retryTimer = setTimeout(() => {
    board.retryTimer = null;
    refresh();
  }, board.retryMs);
  board.retryMs = Math.min(board.retryMs * 2, RETRY_LONGEST_MS);
}

/** An agent in wrap-up becomes free when it runs out, whether or not an event says so. */
function scheduleWrapUpRefresh() {
  clearTimeout(board.wrapUpTimer);
  const left = board.agents
    .filter((agent) => agent.state === "wrap_up" && agent.wrap_up_left_secs != null)
    .map((agent) => agent.wrap_up_left_secs);
  if (left.length > 0) {
    board.wrapUpTimer = setTimeout(scheduleRefresh, Math.min(...left) * 1000 + 500);
  }
}

function openEvents() {
  if (board.events !== null || board.askingForToken) {
    return;
  }
  const token = storedToken();
  const url = "api/v1/events" + (token ? "?token=" + encodeURIComponent(token) : "");
  const source = new EventSource(url);
  board.events = source;
  source.addEventListener("ready", () => {
    setConnection("live");
    // Whatever changed while the stream was down.
    scheduleRefresh();
  });
  source.addEventListener("change", scheduleRefresh);
  source.addEventListener("resync", scheduleRefresh);
  source.addEventListener("error", () => {
    setConnection("reconnecting");
    if (source.readyState === EventSource.CLOSED) {
      // Refused or unreachable: the browser gives up, so fetch again (which finds out whether
      // the token still works) and reopen from there.
      closeEvents();
      retryLater();
    }
    // Otherwise the browser reconnects by itself and "ready" says when it is back.
  });
}

function closeEvents() {
  if (board.events !== null) {
    board.events.close();
    board.events = null;
  }
}

function setConnection(state) {
  const element = document.getElementById("connection");
  element.dataset.state = state;
  element.textContent = { live: "live", reconnecting: "reconnecting…", connecting: "connecting…" }[state];
}

function showProblem(text) {
  const element = document.getElementById("problem");
  element.hidden = text === null;
  element.textContent = text || "";
}

function askForToken() {
  closeEvents();
  const rejected = storedToken() !== null;
  sessionStorage.removeItem(TOKEN_KEY);
  board.askingForToken = true;
  setConnection("connecting");
  document.getElementById("token-error").hidden = !rejected;
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
  board.askingForToken = false;
  refresh();
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

function figure(field, value, label) {
  const box = element("div", { class: "figure " + field });
  box.append(element("span", { class: "value", "data-field": field }, value));
  box.append(element("span", { class: "label" }, label));
  return box;
}

function percent(fraction) {
  return fraction == null ? "—" : Math.round(fraction * 100) + "%";
}

// ---- the hours of today, as an inline SVG ----

/** SVG elements live in the SVG namespace, an identifier, not an address to fetch. */
const SVG_NAMESPACE = "http://www.w3.org/2000/svg";
/** Chart geometry in SVG units: one slot per hour, the hours labelled under the bars. */
const SLOT_WIDTH = 20;
const BAR_WIDTH = 14;
const BARS_HEIGHT = 48;
const LABELS_HEIGHT = 14;

function svg(tag, attributes, text) {
  const node = document.createElementNS(SVG_NAMESPACE, tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    node.setAttribute(name, String(value));
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

/** "01:00" from "2026-11-01T01:00:00-05:00": the local hour the API labelled the bucket with. */
function localHour(rfc3339) {
  return rfc3339.slice(11, 16);
}

function hasCalls(bucket) {
  return bucket.offered + bucket.answered + bucket.abandoned > 0;
}

/**
 * Today's hours of one queue: per hour with calls, a bar as tall as the calls offered, with the
 * answered and abandoned ones in it, and the hour's service level as a point on a line. A day
 * the clocks change has 23 or 25 hours, so slots follow the buckets, not the clock.
 */
function hourlyChart(queueName) {
  const box = element("figure", { class: "hourly", "data-field": "hourly" });
  const history = board.history[queueName];
  const buckets = history ? history.buckets : [];
  const slots = Math.max(24, buckets.length);
  const width = slots * SLOT_WIDTH;
  const height = BARS_HEIGHT + LABELS_HEIGHT;
  const chart = svg("svg", {
    class: "hourly-chart",
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": "Calls per hour today: offered, answered, abandoned, and the service level",
  });
  const tallest = Math.max(1, ...buckets.map((b) => Math.max(b.offered, b.answered + b.abandoned)));
  const scale = (count) => (count / tallest) * (BARS_HEIGHT - 4);
  chart.append(svg("line", { class: "baseline", x1: 0, y1: BARS_HEIGHT, x2: width, y2: BARS_HEIGHT }));
  const slotX = (slot) => slot * SLOT_WIDTH + (SLOT_WIDTH - BAR_WIDTH) / 2;
  for (let slot = 0; slot < slots; slot += 6) {
    // Hours still to come are labelled by the clock; on a day the clocks change they may be off.
    const label = slot < buckets.length ? localHour(buckets[slot].start).slice(0, 2) : String(slot).padStart(2, "0");
    chart.append(svg("text", { class: "axis", x: slotX(slot), y: height - 2 }, label));
  }
  const levels = [];
  buckets.forEach((bucket, slot) => {
    const x = slotX(slot);
    if (!hasCalls(bucket)) {
      return;
    }
    const hour = svg("g", {
      class: "hour",
      "data-start": bucket.start,
      "data-offered": bucket.offered,
      "data-answered": bucket.answered,
      "data-abandoned": bucket.abandoned,
    });
    const bar = (kind, count, base) =>
      svg("rect", {
        class: kind,
        x: x,
        y: BARS_HEIGHT - base - scale(count),
        width: BAR_WIDTH,
        height: scale(count),
      });
    hour.append(bar("offered", bucket.offered, 0));
    hour.append(bar("answered", bucket.answered, 0));
    hour.append(bar("abandoned", bucket.abandoned, scale(bucket.answered)));
    hour.append(
      svg(
        "title",
        {},
        `${localHour(bucket.start)}–${localHour(bucket.end)}: ${bucket.offered} offered, ` +
          `${bucket.answered} answered, ${bucket.abandoned} abandoned, ` +
          `service level ${percent(bucket.service_level)}`,
      ),
    );
    chart.append(hour);
    if (bucket.service_level != null) {
      levels.push([x + BAR_WIDTH / 2, BARS_HEIGHT - bucket.service_level * (BARS_HEIGHT - 4)]);
    }
  });
  if (levels.length > 1) {
    chart.append(
      svg("polyline", { class: "service-level", points: levels.map((p) => p.join(",")).join(" ") }),
    );
  }
  for (const [cx, cy] of levels) {
    chart.append(svg("circle", { class: "service-level-point", cx: cx, cy: cy, r: 2.5 }));
  }
  box.append(chart);
  const caption = element("figcaption");
  if (!buckets.some(hasCalls)) {
    caption.append(element("span", { class: "quiet" }, history ? "no calls yet today" : "loading the hours…"));
  } else {
    for (const [kind, label] of [
      ["answered", "answered"],
      ["abandoned", "abandoned"],
      ["offered", "offered"],
      ["service-level", "service level"],
    ]) {
      caption.append(element("span", { class: "key " + kind }, label));
    }
  }
  box.append(caption);
  return box;
}

/** Redraw each tile's chart from board.history, leaving the rest of the tile as it is. */
function drawCharts() {
  for (const tile of document.querySelectorAll("#queues .queue")) {
    const old = tile.querySelector(".hourly");
    const chart = hourlyChart(tile.dataset.queue);
    if (old) {
      old.replaceWith(chart);
    } else {
      tile.append(chart);
    }
  }
}

function queueTile(queue) {
  const tile = element("article", { class: "queue", "data-queue": queue.name });
  tile.append(element("h2", {}, queue.name));
  const figures = element("div", { class: "figures" });
  figures.append(figure("waiting", String(queue.waiting), "waiting"));
  const longest = figure("longest-wait", "", "longest wait");
  const longestValue = longest.querySelector(".value");
  longestValue.dataset.baseSecs = String(queue.waiting > 0 ? queue.longest_wait_secs : -1);
  figures.append(longest);
  figures.append(figure("service-level", percent(queue.today.service_level), "service level today"));
  tile.append(figures);

  const counts = element("ul", { class: "agent-counts" });
  for (const state of BOARD_STATES) {
    const count = queue.agents[state] || 0;
    const item = element("li", { "data-state": state, class: count === 0 ? "none" : "" });
    item.append(element("b", { "data-field": "agents-" + state }, String(count)));
    item.append(document.createTextNode(" " + STATE_LABELS[state]));
    counts.append(item);
  }
  tile.append(counts);

  const today = queue.today;
  const asa = today.asa_secs == null ? "—" : Math.round(today.asa_secs) + " s";
  tile.append(
    element(
      "p",
      { class: "today" },
      `today: ${today.offered} offered · ${today.answered} answered · ` +
        `${today.abandoned} abandoned · ASA ${asa} · ${today.callbacks} callbacks`,
    ),
  );
  tile.append(hourlyChart(queue.name));
  return tile;
}

/** The state an agent is shown in: what they are doing, else their status. */
function agentState(agent) {
  return agent.state === "idle" ? agent.status : agent.state;
}

function agentRow(agent) {
  const state = agentState(agent);
  const row = element("tr", { "data-agent": agent.id, "data-state": state });
  if (!agent.on_shift) {
    row.classList.add("off-shift");
  }
  const name = element("td", { class: "name" }, agent.name);
  if (!agent.on_shift) {
    name.append(element("span", { class: "note" }, " off shift"));
  }
  row.append(name);
  const stateCell = element("td");
  stateCell.append(element("span", { class: "badge" }, STATE_LABELS[state] || state));
  row.append(stateCell);
  const time = element("td", { class: "time", "data-field": "time-in-state" });
  if (agent.state === "wrap_up" && agent.wrap_up_left_secs != null) {
    time.dataset.leftSecs = String(agent.wrap_up_left_secs);
  } else if (agent.time_in_state_secs != null) {
    time.dataset.baseSecs = String(agent.time_in_state_secs);
  }
  row.append(time);
  row.append(element("td", { class: "calls" }, String(agent.calls_today)));
  return row;
}

function render() {
  const tiles = board.queues.map(queueTile);
  const queues = document.getElementById("queues");
  if (tiles.length === 0) {
    queues.replaceChildren(element("p", { class: "empty" }, "No queues are configured."));
  } else {
    queues.replaceChildren(...tiles);
  }
  document.querySelector("#agents tbody").replaceChildren(...board.agents.map(agentRow));
  document.getElementById("updated").textContent =
    "updated " + new Date(board.fetchedAt).toLocaleTimeString();
  tick();
}

function duration(secs) {
  const s = Math.max(0, Math.floor(secs));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const seconds = String(s % 60).padStart(2, "0");
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, "0")}:${seconds}` : `${minutes}:${seconds}`;
}

function waitLevel(secs) {
  if (secs > WAIT_RED_SECS) {
    return "red";
  }
  return secs > WAIT_AMBER_SECS ? "amber" : "ok";
}

/** Every second: times in state and longest waits move on from what was fetched. */
function tick() {
  const elapsed = board.fetchedAt ? Math.floor((Date.now() - board.fetchedAt) / 1000) : 0;
  for (const value of document.querySelectorAll("[data-field='longest-wait']")) {
    const base = Number(value.dataset.baseSecs);
    const tile = value.closest(".queue");
    if (base < 0) {
      value.textContent = "—";
      tile.dataset.wait = "ok";
    } else {
      value.textContent = duration(base + elapsed);
      tile.dataset.wait = waitLevel(base + elapsed);
    }
  }
  for (const cell of document.querySelectorAll("[data-field='time-in-state']")) {
    if (cell.dataset.leftSecs !== undefined) {
      cell.textContent = duration(Number(cell.dataset.leftSecs) - elapsed) + " left";
    } else if (cell.dataset.baseSecs !== undefined) {
      cell.textContent = duration(Number(cell.dataset.baseSecs) + elapsed);
    } else {
      cell.textContent = "";
    }
  }
  document.getElementById("clock").textContent = new Date().toLocaleTimeString([], {
    hour: "2-digit",
    minute: "2-digit",
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("token-form").addEventListener("submit", tokenEntered);
  setInterval(tick, 1000);
  setInterval(refresh, SAFETY_REFRESH_MS);
  tick();
  refresh();
});
