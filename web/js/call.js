// Video call page: local preview, a grid of remote videos with names, mute, leave.
import { fetchDevToken } from "./signaling.js";
import { RoomClient } from "./room.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(window.location.search);
if (params.get("room")) $("room").value = params.get("room");
if (params.get("name")) $("name").value = params.get("name");

let client = null;
let localStream = null;
const tiles = new Map(); // participant id -> figure element

function tileFor(participantId) {
  let tile = tiles.get(participantId);
  if (!tile) {
    tile = document.createElement("figure");
    tile.className = "tile remote";
    tile.dataset.participant = participantId;
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    const caption = document.createElement("figcaption");
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.hidden = true;
    tile.append(video, caption, badge);
    $("grid").append(tile);
    tiles.set(participantId, tile);
  }
  const participant = client.participants.get(participantId);
  tile.querySelector("figcaption").textContent = participant ? participant.name : participantId;
  return tile;
}

function removeTile(participantId) {
  tiles.get(participantId)?.remove();
  tiles.delete(participantId);
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

async function join(event) {
  event.preventDefault();
  const room = $("room").value.trim();
  const name = $("name").value.trim();
  $("status").textContent = "Starting camera…";
  $("join").disabled = true;
  try {
    localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
    $("local-video").srcObject = localStream;
    $("status").textContent = "Joining…";
    const token = $("token").value.trim() || (await fetchDevToken(room, name)).token;
    client = new RoomClient();
    client.addEventListener("track", (e) => {
      const tile = tileFor(e.detail.participantId);
      const video = tile.querySelector("video");
      if (video.srcObject !== e.detail.stream) video.srcObject = e.detail.stream;
    });
    client.addEventListener("participants", () => {
      for (const id of tiles.keys()) tileFor(id);
    });
    client.addEventListener("participant_left", (e) => removeTile(e.detail.participant_id));
    client.addEventListener("track_muted", (e) => showMuted(e.detail.participant_id, e.detail.track));
    client.addEventListener("close", (e) => {
      $("status").textContent = `Disconnected (${e.detail.code}${e.detail.reason ? " " + e.detail.reason : ""}).`;
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
      for (const id of [...tiles.keys()]) removeTile(id);
    });
    await client.join(room, token, name);
    $("local-name").textContent = `${client.self.name} (you)`;
    await client.publish(localStream);
    $("status").textContent = `In ${room} as ${client.self.name}.`;
    $("join-form").hidden = true;
    $("call").hidden = false;
  } catch (error) {
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
$("leave").addEventListener("click", () => {
  client?.leave();
  localStream?.getTracks().forEach((t) => t.stop());
  for (const id of [...tiles.keys()]) removeTile(id);
  $("call").hidden = true;
  $("join-form").hidden = false;
  $("join").disabled = false;
  $("status").textContent = "Left the call.";
});
