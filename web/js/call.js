// @ts-check
// Video call page: local preview, a grid of remote videos with names, mute, device picker,
// screen share, leave. Joins with camera and microphone, microphone only, or to watch only:
// a machine without a camera (or a page without camera access) can still take part.
import { $, joinToken, prefillFromAddress } from "./page.js";
import { RoomClient } from "./room.js";
import { describeMediaError, mediaAccess } from "./media-access.js";
import { watchTileSize } from "./tile-size.js";

const params = prefillFromAddress();
const requestedMode = params.get("mode");
if (requestedMode) selectMode(requestedMode);

/** @type {RoomClient | null} */
let client = null;
/** @type {MediaStream | null} */
let localStream = null;
/** @type {MediaStreamTrack | null} */
let screenTrack = null;
/** @type {{camera: boolean, microphone: boolean, note?: string}} */
let access = { camera: true, microphone: true };
/** @type {Map<string, HTMLElement>} tile key -> figure element; key: participant id, or "id/track id" for extra videos */
const tiles = new Map();
/** @type {Map<string, () => void>} remote video track id -> stops reporting its tile's size */
const sizeWatchers = new Map();

/**
 * Report the size `video` shows remote track `track` at (the server picks the simulcast
 * layer from it; a hidden tile pauses the track).
 * @param {MediaStreamTrack} track
 * @param {HTMLVideoElement} video
 */
function reportTileSize(track, video) {
  sizeWatchers.get(track.id)?.();
  sizeWatchers.set(track.id, watchTileSize(video, (request) => client?.setSubscription(track.id, request)));
}

function stopSizeWatchers() {
  for (const stop of sizeWatchers.values()) stop();
  sizeWatchers.clear();
}

/**
 * The join mode's radio button.
 * @param {string} mode video, audio or watch
 * @returns {HTMLInputElement | null}
 */
const modeInput = (mode) => document.querySelector(`input[name="mode"][value="${mode}"]`);

/** @param {string} mode */
function selectMode(mode) {
  const input = modeInput(mode);
  if (input && !input.disabled) input.checked = true;
}

/** @returns {string} */
function chosenMode() {
  /** @type {HTMLInputElement | null} */
  const checked = document.querySelector('input[name="mode"]:checked');
  return checked?.value || "watch";
}

/** @param {string} text */
function note(text) {
  $("device-note").textContent = text;
  $("device-note").hidden = !text;
}

/** What this page can capture; disables the join modes it cannot offer, and says why. */
async function checkDevices() {
  access = await mediaAccess(window);
  /**
   * @param {string} mode
   * @param {boolean} off
   */
  const disable = (mode, off) => {
    const input = modeInput(mode);
    if (!input) return;
    input.disabled = off;
    input.closest("label")?.classList.toggle("muted", off);
  };
  disable("video", !access.camera);
  disable("audio", !access.microphone);
  if (!access.camera) selectMode(access.microphone ? "audio" : "watch");
  // Without a microphone, "camera and microphone" means the camera alone.
  note(access.note ?? "");
  return access;
}

/**
 * The tile of `key`, made on first use, captioned with the participant's name.
 * @param {string} key
 * @param {string} participantId
 * @param {string} [label]
 * @returns {HTMLElement}
 */
function tileFor(key, participantId, label = "") {
  let tile = tiles.get(key);
  if (!tile) {
    tile = document.createElement("figure");
    tile.className = "tile remote";
    if (key !== participantId) tile.classList.add("screen");
    tile.dataset.participant = participantId;
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    const caption = document.createElement("figcaption");
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.hidden = true;
    const state = document.createElement("span");
    state.className = "state";
    state.textContent = "reconnecting";
    state.hidden = true;
    tile.append(video, caption, badge, state);
    $("grid").append(tile);
    tiles.set(key, tile);
  }
  const participant = client?.participants.get(participantId);
  const name = participant ? participant.name : participantId;
  $in(tile, "figcaption").textContent = label ? `${name} (${label})` : name;
  showConnection(participantId, participant?.connection);
  return tile;
}

/**
 * Outline the tiles of who speaks now (the server ranks them, loudest first).
 * @param {{ participant_id: string }[]} speakers
 */
function showSpeakers(speakers) {
  const speaking = new Set(speakers.map((s) => s.participant_id));
  for (const tile of $("grid").querySelectorAll(".tile")) {
    const id = tile.classList.contains("local") ? client?.self?.id : /** @type {HTMLElement} */ (tile).dataset.participant;
    tile.classList.toggle("speaking", id !== undefined && speaking.has(id));
  }
}

/**
 * The element matching `selector` inside `tile` (tiles are built with all their parts).
 * @param {Element} tile
 * @param {string} selector
 * @returns {any}
 */
const $in = (tile, selector) => tile.querySelector(selector);

/** @param {string} participantId */
function tilesOf(participantId) {
  return [...tiles.entries()].filter(([, tile]) => tile.dataset.participant === participantId);
}

/** @param {string} participantId */
function removeTiles(participantId) {
  for (const [key, tile] of tilesOf(participantId)) {
    tile.remove();
    tiles.delete(key);
  }
}

function removeAllTiles() {
  for (const tile of tiles.values()) tile.remove();
  tiles.clear();
}

/**
 * @param {string} participantId
 * @param {string} [state] connected or reconnecting
 */
function showConnection(participantId, state) {
  for (const [, tile] of tilesOf(participantId)) {
    tile.dataset.connection = state || "connected";
    $in(tile, ".state").hidden = state !== "reconnecting";
  }
}

/**
 * @param {string} participantId
 * @param {import("./messages.js").TrackInfo} track
 */
function showMuted(participantId, track) {
  const tile = tiles.get(participantId);
  if (!tile) return;
  const badge = $in(tile, ".badge");
  tile.dataset[`${track.kind}Muted`] = String(track.muted);
  const muted = [tile.dataset.audioMuted === "true" ? "mic off" : "",
    tile.dataset.videoMuted === "true" ? "camera off" : ""].filter(Boolean);
  badge.textContent = muted.join(", ");
  badge.hidden = muted.length === 0;
}

/** @param {import("./room.js").RoomEventMap["track"]} remote */
function onRemoteTrack({ participantId, track, stream }) {
  // The first video of a participant (and its audio) share the main tile; another video (a
  // screen share) gets a tile of its own.
  const main = tileFor(participantId, participantId);
  /** @type {HTMLVideoElement} */
  const mainVideo = $in(main, "video");
  if (track.kind === "video") {
    const shown = /** @type {MediaStream | null} */ (mainVideo.srcObject)?.getVideoTracks?.()[0];
    if (shown && shown !== track && shown.readyState === "live") {
      const extra = tileFor(`${participantId}/${track.id}`, participantId, "screen");
      /** @type {HTMLVideoElement} */
      const extraVideo = $in(extra, "video");
      extraVideo.srcObject = new MediaStream([track]);
      reportTileSize(track, extraVideo);
      return;
    }
    reportTileSize(track, mainVideo);
  }
  if (mainVideo.srcObject !== stream) mainVideo.srcObject = stream;
}

/** @param {import("./room.js").RoomEventMap["trackended"]} ended */
function onTrackEnded({ participantId, trackId }) {
  sizeWatchers.get(trackId)?.();
  sizeWatchers.delete(trackId);
  const key = `${participantId}/${trackId}`;
  tiles.get(key)?.remove();
  tiles.delete(key);
}

/**
 * @param {string} mode
 * @returns {Promise<MediaStream | null>}
 */
async function captureLocal(mode) {
  if (mode === "watch") return null;
  const constraints = {
    audio: !access.microphone ? false
      : $("mic-select").value ? { deviceId: { exact: $("mic-select").value } } : true,
    video: mode === "video"
      // Published as three simulcast layers (room.js): 640x480, 320x240 and 160x120.
      ? { width: 640, height: 480, ...($("camera-select").value ? { deviceId: { exact: $("camera-select").value } } : {}) }
      : false,
  };
  return navigator.mediaDevices.getUserMedia(constraints);
}

async function fillDevicePickers() {
  if (!navigator.mediaDevices?.enumerateDevices) return;
  const devices = await navigator.mediaDevices.enumerateDevices();
  /** @type {[HTMLSelectElement, string, MediaStreamTrack | undefined][]} */
  const pickers = [
    [$("camera-select"), "videoinput", localStream?.getVideoTracks()[0]],
    [$("mic-select"), "audioinput", localStream?.getAudioTracks()[0]],
  ];
  for (const [select, kind, track] of pickers) {
    const current = track?.getSettings().deviceId;
    select.replaceChildren(...devices.filter((d) => d.kind === kind).map((d, i) => {
      const option = document.createElement("option");
      option.value = d.deviceId;
      option.textContent = d.label || `${kind === "videoinput" ? "Camera" : "Microphone"} ${i + 1}`;
      option.selected = d.deviceId === current;
      return option;
    }));
    const label = select.closest("label");
    if (label) label.hidden = !track || select.options.length === 0;
  }
}

/** Switch camera or microphone: the new track replaces the old on the same sender. */
/**
 * @param {"video" | "audio"} kind
 * @param {string} deviceId
 */
async function switchDevice(kind, deviceId) {
  const old = kind === "video" ? localStream?.getVideoTracks()[0] : localStream?.getAudioTracks()[0];
  if (!localStream || !old || !client) return;
  const constraints = kind === "video"
    ? { video: { width: 640, height: 480, deviceId: { exact: deviceId } } }
    : { audio: { deviceId: { exact: deviceId } } };
  try {
    const fresh = (await navigator.mediaDevices.getUserMedia(constraints)).getTracks()[0];
    fresh.enabled = old.enabled;
    await client.replaceTrack(old, fresh);
    localStream.removeTrack(old);
    localStream.addTrack(fresh);
    old.stop();
    $("local-video").srcObject = localStream;
  } catch (error) {
    $("status").textContent = `Could not switch ${kind === "video" ? "camera" : "microphone"}: ${describeMediaError(error)}`;
  }
}

async function toggleScreenShare() {
  if (!client) return;
  const button = $("share-screen");
  if (screenTrack) {
    const track = screenTrack;
    screenTrack = null;
    track.stop();
    button.textContent = "Share screen";
    button.dataset.sharing = "false";
    try {
      await client.unpublishTrack(track);
    } catch (error) {
      $("status").textContent = `Could not stop sharing cleanly: ${error instanceof Error ? error.message : error}`;
    }
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    const shared = (screenTrack = stream.getVideoTracks()[0]);
    // Stopping from the browser's own "stop sharing" bar ends the track.
    shared.addEventListener("ended", () => { if (screenTrack) toggleScreenShare(); });
    await client.publishTrack(shared, stream);
    button.textContent = "Stop sharing";
    button.dataset.sharing = "true";
  } catch (error) {
    screenTrack = null;
    $("status").textContent = `Could not share the screen: ${describeMediaError(error)}`;
  }
}

/** @param {SubmitEvent} event */
async function join(event) {
  event.preventDefault();
  const room = $("room").value.trim();
  const name = $("name").value.trim();
  const mode = chosenMode();
  $("join").disabled = true;
  try {
    $("status").textContent = mode === "watch" ? "Joining…" : "Starting camera…";
    try {
      localStream = await captureLocal(mode);
    } catch (error) {
      // No device or no permission: say so, and let the user pick another way to join.
      await checkDevices();
      throw new Error(`${describeMediaError(error)} Choose "microphone only" or "watch only" to join anyway.`);
    }
    $("local-video").srcObject = localStream;
    $("grid").querySelector(".tile.local").hidden = !localStream?.getVideoTracks().length;
    $("status").textContent = "Joining…";
    const token = await joinToken(room, name);
    const joined = (client = new RoomClient());
    joined.on("track", onRemoteTrack);
    joined.on("trackended", onTrackEnded);
    joined.on("participants", () => {
      for (const [key, tile] of tiles) {
        tileFor(key, tile.dataset.participant ?? "", key.includes("/") ? "screen" : "");
      }
    });
    joined.on("participant_left", ({ participant_id }) => removeTiles(participant_id));
    joined.on("participant_connection", ({ participant_id, state }) =>
      showConnection(participant_id, state));
    joined.on("track_muted", ({ participant_id, track }) => showMuted(participant_id, track));
    joined.on("active_speakers", ({ speakers }) => showSpeakers(speakers));
    joined.on("close", ({ code, reason }) => {
      $("status").textContent = `Disconnected (${code}${reason ? " " + reason : ""}).`;
      $("status").dataset.state = "closed";
    });
    joined.on("reconnecting", ({ attempt }) => {
      $("status").textContent = `Reconnecting (attempt ${attempt})…`;
      $("status").dataset.state = "reconnecting";
    });
    joined.on("reconnected", ({ resumed }) => {
      $("status").textContent = `In ${room} as ${joined.self?.name}${resumed ? "" : " (rejoined)"}.`;
      $("status").dataset.state = "connected";
    });
    joined.on("reset", () => {
      stopSizeWatchers();
      removeAllTiles();
      screenTrack?.stop();
      screenTrack = null;
      $("share-screen").textContent = "Share screen";
    });
    await joined.join(room, token, name);
    $("local-name").textContent = `${joined.self?.name} (you)`;
    if (localStream) await joined.publish(localStream);
    /** @type {Record<string, string>} */
    const hows = { video: "", audio: " (microphone only)", watch: " (watching)" };
    $("status").textContent = `In ${room} as ${joined.self?.name}${hows[mode]}.`;
    $("status").dataset.state = "connected";
    $("join-form").hidden = true;
    $("call").hidden = false;
    $("toggle-mic").hidden = !localStream?.getAudioTracks().length;
    $("toggle-cam").hidden = !localStream?.getVideoTracks().length;
    $("share-screen").hidden = !navigator.mediaDevices?.getDisplayMedia;
    await fillDevicePickers();
  } catch (error) {
    localStream?.getTracks().forEach((t) => t.stop());
    localStream = null;
    $("status").textContent = `Could not join: ${error instanceof Error ? error.message : error}`;
    $("join").disabled = false;
  }
}

/**
 * @param {string} kind
 * @param {HTMLElement} button
 * @param {string} onLabel
 * @param {string} offLabel
 */
function toggle(kind, button, onLabel, offLabel) {
  const track = localStream?.getTracks().find((t) => t.kind === kind);
  if (!track || !client) return;
  const muted = track.enabled; // enabled now -> mute it
  client.setMuted(track, muted);
  button.textContent = muted ? offLabel : onLabel;
}

$("join-form").addEventListener("submit", join);
$("toggle-mic").addEventListener("click", (/** @type {MouseEvent} */ e) =>
  toggle("audio", /** @type {HTMLElement} */ (e.target), "Mute microphone", "Unmute microphone"));
$("toggle-cam").addEventListener("click", (/** @type {MouseEvent} */ e) =>
  toggle("video", /** @type {HTMLElement} */ (e.target), "Turn camera off", "Turn camera on"));
$("share-screen").addEventListener("click", () => toggleScreenShare());
$("camera-select").addEventListener("change", () => switchDevice("video", $("camera-select").value));
$("mic-select").addEventListener("change", () => switchDevice("audio", $("mic-select").value));
$("leave").addEventListener("click", () => {
  client?.leave();
  localStream?.getTracks().forEach((t) => t.stop());
  screenTrack?.stop();
  screenTrack = null;
  stopSizeWatchers();
  removeAllTiles();
  $("call").hidden = true;
  $("join-form").hidden = false;
  $("join").disabled = false;
  $("status").textContent = "Left the call.";
});

checkDevices();
