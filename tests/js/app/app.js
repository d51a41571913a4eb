// A third-party application using the packed @relayroom/client (tests/js/test_app.py).
// Its settings come in the fragment: #server=ws://host:port/ws&room=R&token=JWT&publish=1
import { RoomClient } from "@relayroom/client";

const settings = new URLSearchParams(window.location.hash.slice(1));
const status = document.getElementById("status");
const videos = document.getElementById("videos");
const client = new RoomClient(settings.get("server"), { data: true });
const received = [];
window.app = { client, received, error: null, joined: null };

client.on("track", ({ participantId, track, stream }) => {
  if (track.kind !== "video") return;
  const video = document.createElement("video");
  video.autoplay = true;
  video.muted = true;
  video.playsInline = true;
  video.dataset.participant = participantId;
  video.srcObject = stream;
  videos.append(video);
});
client.on("data", (message) => received.push(message));
client.on("close", ({ code, reason }) => { status.textContent = `closed ${code} ${reason}`; });

try {
  window.app.joined = await client.join(settings.get("room"), settings.get("token"));
  if (settings.get("publish")) {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 } });
    await client.publish(stream);
  }
  status.textContent = `joined as ${client.self.id}`;
} catch (error) {
  window.app.error = `${error.name}: ${error.message}`;
  status.textContent = `failed: ${error.message}`;
}
