// @ts-check
// Outgoing DataChannel messages: queued while a channel opens, then sent in batches (pure: the
// caller hands the frames to RTCDataChannel.send). The relay's cost is per SCTP packet, so
// several small messages go as one JSON array that fits one chunk (docs/datachannels.md).

/** Messages kept per channel while it opens; beyond it sendData drops and returns false. */
export const DATA_QUEUE_MAX = 1000;
/** One SCTP chunk: a batch grows up to this many bytes (UTF-8). */
export const DATA_BATCH_MAX_BYTES = 1100;
/** The relay refuses a batch of more messages than this (`too_large`). */
export const DATA_BATCH_MAX_MESSAGES = 64;

/**
 * The UTF-8 length of a string, without allocating.
 * @param {string} text
 * @returns {number}
 */
export function utf8Length(text) {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      bytes += 4; // a surrogate pair is one 4-byte character
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/**
 * One outgoing message as JSON text: `{topic, payload, to?}`.
 * @param {string} topic
 * @param {unknown} payload any JSON value
 * @param {string[]} [to] participant ids; absent: everyone else in the room
 * @returns {string}
 */
export function encodeDataMessage(topic, payload, to) {
  if (typeof topic !== "string" || !topic) throw new TypeError("topic must be a non-empty string");
  /** @type {{topic: string, payload: unknown, to?: string[]}} */
  const message = { topic, payload };
  if (to) message.to = to;
  return JSON.stringify(message);
}

/**
 * Take every queued message off `pending` as frames: a message alone, or a JSON array of
 * consecutive messages within `maxBytes` and `maxMessages`. Order is kept.
 * @param {string[]} pending encoded messages; emptied
 * @param {number} [maxBytes]
 * @param {number} [maxMessages]
 * @returns {string[]}
 */
export function takeBatches(pending, maxBytes = DATA_BATCH_MAX_BYTES,
  maxMessages = DATA_BATCH_MAX_MESSAGES) {
  /** @type {string[]} */
  const frames = [];
  let i = 0;
  while (i < pending.length) {
    const batch = [pending[i]];
    let size = utf8Length(pending[i]) + 2; // the brackets, should it become an array
    i++;
    while (i < pending.length && batch.length < maxMessages) {
      const next = utf8Length(pending[i]) + 1; // and a comma
      if (size + next > maxBytes) break;
      size += next;
      batch.push(pending[i]);
      i++;
    }
    frames.push(batch.length === 1 ? batch[0] : `[${batch.join(",")}]`);
  }
  pending.length = 0;
  return frames;
}

/** Per-channel queues of encoded messages, bounded. */
export class DataOutbox {
  /** @param {{maxQueued?: number}} [options] */
  constructor({ maxQueued = DATA_QUEUE_MAX } = {}) {
    this.maxQueued = maxQueued;
    /**
     * @private
     * @type {Map<string, string[]>}
     */
    this._queues = new Map();
  }

  /**
   * Queue an encoded message for channel `label`; false when that queue is full (dropped).
   * @param {string} label
   * @param {string} text
   * @returns {boolean}
   */
  push(label, text) {
    let queue = this._queues.get(label);
    if (!queue) this._queues.set(label, (queue = []));
    if (queue.length >= this.maxQueued) return false;
    queue.push(text);
    return true;
  }

  /**
   * How many messages wait for `label`.
   * @param {string} label
   * @returns {number}
   */
  size(label) {
    return this._queues.get(label)?.length ?? 0;
  }

  /**
   * Everything queued for `label`, as frames to send now.
   * @param {string} label
   * @returns {string[]}
   */
  drain(label) {
    const queue = this._queues.get(label);
    return queue ? takeBatches(queue) : [];
  }
}
