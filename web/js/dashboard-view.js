// @ts-check
// Dashboard drawing: the rooms list, the selected participant's KPIs, charts (on <canvas>, no
// dependencies) and tables, and the event log. Reads the state of dashboard-feed.js; holds no
// connection of its own.
import { api, keyOf, names, select, state } from "./dashboard-feed.js";
import { $ } from "./page.js";

/**
 * @typedef {import("./dashboard-feed.js").Json} Json
 * @typedef {import("./dashboard-feed.js").FeedParticipant} FeedParticipant
 * @typedef {number | null | undefined} Value a metric's value; null or absent: not measured
 * @typedef {{points: [number, Value][], color: string, dash?: boolean}} Series
 */

const WINDOW_S = 120; // seconds shown in the charts
const MAX_EVENTS = 200;
const COLORS = { server: "#3fa7ff", out: "#3ecf6e", browser: "#c792ea", threshold: "#ff5d5d", grid: "#2c353e", text: "#8b98a5" };
/** @type {Record<string, string>} */
const METRIC_NAMES = { fps: "frame rate", loss: "packet loss", rtt_ms: "round-trip time" };

// ------------------------------------------------------------------ formatting

/** @param {Value} bps */
function fmtBitrate(bps) {
  if (bps === null || bps === undefined) return "–";
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(2)} Mb/s`;
  return `${(bps / 1e3).toFixed(0)} kb/s`;
}
/**
 * @param {Value} value
 * @param {string} [unit]
 * @param {number} [digits]
 */
const fmt = (value, unit = "", digits = 0) =>
  value === null || value === undefined ? "–" : `${Number(value).toFixed(digits)}${unit}`;
/** @param {number} t */
const fmtTime = (t) => new Date(t * 1000).toLocaleTimeString();

/**
 * An element with attributes (`dataset`: data-*, `on...`: listeners) and children.
 * @param {string} tag
 * @param {Record<string, any>} [attrs]
 * @param {...any} children nodes, or values shown as text
 * @returns {HTMLElement}
 */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

// ------------------------------------------------------------------ charts

export class LineChart {
  /** @param {HTMLCanvasElement} canvas */
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext("2d"));
  }

  /**
   * Draw the series over the last WINDOW_S seconds up to `tMax`.
   * @param {Series[]} series
   * @param {{threshold?: number | null, tMax?: number, minMax?: number}} [options] `minMax`:
   *   the lowest top of the value axis
   */
  draw(series, { threshold = null, tMax = Date.now() / 1000, minMax = 1 } = {}) {
    const { canvas, ctx } = this;
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(50, canvas.clientWidth);
    const height = Math.max(50, canvas.clientHeight);
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const left = 42, right = 6, top = 6, bottom = 16;
    const plotW = width - left - right, plotH = height - top - bottom;
    const tMin = tMax - WINDOW_S;
    let max = minMax;
    for (const s of series) for (const [t, v] of s.points) if (t >= tMin && v != null && v > max) max = v;
    if (threshold !== null && threshold * 1.25 > max) max = threshold * 1.25;
    max = niceCeil(max);
    /** @param {number} t */
    const x = (t) => left + ((t - tMin) / WINDOW_S) * plotW;
    /** @param {number} v */
    const y = (v) => top + plotH - (v / max) * plotH;
    // grid and labels
    ctx.strokeStyle = COLORS.grid;
    ctx.fillStyle = COLORS.text;
    ctx.lineWidth = 1;
    ctx.font = "10px system-ui, sans-serif";
    ctx.setLineDash([]);
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4;
      const py = Math.round(y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(left, py);
      ctx.lineTo(width - right, py);
      ctx.stroke();
      ctx.fillText(shortNumber(v), 2, py + 3);
    }
    for (let s = 0; s <= WINDOW_S; s += 30) {
      // Centred under its tick; the last one ("now") ends at the right edge instead of past it.
      ctx.textAlign = s === WINDOW_S ? "right" : "center";
      ctx.fillText(s === WINDOW_S ? "now" : `-${WINDOW_S - s}s`, s === WINDOW_S ? width - 3 : x(tMin + s), height - 3);
    }
    ctx.textAlign = "left";
    if (threshold !== null) {
      ctx.strokeStyle = COLORS.threshold;
      ctx.setLineDash([4, 3]);
      ctx.beginPath();
      ctx.moveTo(left, y(threshold));
      ctx.lineTo(width - right, y(threshold));
      ctx.stroke();
    }
    const drawn = [];
    for (const s of series) {
      let count = 0;
      ctx.strokeStyle = s.color;
      ctx.lineWidth = 1.6;
      ctx.setLineDash(s.dash ? [5, 3] : []);
      ctx.beginPath();
      let pen = false;
      for (const [t, v] of s.points) {
        if (t < tMin || v === null || v === undefined) {
          pen = false;
          continue;
        }
        if (pen) ctx.lineTo(x(t), y(v));
        else ctx.moveTo(x(t), y(v));
        pen = true;
        count++;
      }
      ctx.stroke();
      drawn.push(count);
    }
    ctx.setLineDash([]);
    canvas.dataset.points = drawn.join(","); // points drawn per series (for tests and debugging)
  }
}

/** @param {number} value */
function niceCeil(value) {
  if (value <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 2.5, 5, 10]) if (value <= m * p) return m * p;
  return 10 * p;
}

/** @param {number} v */
function shortNumber(v) {
  if (v >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(v >= 1e4 ? 0 : 1)}k`;
  return v >= 10 || v === 0 ? v.toFixed(0) : v.toFixed(1);
}

/** @type {Record<string, LineChart>} */
const charts = {};
for (const canvas of document.querySelectorAll("canvas[data-chart]")) {
  const chart = /** @type {HTMLCanvasElement} */ (canvas);
  charts[chart.dataset.chart ?? ""] = new LineChart(chart);
}

// ------------------------------------------------------------------ rendering

/** Redraw what the state shows: the rooms list and the selected participant. */
export function render() {
  renderRooms();
  renderDetail();
}

function renderRooms() {
  const list = $("room-list");
  $("room-count").textContent = state.rooms.length;
  $("no-rooms").hidden = state.rooms.length > 0;
  list.replaceChildren(
    ...state.rooms.map((room) => {
      const people = state.participants.filter((p) => p.room === room.name);
      return el(
        "li",
        { dataset: { room: room.name } },
        el("div", { class: "room-name" }, el("span", { class: "health", dataset: { health: room.health } }), room.name,
          room.recording ? el("span", { class: "rec", title: `recording ${room.recording}` }, "REC") : ""),
        el("div", { class: "room-meta" },
          `${room.mode} · ${room.participants} participants · ${room.tracks} tracks · ` +
          `${fmtBitrate(room.bitrate_in_bps)} in${room.node ? ` · node ${room.node}` : ""}`),
        el("ul", { class: "participants" }, ...people.map((p) => participantItem(room.name, p))),
      );
    }),
  );
}

/**
 * @param {string} room
 * @param {FeedParticipant} p
 */
function participantItem(room, p) {
  const list = state.series.get(keyOf(room, p.id));
  const health = list?.[list.length - 1]?.health || "ok";
  const current = state.selected && state.selected.room === room && state.selected.id === p.id;
  return el(
    "li",
    {},
    el(
      "button",
      { type: "button", "aria-current": String(Boolean(current)), dataset: { participant: p.id }, onclick: () => select(room, p.id) },
      el("span", { class: "health", dataset: { health } }),
      p.name,
    ),
  );
}

/**
 * @param {Json[]} list samples
 * @param {(sample: Json) => Value} pick
 * @returns {[number, Value][]}
 */
function points(list, pick) {
  return list.map((s) => [s.t, pick(s)]);
}

function renderDetail() {
  const sel = state.selected;
  const list = sel ? state.series.get(keyOf(sel.room, sel.id)) || [] : [];
  const last = list[list.length - 1];
  const person = sel && state.participants.find((p) => p.room === sel.room && p.id === sel.id);
  $("detail-title").textContent = person ? `${person.name} · ${person.room}` : "Select a participant";
  $("detail-actions").hidden = !person;
  $("detail-health").dataset.health = last?.health || "ok";
  const s = last?.summary || {};
  const c = last?.client || {};
  const th = state.thresholds;
  /**
   * @param {string} name
   * @param {string} text
   * @param {boolean} bad
   */
  const metric = (name, text, bad) => {
    /** @type {HTMLElement | null} */
    const node = document.querySelector(`[data-metric="${name}"]`);
    if (!node) return;
    node.textContent = text;
    node.dataset.health = bad ? "bad" : "ok";
  };
  const loss = s.loss ?? c.loss;
  const rtt = s.rtt_ms ?? c.rtt_ms;
  const fps = c.fps ?? s.fps;
  metric("bitrate_in", fmtBitrate(s.bitrate_in_bps), false);
  metric("bitrate_out", fmtBitrate(s.bitrate_out_bps), false);
  metric("loss", loss === undefined || loss === null ? "–" : `${(loss * 100).toFixed(1)}%`, loss > th.loss);
  metric("rtt", fmt(rtt, " ms"), rtt > th.rtt_ms);
  metric("jitter", fmt(s.jitter_ms ?? c.jitter_ms, " ms", 1), false);
  metric("fps", fmt(fps, "", 1), fps !== undefined && fps !== null && fps < th.fps);
  metric("resolution", c.width ? `${c.width}×${c.height}` : c.width_sent ? `${c.width_sent}×${c.height_sent} ↑` : "–", false);
  const pair = last?.connections?.subscriber?.candidate_pair || last?.connections?.publisher?.candidate_pair;
  metric("candidate", pair?.type || c.candidate_type || "–", false);

  const tMax = Date.now() / 1000;
  /** @param {Value} v */
  const kb = (v) => (v === null || v === undefined ? null : v / 1000);
  charts.bitrate.draw([
    { points: points(list, (x) => kb(x.summary.bitrate_in_bps)), color: COLORS.server },
    { points: points(list, (x) => kb(x.summary.bitrate_out_bps)), color: COLORS.out },
    { points: points(list, (x) => kb(x.client?.bitrate_in_bps)), color: COLORS.browser },
    { points: points(list, (x) => kb(x.client?.bitrate_out_bps)), color: COLORS.browser, dash: true },
  ], { tMax, minMax: 10 });
  /** @param {Value} v */
  const pct = (v) => (v === null || v === undefined ? null : v * 100);
  charts.loss.draw([
    { points: points(list, (x) => pct(x.summary.loss)), color: COLORS.server },
    { points: points(list, (x) => pct(x.client?.loss)), color: COLORS.browser },
  ], { tMax, threshold: th.loss * 100 });
  charts.rtt.draw([
    { points: points(list, (x) => x.summary.rtt_ms), color: COLORS.server },
    { points: points(list, (x) => x.client?.rtt_ms), color: COLORS.browser },
  ], { tMax, threshold: th.rtt_ms, minMax: 10 });
  charts.jitter.draw([
    { points: points(list, (x) => x.summary.jitter_ms), color: COLORS.server },
    { points: points(list, (x) => x.client?.jitter_ms), color: COLORS.browser },
  ], { tMax, minMax: 5 });
  charts.fps.draw([
    { points: points(list, (x) => x.summary.fps), color: COLORS.server },
    { points: points(list, (x) => x.client?.fps), color: COLORS.browser },
    { points: points(list, (x) => x.client?.fps_sent), color: COLORS.browser, dash: true },
  ], { tMax, threshold: th.fps, minMax: 30 });
  charts.resolution.draw([
    { points: points(list, (x) => x.client?.height), color: COLORS.browser },
    { points: points(list, (x) => x.client?.height_sent), color: COLORS.browser, dash: true },
  ], { tMax, minMax: 240 });
  renderTables(last);
}

/**
 * @param {string[]} headers
 * @param {any[][]} rows
 */
function table(headers, rows) {
  return el("table", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h))), ...rows.map((r) => el("tr", {}, ...r.map((v) => el("td", {}, v)))));
}

/** @param {Json | undefined} sample */
function renderTables(sample) {
  if (!sample) {
    $("connections").replaceChildren();
    $("tracks").replaceChildren();
    return;
  }
  const rows = [];
  for (const [name, conn] of Object.entries(/** @type {Record<string, Json | null>} */ (sample.connections))) {
    if (!conn) continue;
    const pair = conn.candidate_pair;
    rows.push([name, conn.state, conn.ice_state, conn.dtls_state ?? "–", pair?.type ?? "–",
      pair ? `${pair.local.address}:${pair.local.port} ↔ ${pair.remote.address}:${pair.remote.port}` : "–",
      fmtBitrate(conn.bitrate_in_bps), fmtBitrate(conn.bitrate_out_bps)]);
  }
  const browser = sample.client;
  if (browser) {
    rows.push(["browser", "", "", "", browser.candidate_type ?? "–",
      `rtt ${fmt(browser.rtt_ms, " ms")} · jb ${fmt(browser.jitter_buffer_delay_ms, " ms")} · decoded ${browser.frames_decoded ?? "–"}`,
      fmtBitrate(browser.bitrate_in_bps), fmtBitrate(browser.bitrate_out_bps)]);
  }
  $("connections").replaceChildren(table(["connection", "state", "ICE", "DTLS", "path", "pair", "in", "out"], rows));
  const trackRows = [];
  for (const t of sample.tracks.in) {
    trackRows.push([`↑ ${t.kind}`, t.track_id.slice(0, 12), t.packets, fmtBitrate(t.bitrate_bps), fmt(t.fps, "", 1),
      t.loss === null ? "–" : `${(t.loss * 100).toFixed(1)}%`, fmt(t.jitter_ms, " ms", 1), "–", `PLI sent ${t.pli_sent}`,
      muteButton(sample, t)]);
    // Simulcast: one row per encoding, with its bitrate and how many subscribers receive it.
    for (const layer of t.layers ?? []) {
      trackRows.push([`  layer ${layer.rid}`, `${layer.width}x${layer.height}`, "", fmtBitrate(layer.bitrate_bps),
        fmt(layer.fps, "", 1), "", "", "", `${layer.active ? "sending" : "paused"} · ${layer.subscribers} receiving`, ""]);
    }
  }
  for (const t of sample.tracks.out) {
    trackRows.push([`↓ ${t.kind}`, t.track_id.slice(0, 12), t.packets, fmtBitrate(t.bitrate_bps), "–",
      t.loss === null ? "–" : `${(t.loss * 100).toFixed(1)}%`, fmt(t.jitter_ms, " ms", 1), fmt(t.rtt_ms, " ms"),
      `${t.layer ? `layer ${t.layer} · ` : ""}PLI ${t.pli} · NACK ${t.nacks} · drop ${t.dropped}`, ""]);
  }
  const data = sample.data;
  if (data.messages_relayed !== null) {
    trackRows.push(["data", "", data.messages_relayed, "", "", "", "", "", `dropped ${data.messages_dropped}`, ""]);
  }
  $("tracks").replaceChildren(table(["track", "id", "packets", "bitrate", "fps", "loss", "jitter", "RTT", "feedback", ""], trackRows));
}

/**
 * @param {Json} sample
 * @param {Json} track
 */
function muteButton(sample, track) {
  const base = `/api/rooms/${encodeURIComponent(sample.room)}/participants/${encodeURIComponent(sample.participant_id)}`;
  return el("button", {
    type: "button",
    class: "secondary",
    onclick: () => api("POST", `${base}/tracks/${encodeURIComponent(track.track_id)}/mute`, { muted: !track.muted })
      .catch((e) => addEvent({ t: Date.now() / 1000, type: "errors", message: e.message })),
  }, track.muted ? "unmute" : "mute");
}

/**
 * @param {string} room
 * @param {string} id
 * @param {string} [fallback] the name the event carries
 */
function nameOf(room, id, fallback) {
  if (fallback) return fallback;
  const known = names.get(keyOf(room, id)) || state.participants.find((p) => p.room === room && p.id === id)?.name;
  return known || `participant ${String(id).slice(0, 6)}…`;
}

/** A metric's value as people read it: fps with one decimal, loss in %, times in whole ms. */
/**
 * @param {string} metric
 * @param {unknown} value
 */
export function metricText(metric, value) {
  if (value === null || value === undefined || !Number.isFinite(Number(value))) return "–";
  const v = Number(value);
  if (metric === "loss") return `${(v * 100).toFixed(1)}%`;
  if (metric === "rtt_ms") return `${v.toFixed(0)} ms`;
  if (metric === "fps") return `${v.toFixed(1)} fps`;
  return String(Math.round(v * 100) / 100);
}

/**
 * @param {Json} e an event
 * @returns {string}
 */
function describe(e) {
  if (e.participant_id && e.name) names.set(keyOf(e.room, e.participant_id), e.name);
  const who = e.participant_id ? `${e.room}/${nameOf(e.room, e.participant_id, e.name)}` : e.room || "";
  switch (e.type) {
    case "participant_joined": return `${who} joined`;
    case "participant_left": return `${who} left`;
    case "participant_removed": return `${who} removed by ${e.by}`;
    case "room_closed": return `room ${e.room} closed by ${e.by}`;
    case "track_muted": return `${who} track ${e.muted ? "muted" : "unmuted"} by admin`;
    case "threshold_crossed":
      return `${who} ${METRIC_NAMES[e.metric] || e.metric} ${metricText(e.metric, e.value)} ` +
        `crossed ${metricText(e.metric, e.threshold)} (${e.view} view)`;
    case "threshold_cleared":
      return `${who} ${METRIC_NAMES[e.metric] || e.metric} back to ${metricText(e.metric, e.value)} (${e.view} view)`;
    case "recording_started": return `recording ${e.recording_id} of ${e.room} started (${(e.tracks || []).length} tracks)`;
    case "recording_finished":
      return `recording ${e.recording_id} of ${e.room} ${e.reason === "write_error" ? "failed" : "finished"} (${e.reason}` +
        `${e.error ? `: ${e.error}` : ""}), ${(e.files || []).length} files`;
    case "errors": return e.counts ? `errors: ${Object.entries(e.counts).map(([k, v]) => `${k} ×${v}`).join(", ")}` : e.message;
    default: return `${e.type} ${who}`;
  }
}

const seenEvents = new Set(); // one line per event, whichever way it arrived

/** @param {Json} e */
export function addEvent(e) {
  // Live ticks carry no node tag, the cluster history does: the key leaves the node out.
  const id = e.seq !== undefined ? `${e.seq}|${e.t}|${e.type}|${e.participant_id ?? ""}` : null;
  if (id !== null) {
    if (seenEvents.has(id)) return;
    seenEvents.add(id);
  }
  const log = $("event-log");
  const item = el("li", { dataset: { kind: e.type, t: e.t } }, el("time", {}, fmtTime(e.t)), describe(e));
  // Newest first; an older event (history fetched late) goes to its place.
  /** @type {HTMLElement | null} */
  let before = log.firstElementChild;
  while (before && Number(before.dataset.t) > e.t) before = /** @type {HTMLElement | null} */ (before.nextElementSibling);
  log.insertBefore(item, before);
  while (log.children.length > MAX_EVENTS) log.lastElementChild.remove();
}

/** Add events to the log (live ones, or the history fetched late). */
/** @param {Json[]} events */
export function addEvents(events) {
  for (const event of events.slice(-MAX_EVENTS)) addEvent(event);
}

/** A (re)connected feed: the log starts over. */
/** @param {Json[]} events */
export function resetEvents(events) {
  $("event-log").replaceChildren();
  seenEvents.clear();
  addEvents(events);
}

/** The feed's state in the header pill. */
/**
 * @param {string} text
 * @param {string} kind
 */
export function setStatus(text, kind) {
  $("feed-status").textContent = text;
  $("feed-status").dataset.state = kind;
}
