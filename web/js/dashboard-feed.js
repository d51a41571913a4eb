// @ts-check
// Dashboard data: the admin token, the admin API, the live feed (/api/feed) and the state built
// from it (rooms, participants, per-participant sample history, the selection). No drawing:
// what changed is handed to the view set with setView() (dashboard-view.js draws it).
// Token: #token=... (stripped from the address bar), else the one kept in this tab, else a dev
// server's /api/dev/admin-token, else the form asks for one
// (`relayroom token --room '*' --identity ops --grant admin=true`).

import { $ } from "./page.js";

export const HISTORY = 300; // samples kept per participant (5 minutes at 1 s)

/**
 * JSON objects of the admin API and the feed (docs/operations.md), read as they come.
 * @typedef {Record<string, any>} Json
 * @typedef {{room: string, id: string, name: string, identity: string, joined_at: number}} FeedParticipant
 * @typedef {{room: string, id: string}} Selection
 */

export const state = {
  /** @type {string | null} */
  token: null,
  /** @type {WebSocket | null} */
  ws: null,
  /** @type {{loss: number, rtt_ms: number, fps: number}} */
  thresholds: { loss: 0.05, rtt_ms: 300, fps: 15 },
  /** @type {Json[]} */
  rooms: [],
  /** @type {FeedParticipant[]} */
  participants: [],
  /** @type {Map<string, Json[]>} "room\u0000id" -> samples */
  series: new Map(),
  /** @type {Selection | null} */
  selected: null,
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  retry: undefined,
};

/**
 * @param {string} room
 * @param {string} id
 */
export const keyOf = (room, id) => `${room}\u0000${id}`;

// Names of participants seen (joins, the live list), so events that carry only an id read well.
/** @type {Map<string, string>} "room\u0000id" -> name */
export const names = new Map();

/**
 * What the view does when the data changes.
 * @typedef {object} View
 * @property {(text: string, kind: string) => void} status the feed's state: "live", "connecting…", "unauthorized", ...
 * @property {(events: Json[]) => void} hello a (re)connected feed: the event log starts over with these
 * @property {(events: Json[]) => void} events events to add to the log (live or from the history)
 * @property {() => void} changed rooms, samples or the selection changed: redraw
 */

/** @type {View} replaced by setView() */
let view = { status() {}, hello() {}, events() {}, changed() {} };

/** @param {View} hooks */
export function setView(hooks) {
  view = hooks;
}

// ------------------------------------------------------------------ API and feed

/**
 * @param {string} method
 * @param {string} path
 * @param {Json} [body]
 * @returns {Promise<Json>}
 */
export async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${state.token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error?.message || `HTTP ${response.status}`);
  return data;
}

function tokenFromAddress() {
  // The token comes in the fragment (#token=...), which never reaches a server, a log or a
  // Referer; it is removed from the address bar (and history) at once. A ?token= query is
  // refused: it would already have leaked into logs and history.
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  const token = fragment.get("token");
  const url = new URL(window.location.href);
  if (token !== null || url.searchParams.has("token")) {
    url.hash = "";
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search);
  }
  if (token) sessionStorage.setItem("relayroom-admin-token", token);
  return token || null;
}

export async function obtainToken() {
  const fromUrl = tokenFromAddress();
  if (fromUrl) return fromUrl;
  const kept = sessionStorage.getItem("relayroom-admin-token");
  if (kept) return kept;
  const response = await fetch("/api/dev/admin-token", { method: "POST" }).catch(() => null);
  if (response && response.ok) return (await response.json()).token;
  return null;
}

/** A token typed into the form: kept for this tab, then the feed connects with it. */
/** @param {string} token */
export function useToken(token) {
  state.token = token;
  sessionStorage.setItem("relayroom-admin-token", token);
  connectFeed();
}

/**
 * @param {string} text
 * @param {string} kind
 */
function setStatus(text, kind) {
  view.status(text, kind);
}

function refused() {
  sessionStorage.removeItem("relayroom-admin-token");
  setStatus("unauthorized", "error");
  $("token-form").hidden = false;
}

export function connectFeed() {
  clearTimeout(state.retry);
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  const url = `${scheme}//${window.location.host}/api/feed`;
  // The token rides in Sec-WebSocket-Protocol (the one header a page may set on a WebSocket),
  // never in the URL, which servers and proxies log.
  let ws;
  try {
    ws = new WebSocket(url, ["relayroom.feed", `relayroom.token.${state.token}`]);
  } catch {
    refused(); // not a token at all (characters a protocol name cannot hold)
    return;
  }
  state.ws = ws;
  let opened = false;
  setStatus("connecting…", "off");
  ws.onopen = () => {
    opened = true;
    setStatus("live", "live");
  };
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "hello") onHello(message);
    else if (message.type === "tick") onTick(message);
  };
  ws.onclose = () => {
    if (state.ws !== ws) return;
    if (!opened) {
      refused(); // the handshake was refused: most likely the token
      return;
    }
    setStatus("reconnecting…", "error");
    state.retry = setTimeout(connectFeed, 2000);
  };
}

/** @param {Json} message */
function onHello(message) {
  state.thresholds = message.thresholds;
  state.rooms = message.rooms;
  view.hello(message.events);
  loadEventHistory();
  view.changed();
}

/** @param {Json} message */
function onTick(message) {
  state.rooms = message.rooms;
  state.participants = message.participants;
  for (const p of state.participants) names.set(keyOf(p.room, p.id), p.name);
  const live = new Set(state.participants.map((p) => keyOf(p.room, p.id)));
  for (const sample of message.samples) {
    const key = keyOf(sample.room, sample.participant_id);
    let list = state.series.get(key);
    if (!list) state.series.set(key, (list = []));
    list.push(sample);
    if (list.length > HISTORY) list.splice(0, list.length - HISTORY);
  }
  for (const key of [...state.series.keys()]) if (!live.has(key)) state.series.delete(key);
  view.events(message.events);
  if (state.selected && !live.has(keyOf(state.selected.room, state.selected.id))) state.selected = null;
  if (!state.selected) autoSelect();
  view.changed();
}

function autoSelect() {
  // Prefer someone who receives media: their charts have the most to show.
  /** @type {FeedParticipant | undefined} */
  let pick;
  for (const p of state.participants) {
    const list = state.series.get(keyOf(p.room, p.id));
    const last = list?.[list.length - 1];
    if (last && (last.tracks.out.length || last.tracks.in.length)) {
      pick = p;
      break;
    }
  }
  pick = pick || state.participants[0];
  if (pick) select(pick.room, pick.id);
}

/** Show one participant: their charts at once, then their older samples from the API. */
/**
 * @param {string} room
 * @param {string} id
 */
export async function select(room, id) {
  state.selected = { room, id };
  view.changed();
  try {
    const since = Date.now() / 1000 - HISTORY;
    const path = `/api/rooms/${encodeURIComponent(room)}/participants/${encodeURIComponent(id)}/stats?since=${since}`;
    const history = await api("GET", path);
    const key = keyOf(room, id);
    const current = state.series.get(key) || [];
    const first = current.length ? current[0].t : Infinity;
    const older = history.samples.filter((/** @type {Json} */ s) => s.t < first);
    state.series.set(key, [...older, ...current].slice(-HISTORY));
    view.changed();
  } catch (error) {
    console.debug("history", error);
  }
}

/** The event history of the whole cluster (`GET /api/events` answers for every node). */
async function loadEventHistory() {
  try {
    const { events } = await api("GET", "/api/events");
    view.events(events);
  } catch (error) {
    console.debug("events", error);
  }
}
