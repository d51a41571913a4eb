// Video call page: local preview, a grid of remote videos with names, mute, device picker,
// screen share, leave. Joins with camera and microphone, microphone only, or to watch only:
// a machine without a camera (or a page without camera access) can still take part.
import { $, joinToken, prefillFromAddress } from "./page.js";
import { RoomClient } from "./room.js";
import { describeMediaError, mediaAccess } from "./media-access.js";

const params = prefillFromAddress();
if (params.get("mode")) selectMode(params.get("mode"));

let client = null;
let localStream = null;
let screenTrack = null;
let access = { camera: true, microphone: true };
const tiles = new Map(); // tile key -> figure element; key: participant id, or "id/track id" for extra videos

function selectMode(mode) {
  const input = document.querySelector(`input[name="mode"][value="${mode}"]`);
  if (input && !input.disabled) input.checked = true;
}

function chosenMode() {
  return document.querySelector('input[name="mode"]:checked')?.value || "watch";
}

function note(text) {
  $("device-note").textContent = text;
  $("device-note").hidden = !text;
}

/** What this page can capture; disables the join modes it cannot offer, and says why. */
async function checkDevices() {
  access = await mediaAccess(window);
  const disable = (mode, off) => {
    const input = document.querySelector(`input[name="mode"][value="${mode}"]`);
    input.disabled = off;
    input.closest("label").classList.toggle("muted", off);
  };
  disable("video", !access.camera);
  disable("audio", !access.microphone);
  if (!access.camera) selectMode(access.microphone ? "audio" : "watch");
  // Without a microphone, "camera and microphone" means the camera alone.
  note(access.note);
  return access;
}

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
  const participant = client.participants.get(participantId);
  const name = participant ? participant.name : participantId;
  tile.querySelector("figcaption").textContent = label ? `${name} (${label})` : name;
  showConnection(participantId, participant?.connection);
  return tile;
}

/** Outline the tiles of who speaks now (the server ranks them, loudest first). */
function showSpeakers(speakers) {
  const speaking = new Set(speakers.map((s) => s.participant_id));
  for (const tile of $("grid").querySelectorAll(".tile")) {
    const id = tile.classList.contains("local") ? client?.self?.id : tile.dataset.participant;
    tile.classList.toggle("speaking", id !== undefined && speaking.has(id));
  }
}

function tilesOf(participantId) {
  return [...tiles.entries()].filter(([, tile]) => tile.dataset.participant === participantId);
}

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

function showConnection(participantId, state) {
  for (const [, tile] of tilesOf(participantId)) {
    tile.dataset.connection = state || "connected";
    tile.querySelector(".state").hidden = state !== "reconnecting";
  }
}

function showMuted(participantId, track) {
  const tile = tiles.get(participantId);
  if (!tile) return;
  const badge = tile.querySelector(".badge");
  tile.dataset[`${track.kind}Muted`] = String(track.muted);
  const muted = [tile.dataset.audioMuted === "true" ? "mic off" : "",
    tile.dataset.videoMuted === "true" ? "camera off" : ""].filter(Boolean);
  badge.textContent = muted.join(", ");
  badge.hidden = muted.length === 0;
}

function onRemoteTrack({ participantId, track, stream }) {
  // The first video of a participant (and its audio) share the main tile; another video (a
  // screen share) gets a tile of its own.
  const main = tileFor(participantId, participantId);
  const mainVideo = main.querySelector("video");
  if (track.kind === "video") {
    const shown = mainVideo.srcObject?.getVideoTracks?.()[0];
    if (shown && shown !== track && shown.readyState === "live") {
      const extra = tileFor(`${participantId}/${track.id}`, participantId, "screen");
      extra.querySelector("video").srcObject = new MediaStream([track]);
      return;
    }
  }
  if (mainVideo.srcObject !== stream) mainVideo.srcObject = stream;
}

function onTrackEnded({ participantId, trackId }) {
  const key = `${participantId}/${trackId}`;
  tiles.get(key)?.remove();
  tiles.delete(key);
}

async function captureLocal(mode) {
  if (mode === "watch") return null;
  const constraints = {
    audio: !access.microphone ? false
      : $("mic-select").value ? { deviceId: { exact: $("mic-select").value } } : true,
    video: mode === "video"
      ? { width: 640, height: 480, ...($("camera-select").value ? { deviceId: { exact: $("camera-select").value } } : {}) }
      : false,
  };
  return navigator.mediaDevices.getUserMedia(constraints);
}

async function fillDevicePickers() {
  if (!navigator.mediaDevices?.enumerateDevices) return;
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [select, kind, track] of [
    [$("camera-select"), "videoinput", localStream?.getVideoTracks()[0]],
    [$("mic-select"), "audioinput", localStream?.getAudioTracks()[0]],
  ]) {
    const current = track?.getSettings().deviceId;
    select.replaceChildren(...devices.filter((d) => d.kind === kind).map((d, i) => {
      const option = document.createElement("option");
      option.value = d.deviceId;
      option.textContent = d.label || `${kind === "videoinput" ? "Camera" : "Microphone"} ${i + 1}`;
      option.selected = d.deviceId === current;
      return option;
    }));
    select.closest("label").hidden = !track || select.options.length === 0;
  }
}

/** Switch camera or microphone: the new track replaces the old on the same sender. */
async function switchDevice(kind, deviceId) {
  const old = kind === "video" ? localStream?.getVideoTracks()[0] : localStream?.getAudioTracks()[0];
  if (!old || !client) return;
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
      $("status").textContent = `Could not stop sharing cleanly: ${error.message}`;
    }
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    screenTrack = stream.getVideoTracks()[0];
    // Stopping from the browser's own "stop sharing" bar ends the track.
    screenTrack.addEventListener("ended", () => { if (screenTrack) toggleScreenShare(); });
    await client.publishTrack(screenTrack, stream);
    button.textContent = "Stop sharing";
    button.dataset.sharing = "true";
  } catch (error) {
    screenTrack = null;
    $("status").textContent = `Could not share the screen: ${describeMediaError(error)}`;
  }
}

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
    client = new RoomClient();
    client.addEventListener("track", (e) => onRemoteTrack(e.detail));
    client.addEventListener("trackended", (e) => onTrackEnded(e.detail));
    client.addEventListener("participants", () => {
      for (const [key, tile] of tiles) tileFor(key, tile.dataset.participant, key.includes("/") ? "screen" : "");
    });
    client.addEventListener("participant_left", (e) => removeTiles(e.detail.participant_id));
    client.addEventListener("participant_connection", (e) =>
      showConnection(e.detail.participant_id, e.detail.state));
    client.addEventListener("track_muted", (e) => showMuted(e.detail.participant_id, e.detail.track));
    client.addEventListener("active_speakers", (e) => showSpeakers(e.detail.speakers));
    client.addEventListener("close", (e) => {
      $("status").textContent = `Disconnected (${e.detail.code}${e.detail.reason ? " " + e.detail.reason : ""}).`;
      $("status").dataset.state = "closed";
    });
    client.addEventListener("reconnecting", (e) => {
      $("status").textContent = `Reconnecting (attempt ${e.detail.attempt})…`;
      $("status").dataset.state = "reconnecting";
    });
    client.addEventListener("reconnected", (e) => {
      $("status").textContent = `In ${room} as ${client.self.name}${e.detail.resumed ? "" : " (rejoined)"}.`;
      $("status").dataset.state = "connected";
    });
    client.addEventListener("reset", () => {
      removeAllTiles();
      screenTrack?.stop();
      screenTrack = null;
      $("share-screen").textContent = "Share screen";
    });
    await client.join(room, token, name);
    $("local-name").textContent = `${client.self.name} (you)`;
    if (localStream) await client.publish(localStream);
    const how = { video: "", audio: " (microphone only)", watch: " (watching)" }[mode];
    $("status").textContent = `In ${room} as ${client.self.name}${how}.`;
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
    $("status").textContent = `Could not join: ${error.message}`;
    $("join").disabled = false;
  }
}

function toggle(kind, button, onLabel, offLabel) {
  const track = localStream?.getTracks().find((t) => t.kind === kind);
  if (!track || !client) return;
  const muted = track.enabled; // enabled now -> mute it
  client.setMuted(track, muted);
  button.textContent = muted ? offLabel : onLabel;
}

$("join-form").addEventListener("submit", join);
$("toggle-mic").addEventListener("click", (e) =>
  toggle("audio", e.target, "Mute microphone", "Unmute microphone"));
$("toggle-cam").addEventListener("click", (e) =>
  toggle("video", e.target, "Turn camera off", "Turn camera on"));
$("share-screen").addEventListener("click", () => toggleScreenShare());
$("camera-select").addEventListener("change", (e) => switchDevice("video", e.target.value));
$("mic-select").addEventListener("change", (e) => switchDevice("audio", e.target.value));
$("leave").addEventListener("click", () => {
  client?.leave();
  localStream?.getTracks().forEach((t) => t.stop());
  screenTrack?.stop();
  screenTrack = null;
  removeAllTiles();
  $("call").hidden = true;
  $("join-form").hidden = false;
  $("join").disabled = false;
  $("status").textContent = "Left the call.";
});

checkDevices();
