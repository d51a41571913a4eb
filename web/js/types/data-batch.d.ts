/**
 * The UTF-8 length of a string, without allocating.
 * @param {string} text
 * @returns {number}
 */
export function utf8Length(text: string): number;
/**
 * One outgoing message as JSON text: `{topic, payload, to?}`.
 * @param {string} topic
 * @param {unknown} payload any JSON value
 * @param {string[]} [to] participant ids; absent: everyone else in the room
 * @returns {string}
 */
export function encodeDataMessage(topic: string, payload: unknown, to?: string[]): string;
/**
 * Take every queued message off `pending` as frames: a message alone, or a JSON array of
 * consecutive messages within `maxBytes` and `maxMessages`. Order is kept.
 * @param {string[]} pending encoded messages; emptied
 * @param {number} [maxBytes]
 * @param {number} [maxMessages]
 * @returns {string[]}
 */
export function takeBatches(pending: string[], maxBytes?: number, maxMessages?: number): string[];
/** Messages kept per channel while it opens; beyond it sendData drops and returns false. */
export const DATA_QUEUE_MAX: 1000;
/** One SCTP chunk: a batch grows up to this many bytes (UTF-8). */
export const DATA_BATCH_MAX_BYTES: 1100;
/** The relay refuses a batch of more messages than this (`too_large`). */
export const DATA_BATCH_MAX_MESSAGES: 64;
/** Per-channel queues of encoded messages, bounded. */
export class DataOutbox {
    /** @param {{maxQueued?: number}} [options] */
    constructor({ maxQueued }?: {
        maxQueued?: number;
    });
    maxQueued: number;
    /**
     * @private
     * @type {Map<string, string[]>}
     */
    private _queues;
    /**
     * Queue an encoded message for channel `label`; false when that queue is full (dropped).
     * @param {string} label
     * @param {string} text
     * @returns {boolean}
     */
    push(label: string, text: string): boolean;
    /**
     * How many messages wait for `label`.
     * @param {string} label
     * @returns {number}
     */
    size(label: string): number;
    /**
     * Everything queued for `label`, as frames to send now.
     * @param {string} label
     * @returns {string[]}
     */
    drain(label: string): string[];
}
