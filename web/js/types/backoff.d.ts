/**
 * The ceiling of step `attempt` (0-based): 1 s, 2 s, 4 s, ... capped at `maxMs`.
 * @param {number} attempt
 * @param {number} [firstMs]
 * @param {number} [maxMs]
 * @returns {number}
 */
export function backoffCeiling(attempt: number, firstMs?: number, maxMs?: number): number;
/**
 * The delay before attempt `attempt`: uniform in [ceiling/2, ceiling].
 * @param {number} attempt
 * @param {() => number} [random] a source of numbers in [0, 1)
 * @param {number} [firstMs]
 * @param {number} [maxMs]
 * @returns {number}
 */
export function backoffDelay(attempt: number, random?: () => number, firstMs?: number, maxMs?: number): number;
export const BACKOFF_FIRST_MS: 1000;
export const BACKOFF_MAX_MS: 30000;
export const STABLE_MS: 10000;
/**
 * @typedef {object} BackoffOptions
 * @property {number} [firstMs] the first step's ceiling (1000)
 * @property {number} [maxMs] the largest ceiling (30000)
 * @property {number} [stableMs] how long a connection must stay up to reset the steps (10000)
 * @property {() => number} [random] a source of numbers in [0, 1) (Math.random)
 */
export class Backoff {
    /** @param {BackoffOptions} [options] */
    constructor({ firstMs, maxMs, stableMs, random }?: BackoffOptions);
    firstMs: number;
    maxMs: number;
    stableMs: number;
    random: () => number;
    attempt: number;
    /** @type {number | null} */
    _upSince: number | null;
    /**
     * The delay before the next attempt; counts the attempt.
     * @returns {number}
     */
    next(): number;
    /**
     * A connection is up (joined) at time `now` (ms).
     * @param {number} now
     */
    up(now: number): void;
    /**
     * The connection went down at `now`: reset the steps only if it had been up long enough.
     * @param {number} now
     */
    down(now: number): void;
}
export type BackoffOptions = {
    /**
     * the first step's ceiling (1000)
     */
    firstMs?: number | undefined;
    /**
     * the largest ceiling (30000)
     */
    maxMs?: number | undefined;
    /**
     * how long a connection must stay up to reset the steps (10000)
     */
    stableMs?: number | undefined;
    /**
     * a source of numbers in [0, 1) (Math.random)
     */
    random?: (() => number) | undefined;
};
