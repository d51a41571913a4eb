// Lobby page: join a room and list its participants live.
import { $, joinToken, prefillFromAddress } from "./page.js";
import { SignalingClient } from "./signaling.js";

prefillFromAddress();

let client = null;

function render(participants) {
  const list = $("participants");
  list.replaceChildren(
    ...participants.map((p) => {
      const item = document.createElement("li");
      item.dataset.id = p.id;
      item.textContent = p.id === client.self?.id ? `${p.name} (you)` : p.name;
      return item;
    }),
  );
}

$("join-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const room = $("room").value.trim();
  const name = $("name").value.trim();
  $("status").textContent = "Joining…";
  try {
    const token = await joinToken(room, name);
    client = new SignalingClient();
    client.addEventListener("participants", (e) => render(e.detail));
    client.addEventListener("reconnecting", (e) => {
      $("status").textContent = `Reconnecting (attempt ${e.detail.attempt})…`;
    });
    client.addEventListener("reconnected", () => {
      $("status").textContent = `Connected as ${client.self.name}.`;
    });
    client.addEventListener("close", (e) => {
      $("status").textContent = `Disconnected (${e.detail.code}${e.detail.reason ? " " + e.detail.reason : ""}).`;
      $("leave").hidden = true;
      $("join").disabled = false;
    });
    await client.join(room, token, name);
    $("room-name").textContent = room;
    $("status").textContent = `Connected as ${client.self.name}.`;
    $("join").disabled = true;
    $("leave").hidden = false;
  } catch (error) {
    $("status").textContent = `Could not join: ${error.message}`;
  }
});

$("leave").addEventListener("click", () => client?.leave());
