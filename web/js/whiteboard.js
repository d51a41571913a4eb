// @ts-check
// Collaborative whiteboard over the DataChannel relay (see docs/datachannels.md).
//
// Topics:
//   "whiteboard" (reliable, persistent: replayed to late joiners, kept across restarts):
//     {op: "stroke", id, color, width, points: [[x, y], ...]}  a finished stroke (or a piece of a
//                                                               long one); x, y in [0, 1]
//     {op: "undo", id}   remove a stroke; only its author's undo counts
//     {op: "clear"}      empty the board (the server compacts the history)
//   "ink" (reliable, not persisted): {id, color, width, points} the stroke being drawn, live
//   "cursor" (lossy): {x, y, name, color}
// window.board is the model (strokes in order, live ink, cursors), for people and tests.
import { $, joinToken, prefillFromAddress } from "./page.js";
import { RoomClient } from "./room.js";

prefillFromAddress();

const MAX_POINTS = 400; // per persisted message (stays far below the 16 KiB message limit)
const INK_INTERVAL_MS = 50;
const CURSOR_INTERVAL_MS = 50;

/**
 * @typedef {[number, number]} Point x, y in [0, 1]
 * @typedef {{id: string, author: string, color: string, width: number, points: Point[]}} Stroke
 * @typedef {{x: number, y: number, name: string, color: string}} Cursor
 * @typedef {Record<string, any>} Payload a DataChannel message as received (checked before use)
 */

const board = {
  /** @type {Stroke[]} in drawing order */
  strokes: [],
  /** @type {Map<string, Stroke>} stroke id -> the stroke being drawn by someone else */
  ink: new Map(),
  /** @type {Map<string, Cursor>} participant id -> cursor */
  cursors: new Map(),
  /** @type {Stroke[]} */
  undone: [],
  /** @type {string | null} */
  self: null,
  /** @type {import("./messages.js").DataSync[]} */
  syncs: [],
  renders: 0,
  /** @param {string} id */
  strokeById(id) {
    return this.strokes.find((s) => s.id === id);
  },
};
/** @type {any} */ (window).board = board;

/** @type {HTMLCanvasElement} */
const canvas = $("canvas");
const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext("2d"));
/** @type {RoomClient | null} */
let client = null;
let counter = 0;
/** @type {Stroke | null} the local stroke in progress */
let drawing = null;
let lastInk = 0;
let inkSent = 0;
let lastCursor = 0;
let renderQueued = false;

// ---------------------------------------------------------------- model

// Everyone's page draws what anyone sent (and what is replayed to later joiners): check every
// value before it reaches the canvas, so one bad stroke is skipped instead of breaking the page.
const MAX_WIDTH = 100;

/**
 * @param {any} pt
 * @returns {pt is Point}
 */
function validPoint(pt) {
  return Array.isArray(pt) && pt.length === 2 && pt.every((v) => Number.isFinite(v) && v >= 0 && v <= 1);
}

/** @param {Payload} p */
function validStroke(p) {
  return (
    typeof p.id === "string" &&
    typeof p.color === "string" &&
    Number.isFinite(p.width) &&
    p.width > 0 &&
    p.width <= MAX_WIDTH &&
    Array.isArray(p.points) &&
    p.points.every(validPoint)
  );
}

/**
 * @param {any} message
 * @param {string} from
 */
function apply(message, from) {
  const p = message;
  if (!p || typeof p !== "object") return;
  if (p.op === "stroke" && validStroke(p)) {
    board.ink.delete(p.id);
    const existing = board.strokeById(p.id);
    if (existing && existing.author === from) existing.points.push(...p.points);
    else if (!existing) {
      board.strokes.push({ id: p.id, author: from, color: p.color, width: p.width, points: [...p.points] });
    }
  } else if (p.op === "undo") {
    const index = board.strokes.findIndex((s) => s.id === p.id && s.author === from);
    if (index >= 0) board.strokes.splice(index, 1);
  } else if (p.op === "clear") {
    board.strokes = [];
    board.ink.clear();
  }
  scheduleRender();
}

/**
 * @param {any} p
 * @param {string} from
 */
function applyInk(p, from) {
  if (!p || typeof p !== "object" || !validStroke(p)) return;
  let stroke = board.ink.get(p.id);
  if (!stroke) {
    stroke = { id: p.id, author: from, color: p.color, width: p.width, points: [] };
    board.ink.set(p.id, stroke);
  }
  stroke.points.push(...p.points);
  scheduleRender();
}

// ---------------------------------------------------------------- rendering

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(render);
}

/** @param {Stroke} stroke */
function drawStroke(stroke) {
  try {
    drawStrokeUnchecked(stroke);
  } catch (err) {
    console.warn("whiteboard: a stroke could not be drawn", err);
  }
}

/** @param {Stroke} stroke */
function drawStrokeUnchecked(stroke) {
  const pts = stroke.points.filter(validPoint);
  if (!pts.length) return;
  ctx.strokeStyle = stroke.color;
  ctx.fillStyle = stroke.color;
  ctx.lineWidth = Math.max(0.1, Math.min(MAX_WIDTH, stroke.width));
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  if (pts.length === 1) {
    ctx.beginPath();
    ctx.arc(pts[0][0] * canvas.width, pts[0][1] * canvas.height, ctx.lineWidth / 2, 0, 2 * Math.PI);
    ctx.fill();
    return;
  }
  ctx.beginPath();
  ctx.moveTo(pts[0][0] * canvas.width, pts[0][1] * canvas.height);
  for (const [x, y] of pts.slice(1)) ctx.lineTo(x * canvas.width, y * canvas.height);
  ctx.stroke();
}

function render() {
  renderQueued = false;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  for (const stroke of board.strokes) drawStroke(stroke);
  for (const stroke of board.ink.values()) drawStroke(stroke);
  if (drawing) drawStroke(drawing);
  board.renders += 1;
  renderCursors();
}

function renderCursors() {
  const layer = $("cursors");
  layer.replaceChildren();
  for (const [id, c] of board.cursors) {
    if (!client || !client.participants.has(id)) continue;
    const el = document.createElement("div");
    el.className = "cursor";
    el.style.left = `${c.x * 100}%`;
    el.style.top = `${c.y * 100}%`;
    el.style.color = c.color;
    el.textContent = c.name;
    layer.append(el);
  }
}

// ---------------------------------------------------------------- pointer input

/**
 * @param {PointerEvent} event
 * @returns {Point}
 */
function point(event) {
  const rect = canvas.getBoundingClientRect();
  const x = Math.min(1, Math.max(0, (event.clientX - rect.left) / rect.width));
  const y = Math.min(1, Math.max(0, (event.clientY - rect.top) / rect.height));
  return [Math.round(x * 10000) / 10000, Math.round(y * 10000) / 10000];
}

/** @param {boolean} force */
function sendInk(force) {
  if (!client || !drawing || inkSent >= drawing.points.length) return;
  const now = performance.now();
  if (!force && now - lastInk < INK_INTERVAL_MS) return;
  lastInk = now;
  const points = drawing.points.slice(inkSent);
  inkSent = drawing.points.length;
  client.sendData("ink", { id: drawing.id, color: drawing.color, width: drawing.width, points });
}

/** @param {PointerEvent} event */
function sendCursor(event) {
  if (!client) return;
  const now = performance.now();
  if (now - lastCursor < CURSOR_INTERVAL_MS) return;
  lastCursor = now;
  const [x, y] = point(event);
  client.sendData("cursor", { x, y, name: client.self?.name, color: $("color").value }, { lossy: true });
}

canvas.addEventListener("pointerdown", (event) => {
  if (!client?.self || event.button > 0) return;
  canvas.setPointerCapture(event.pointerId);
  counter += 1;
  drawing = {
    id: `${client.self.id}-${Date.now().toString(36)}-${counter}`,
    author: client.self.id,
    color: $("color").value,
    width: Number($("width").value) * (event.pointerType === "pen" && event.pressure ? 0.5 + event.pressure : 1),
    points: [point(event)],
  };
  inkSent = 0;
  lastInk = 0;
  sendInk(true);
  scheduleRender();
});

canvas.addEventListener("pointermove", (event) => {
  if (!client) return;
  sendCursor(event);
  if (!drawing || !canvas.hasPointerCapture(event.pointerId)) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of events.length ? events : [event]) {
    const p = point(e);
    const last = drawing.points[drawing.points.length - 1];
    if (Math.abs(p[0] - last[0]) + Math.abs(p[1] - last[1]) > 0.001) drawing.points.push(p);
  }
  sendInk(false);
  scheduleRender();
});

function finishStroke() {
  if (!client || !drawing) return;
  const stroke = drawing;
  drawing = null;
  // The finished stroke is what persists; long strokes go in pieces that share the id.
  for (let i = 0; i < stroke.points.length; i += MAX_POINTS) {
    const points = stroke.points.slice(i === 0 ? 0 : i - 1, i + MAX_POINTS);
    client.sendData("whiteboard", { op: "stroke", id: stroke.id, color: stroke.color, width: stroke.width, points });
  }
  board.strokes.push(stroke);
  board.undone = [];
  scheduleRender();
}

canvas.addEventListener("pointerup", finishStroke);
canvas.addEventListener("pointercancel", finishStroke);

function undo() {
  if (!client) return;
  for (let i = board.strokes.length - 1; i >= 0; i -= 1) {
    const stroke = board.strokes[i];
    if (stroke.author === client.self?.id) {
      board.strokes.splice(i, 1);
      board.undone.push(stroke);
      client.sendData("whiteboard", { op: "undo", id: stroke.id });
      scheduleRender();
      return;
    }
  }
}

function clearBoard() {
  if (!client) return;
  client.sendData("whiteboard", { op: "clear" });
  apply({ op: "clear" }, client.self?.id ?? "");
}

$("undo").addEventListener("click", undo);
$("clear").addEventListener("click", clearBoard);
window.addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key === "z") {
    event.preventDefault();
    undo();
  }
});

// ---------------------------------------------------------------- joining

function showPeople() {
  if (!client) return;
  const names = [...client.participants.values()].map((p) => p.name);
  $("people").textContent = `${names.length} here: ${names.join(", ")}`;
}

/** @param {SubmitEvent} event */
async function join(event) {
  event.preventDefault();
  const room = $("room").value.trim();
  const name = $("name").value.trim();
  $("join").disabled = true;
  $("status").textContent = "Joining…";
  try {
    const withMedia = $("with-media").checked;
    const stream = withMedia
      ? await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 320, height: 240 } })
      : null;
    const token = await joinToken(room, name);
    const joined = (client = new RoomClient(undefined, { data: true }));
    joined.on("data", ({ topic, payload, from }) => {
      if (from === undefined) return; // the server names the sender of everything it relays
      if (topic === "whiteboard") apply(payload, from);
      else if (topic === "ink") applyInk(payload, from);
      else if (topic === "cursor" && payload && typeof payload === "object") {
        board.cursors.set(from, /** @type {Cursor} */ (payload));
        renderCursors();
      }
    });
    joined.on("datasync", (sync) => {
      // A replay follows: the persistent state starts from scratch.
      board.syncs.push(sync);
      board.strokes = [];
      board.ink.clear();
      scheduleRender();
    });
    joined.on("dataerror", ({ code, message }) => {
      $("status").textContent = `The server refused a message: ${code} (${message})`;
    });
    joined.on("participants", () => {
      for (const id of board.cursors.keys()) if (!joined.participants.has(id)) board.cursors.delete(id);
      for (const [id, stroke] of board.ink) if (!joined.participants.has(stroke.author)) board.ink.delete(id);
      showPeople();
      scheduleRender();
    });
    joined.on("track", ({ participantId, stream }) => {
      /** @type {HTMLVideoElement | null} */
      let video = document.querySelector(`#videos video[data-participant="${participantId}"]`);
      if (!video) {
        video = document.createElement("video");
        video.autoplay = true;
        video.playsInline = true;
        video.dataset.participant = participantId;
        $("videos").append(video);
      }
      if (video.srcObject !== stream) video.srcObject = stream;
    });
    joined.on("participant_left", ({ participant_id }) => {
      document.querySelector(`#videos video[data-participant="${participant_id}"]`)?.remove();
    });
    joined.on("close", ({ code, reason }) => {
      $("status").textContent = `Disconnected (${code}${reason ? " " + reason : ""}).`;
    });
    joined.on("reconnecting", ({ attempt }) => {
      $("status").textContent = `Reconnecting (attempt ${attempt})…`;
      $("status").dataset.state = "reconnecting";
    });
    joined.on("reconnected", ({ resumed }) => {
      board.self = joined.self?.id ?? null;
      $("status").textContent = `In ${room} as ${joined.self?.name}${resumed ? "" : " (rejoined)"}.`;
      $("status").dataset.state = "connected";
    });
    await joined.join(room, token, name);
    board.self = joined.self?.id ?? null;
    if (stream) await joined.publish(stream);
    $("status").textContent = `In ${room} as ${joined.self?.name}.`;
    $("join-form").hidden = true;
    $("board-ui").hidden = false;
    showPeople();
    scheduleRender();
  } catch (error) {
    $("status").textContent = `Could not join: ${error instanceof Error ? error.message : error}`;
    $("join").disabled = false;
  }
}

$("join-form").addEventListener("submit", join);
