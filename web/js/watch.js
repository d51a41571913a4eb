// @ts-check
// The /watch page: plays a room over WHEP (docs/whip-whep.md) with a plain RTCPeerConnection
// and fetch. The client offers recvonly audio and video; the server answers with one of each
// and keeps feeding them (it follows a publisher that leaves and comes back).
import { $, joinToken, prefillFromAddress } from "./page.js";

/** How long to wait for ICE candidates before sending the offer without the rest. */
const GATHER_TIMEOUT_MS = 2000;

/** @type {{pc: RTCPeerConnection, location: string | null} | null} */
let session = null;

/** @param {string} text */
function setStatus(text) {
  $("status").textContent = text;
}

/**
 * Resolve once ICE gathering completes (or the timeout passes): the offer then carries the
 * candidates, so no trickle PATCH is needed.
 * @param {RTCPeerConnection} pc
 * @returns {Promise<void>}
 */
function gathered(pc) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    const timer = setTimeout(resolve, GATHER_TIMEOUT_MS);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

/**
 * Start playing `room` over WHEP.
 * @param {string} room
 * @param {string} token
 * @param {string} participant
 */
async function watch(room, token, participant) {
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
  session = { pc, location: null };
  pc.addTransceiver("audio", { direction: "recvonly" });
  pc.addTransceiver("video", { direction: "recvonly" });
  const stream = new MediaStream();
  const player = /** @type {HTMLVideoElement} */ ($("player"));
  player.srcObject = stream;
  pc.ontrack = (event) => {
    stream.addTrack(event.track);
    player.play().catch(() => {});
  };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "connected") setStatus(`Playing room ${room}.`);
    else if (pc.connectionState === "failed") setStatus("The connection failed.");
  };
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const query = participant ? `?participant=${encodeURIComponent(participant)}` : "";
  const response = await fetch(`/whep/${encodeURIComponent(room)}${query}`, {
    method: "POST",
    headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${token}` },
    body: pc.localDescription?.sdp ?? "",
  });
  const body = await response.text();
  if (response.status !== 201) throw new Error(`${response.status}: ${body.trim()}`);
  session.location = response.headers.get("Location");
  await pc.setRemoteDescription({ type: "answer", sdp: body });
  setStatus(`Connecting to room ${room}...`);
}

async function stop() {
  const current = session;
  session = null;
  if (!current) return;
  current.pc.close();
  if (current.location) await fetch(current.location, { method: "DELETE" }).catch(() => {});
  setStatus("Not playing.");
}

prefillFromAddress(["room", "name", "participant"]);
$("watch-form").addEventListener("submit", async (/** @type {Event} */ event) => {
  event.preventDefault();
  await stop();
  const room = $("room").value.trim();
  $("watch").disabled = true;
  try {
    const token = await joinToken(room, $("name").value.trim());
    await watch(room, token, $("participant").value.trim());
    $("stop").hidden = false;
  } catch (error) {
    await stop();
    setStatus(`Cannot play: ${error instanceof Error ? error.message : error}`);
  } finally {
    $("watch").disabled = false;
  }
});
$("stop").addEventListener("click", async () => {
  await stop();
  $("stop").hidden = true;
});
window.addEventListener("pagehide", () => void stop());
