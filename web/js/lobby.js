// @ts-check
// Lobby page: join a room and list its participants live.
import { $, joinToken, prefillFromAddress } from "./page.js";
import { SignalingClient } from "./signaling.js";

prefillFromAddress();

/** @type {SignalingClient | null} */
let client = null;

/** @param {import("./messages.js").Participant[]} participants */
function render(participants) {
  const list = $("participants");
  list.replaceChildren(
    ...participants.map((p) => {
      const item = document.createElement("li");
      item.dataset.id = p.id;
      item.textContent = p.id === client?.self?.id ? `${p.name} (you)` : p.name;
      return item;
    }),
  );
}

$("join-form").addEventListener("submit", async (/** @type {SubmitEvent} */ event) => {
  event.preventDefault();
  const room = $("room").value.trim();
  const name = $("name").value.trim();
  $("status").textContent = "Joining…";
  try {
    const token = await joinToken(room, name);
    const joined = (client = new SignalingClient());
    joined.on("participants", render);
    joined.on("reconnecting", ({ attempt }) => {
      $("status").textContent = `Reconnecting (attempt ${attempt})…`;
    });
    joined.on("reconnected", () => {
      $("status").textContent = `Connected as ${joined.self?.name}.`;
    });
    joined.on("close", ({ code, reason }) => {
      $("status").textContent = `Disconnected (${code}${reason ? " " + reason : ""}).`;
      $("leave").hidden = true;
      $("join").disabled = false;
    });
    await joined.join(room, token, name);
    $("room-name").textContent = room;
    $("status").textContent = `Connected as ${joined.self?.name}.`;
    $("join").disabled = true;
    $("leave").hidden = false;
  } catch (error) {
    $("status").textContent = `Could not join: ${error instanceof Error ? error.message : error}`;
  }
});

$("leave").addEventListener("click", () => client?.leave());
