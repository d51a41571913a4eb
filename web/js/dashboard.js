// @ts-check
// relayroom dashboard: rooms, participants and live per-connection charts from the admin feed.
// Wires the data (dashboard-feed.js: token, admin API, feed, state) to the drawing
// (dashboard-view.js: charts, lists, event log). Plain ES modules, no dependencies.
import { $ } from "./page.js";
import { api, connectFeed, obtainToken, setView, state, useToken } from "./dashboard-feed.js";
import { addEvent, addEvents, render, resetEvents, setStatus } from "./dashboard-view.js";

export { LineChart, metricText } from "./dashboard-view.js";

setView({ status: setStatus, hello: resetEvents, events: addEvents, changed: render });

$("remove").addEventListener("click", async () => {
  const sel = state.selected;
  if (!sel) return;
  await api("DELETE", `/api/rooms/${encodeURIComponent(sel.room)}/participants/${encodeURIComponent(sel.id)}`)
    .catch((e) => addEvent({ t: Date.now() / 1000, type: "errors", message: e.message }));
});

$("token-form").addEventListener("submit", (/** @type {SubmitEvent} */ event) => {
  event.preventDefault();
  $("token-form").hidden = true;
  useToken($("token").value.trim());
});

window.addEventListener("resize", () => render());

state.token = await obtainToken();
if (state.token) connectFeed();
else $("token-form").hidden = false;
