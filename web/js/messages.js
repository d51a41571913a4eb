// @ts-check
// What the client reads off the wire, parsed at the edge (pure: no DOM, no sockets, so Node
// tests it directly): signaling frames (docs/protocol.md) and relayed DataChannel frames
// (docs/datachannels.md). Malformed input is dropped here, never thrown at a listener.

/**
 * A participant as the server describes it. `connection` is filled in by the client from
 * `participant_connection` messages (absent means connected).
 * @typedef {object} Participant
 * @property {string} id the server's id of this session (`PA_...`)
 * @property {string} identity the token's `sub`
 * @property {string} name display name
 * @property {"connected" | "reconnecting"} [connection]
 */

/**
 * A published track.
 * @typedef {object} TrackInfo
 * @property {string} id
 * @property {"audio" | "video"} kind
 * @property {boolean} muted
 * @property {string} [codec]
 */

/**
 * The `joined` reply (docs/protocol.md).
 * @typedef {object} Joined
 * @property {"joined"} type
 * @property {number} protocol
 * @property {Participant} participant this session
 * @property {{name: string, mode: "sfu" | "p2p"}} room
 * @property {Participant[]} participants the others
 * @property {{participant_id: string, track: TrackInfo}[]} tracks tracks already published
 * @property {RTCIceServer[]} ice_servers
 * @property {string} resume_token
 * @property {boolean} resumed
 * @property {number} heartbeat_s
 * @property {Record<string, number>} limits
 */

/**
 * Any server message: a `type` and its fields.
 * @typedef {{type: string, ref?: number | string, [field: string]: any}} ServerMessage
 */

/**
 * One relayed DataChannel message.
 * @typedef {object} DataMessage
 * @property {string} topic
 * @property {unknown} payload
 * @property {string | undefined} from the sender's participant id (set by the server)
 * @property {string[] | undefined} to the receivers it was addressed to, if targeted
 * @property {boolean} lossy whether it came on the lossy (unordered, no-retransmit) channel
 */

/**
 * The relay's announcement of a replay of the room's persistent topics.
 * @typedef {object} DataSync
 * @property {"sync"} op
 * @property {"join" | "resync"} reason "resync": this client fell too far behind; reset the
 *   persistent state before the replay
 * @property {number} count how many persisted messages follow
 */

/**
 * What one DataChannel frame carries, in order.
 * @typedef {{type: "data", detail: DataMessage} | {type: "datasync", detail: DataSync}} DataEvent
 */

/**
 * A plain object (not null, not an array).
 * @param {unknown} value
 * @returns {value is Record<string, any>}
 */
function isObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Parse one signaling frame: a JSON object with a string `type`, else null (dropped).
 * @param {string} text
 * @returns {ServerMessage | null}
 */
export function parseServerMessage(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isObject(value) || typeof value.type !== "string" || !value.type) return null;
  return /** @type {ServerMessage} */ (value);
}

/**
 * Parse one DataChannel frame from the relay: an object or an array of them (a batch). Items
 * that are not messages are skipped; topic `relay` is the server's own (only `sync` is known).
 * @param {string} text
 * @param {boolean} lossy the channel it came on
 * @returns {DataEvent[]}
 */
export function parseDataFrame(text, lossy) {
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    return [];
  }
  /** @type {DataEvent[]} */
  const events = [];
  for (const m of Array.isArray(value) ? value : [value]) {
    if (!isObject(m) || typeof m.topic !== "string") continue;
    if (m.topic === "relay") {
      const p = m.payload;
      if (isObject(p) && p.op === "sync") {
        events.push({ type: "datasync", detail: /** @type {DataSync} */ (p) });
      }
      continue;
    }
    const to = Array.isArray(m.to) ? m.to : undefined;
    const from = typeof m.from === "string" ? m.from : undefined;
    events.push({ type: "data", detail: { topic: m.topic, payload: m.payload, from, to, lossy } });
  }
  return events;
}
