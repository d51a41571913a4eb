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

const board = {
  strokes: [], // {id, author, color, width, points}, in drawing order
  ink: new Map(), // stroke id -> the stroke being drawn by someone else
  cursors: new Map(), // participant id -> {x, y, name, color}
  undone: [],
  self: null,
  syncs: [],
  renders: 0,
  strokeById(id) {
    return this.strokes.find((s) => s.id === id);
  },
};
window.board = board;

const canvas = $("canvas");
const ctx = canvas.getContext("2d");
let client = null;
let counter = 0;
let drawing = null; // the local stroke in progress
let lastInk = 0;
let inkSent = 0;
let lastCursor = 0;
let renderQueued = false;

// ---------------------------------------------------------------- model

// Everyone's page draws what anyone sent (and what is replayed to later joiners): check every
// value before it reaches the canvas, so one bad stroke is skipped instead of breaking the page.
const MAX_WIDTH = 100;

function validPoint(pt) {
  return Array.isArray(pt) && pt.length === 2 && pt.every((v) => Number.isFinite(v) && v >= 0 && v <= 1);
}

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

function drawStroke(stroke) {
  try {
    drawStrokeUnchecked(stroke);
  } catch (err) {
    console.warn("whiteboard: a stroke could not be drawn", err);
  }
}

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

function point(event) {
  const rect = canvas.getBoundingClientRect();
  const x = Math.min(1, Math.max(0, (event.clientX - rect.left) / rect.width));
  const y = Math.min(1, Math.max(0, (event.clientY - rect.top) / rect.height));
  return [Math.round(x * 10000) / 10000, Math.round(y * 10000) / 10000];
}

function sendInk(force) {
  if (!drawing || inkSent >= drawing.points.length) return;
  const now = performance.now();
  if (!force && now - lastInk < INK_INTERVAL_MS) return;
  lastInk = now;
  const points = drawing.points.slice(inkSent);
  inkSent = drawing.points.length;
  client.sendData("ink", { id: drawing.id, color: drawing.color, width: drawing.width, points });
}

function sendCursor(event) {
  const now = performance.now();
  if (now - lastCursor < CURSOR_INTERVAL_MS) return;
  lastCursor = now;
  const [x, y] = point(event);
  client.sendData("cursor", { x, y, name: client.self.name, color: $("color").value }, { lossy: true });
}

canvas.addEventListener("pointerdown", (event) => {
  if (!client || event.button > 0) return;
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
  if (!drawing) return;
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
    if (stroke.author === client.self.id) {
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
  apply({ op: "clear" }, client.self.id);
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
    client = new RoomClient(undefined, { data: true });
    client.addEventListener("data", (e) => {
      const { topic, payload, from } = e.detail;
      if (topic === "whiteboard") apply(payload, from);
      else if (topic === "ink") applyInk(payload, from);
      else if (topic === "cursor" && payload && typeof payload === "object") {
        board.cursors.set(from, payload);
        renderCursors();
      }
    });
    client.addEventListener("datasync", (e) => {
      // A replay follows: the persistent state starts from scratch.
      board.syncs.push(e.detail);
      board.strokes = [];
      board.ink.clear();
      scheduleRender();
    });
    client.addEventListener("dataerror", (e) => {
      $("status").textContent = `The server refused a message: ${e.detail.code} (${e.detail.message})`;
    });
    client.addEventListener("participants", () => {
      for (const id of board.cursors.keys()) if (!client.participants.has(id)) board.cursors.delete(id);
      for (const [id, stroke] of board.ink) if (!client.participants.has(stroke.author)) board.ink.delete(id);
      showPeople();
      scheduleRender();
    });
    client.addEventListener("track", (e) => {
      let video = document.querySelector(`#videos video[data-participant="${e.detail.participantId}"]`);
      if (!video) {
        video = document.createElement("video");
        video.autoplay = true;
        video.playsInline = true;
        video.dataset.participant = e.detail.participantId;
        $("videos").append(video);
      }
      if (video.srcObject !== e.detail.stream) video.srcObject = e.detail.stream;
    });
    client.addEventListener("participant_left", (e) => {
      document.querySelector(`#videos video[data-participant="${e.detail.participant_id}"]`)?.remove();
    });
    client.addEventListener("close", (e) => {
      $("status").textContent = `Disconnected (${e.detail.code}${e.detail.reason ? " " + e.detail.reason : ""}).`;
    });
    client.addEventListener("reconnecting", (e) => {
      $("status").textContent = `Reconnecting (attempt ${e.detail.attempt})…`;
      $("status").dataset.state = "reconnecting";
    });
    client.addEventListener("reconnected", (e) => {
      board.self = client.self.id;
      $("status").textContent = `In ${room} as ${client.self.name}${e.detail.resumed ? "" : " (rejoined)"}.`;
      $("status").dataset.state = "connected";
    });
    await client.join(room, token, name);
    board.self = client.self.id;
    if (stream) await client.publish(stream);
    $("status").textContent = `In ${room} as ${client.self.name}.`;
    $("join-form").hidden = true;
    $("board-ui").hidden = false;
    showPeople();
    scheduleRender();
  } catch (error) {
    $("status").textContent = `Could not join: ${error.message}`;
    $("join").disabled = false;
  }
}

$("join-form").addEventListener("submit", join);
