// @ts-check
// @relayroom/client: the browser client of a relayroom server (docs/client.md).
// Plain ES modules with no dependencies: import this file natively or through a bundler.

export { RoomClient } from "./room.js";
export {
  SignalingClient,
  SignalingError,
  defaultSignalingUrl,
  fetchDevToken,
  healthUrl,
} from "./signaling.js";
export { Backoff, backoffCeiling, backoffDelay } from "./backoff.js";
export { StatsReporter } from "./stats-reporter.js";
export { parseDataFrame, parseServerMessage } from "./messages.js";
export {
  DATA_BATCH_MAX_BYTES,
  DATA_BATCH_MAX_MESSAGES,
  DATA_QUEUE_MAX,
  DataOutbox,
  encodeDataMessage,
  takeBatches,
} from "./data-batch.js";

/**
 * @typedef {import("./messages.js").Participant} Participant
 * @typedef {import("./messages.js").TrackInfo} TrackInfo
 * @typedef {import("./messages.js").Joined} Joined
 * @typedef {import("./messages.js").ServerMessage} ServerMessage
 * @typedef {import("./messages.js").DataMessage} DataMessage
 * @typedef {import("./messages.js").DataSync} DataSync
 * @typedef {import("./signaling.js").TokenSource} TokenSource
 * @typedef {import("./signaling.js").SignalingEventMap} SignalingEventMap
 * @typedef {import("./signaling.js").SignalingOptions} SignalingOptions
 * @typedef {import("./room.js").RoomEventMap} RoomEventMap
 * @typedef {import("./room.js").RoomClientOptions} RoomClientOptions
 * @typedef {import("./backoff.js").BackoffOptions} BackoffOptions
 */
